"""Continuous exports from the collector: forward new events to Lago, OpenMeter or Stripe.

Configured with ``METERLINE_FORWARD`` (one or more specs separated by spaces or ``;``)::

    METERLINE_FORWARD="lago+https://api.getlago.com?charge_by=subscriber_id&code=llm_usage"

``FORMAT+URL`` with options as query parameters: ``charge_by``, ``map`` (a JSON/CSV file), ``code`` (lago),
``event_type`` (openmeter), ``event_name`` and ``value`` (stripe), ``poll_seconds``, ``cursor`` and
``api_key_env`` (the environment variable holding the target's key; default LAGO_API_KEY,
OPENMETER_API_KEY or STRIPE_API_KEY: keys never sit in the spec). Each forwarder runs on its own thread
with its own database connection, reads the export ledger (the durable cursor: a restart neither skips
nor repeats an event), and never stops on an error.

Every replica may carry the same ``METERLINE_FORWARD``: each target's cursor has a lease in the database the
replicas share (``store.leases``; on ClickHouse, its metadata database), and only the replica holding it sends.
It renews the lease before each send and stops sending when renewal fails; the others stand by and ask again
every ``poll_seconds``. When the holder stops it releases the lease; when it dies, the lease expires
``METERLINE_FORWARD_LEASE_SECONDS`` (default 60) after its last renewal and a standby takes over within that
plus one poll. The TTL must exceed the longest send (a Stripe batch: 100 paced requests). Do not run
``meterline export --follow`` on the same cursor next to collectors: it takes no lease.
``GET /v1/exports`` (scope read) shows each forwarder's ledger counts and who holds its lease.
"""

from __future__ import annotations

import logging
import os
import threading
import urllib.parse
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool

from meterline.server.deps import ReadKey

logger = logging.getLogger("meterline.server")
router = APIRouter(tags=["exports"])
ENV = "METERLINE_FORWARD"
LEASE_ENV = "METERLINE_FORWARD_LEASE_SECONDS"
LEASE_DEFAULT = 60.0
_KEY_ENV = {"lago": "LAGO_API_KEY", "openmeter": "OPENMETER_API_KEY", "stripe": "STRIPE_API_KEY"}


def parse_spec(spec: str) -> dict[str, Any]:
    """``lago+https://host/path?charge_by=…`` → {format, url, options…}; ValueError names what is wrong."""
    fmt, plus, rest = spec.partition("+")
    if not plus or fmt not in _KEY_ENV:
        raise ValueError(f"{ENV}: {spec!r} must start with lago+, openmeter+ or stripe+ followed by the URL")
    parts = urllib.parse.urlsplit(rest)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{ENV}: {spec!r}: the URL after {fmt}+ must be http(s)://host…")
    options = dict(urllib.parse.parse_qsl(parts.query))
    known = {"charge_by", "map", "code", "event_type", "event_name", "value", "poll_seconds", "cursor", "api_key_env"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"{ENV}: unknown option {unknown[0]!r} in {spec!r}; known: {', '.join(sorted(known))}")
    url = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    return {"format": fmt, "url": url, **options}


def setup(app: FastAPI) -> None:
    app.state.forwarders = []
    specs = [s for s in os.environ.get(ENV, "").replace(";", " ").split() if s]
    for spec in specs:
        try:
            app.state.forwarders.append(_start(app, parse_spec(spec)))
        except Exception as exc:  # noqa: BLE001 - a bad forwarder spec must not stop the collector
            logger.error("meterline collector: export forwarder not started: %s", exc)
    if app.state.forwarders:
        # late events (old start times, e.g. replayed from an SDK's spool) trigger a full pass at once
        hooks = getattr(app.state, "ingest_hooks", None)
        if hooks is None:
            hooks = app.state.ingest_hooks = []
        hooks.append(lambda events: [f["exporter"].note_stored(events) for f in app.state.forwarders])


def _start(app: FastAPI, opts: dict[str, Any]) -> dict[str, Any]:
    from meterline.interop.export import ChargeBy, Exporter, load_mapping, make_target
    from meterline.store.backend import open_stores
    from meterline.store.leases import Lease

    fmt = opts["format"]
    charge = ChargeBy(opts.get("charge_by") or "subscriber_id", load_mapping(opts["map"]) if opts.get("map") else None)
    key = os.environ.get(opts.get("api_key_env") or _KEY_ENV[fmt])
    target = make_target(
        fmt,
        opts["url"],
        key,
        charge,
        code=opts.get("code"),
        event_type=opts.get("event_type"),
        event_name=opts.get("event_name"),
        value=opts.get("value"),
    )
    try:
        ttl = float(os.environ.get(LEASE_ENV) or LEASE_DEFAULT)
    except ValueError:
        raise ValueError(f"{LEASE_ENV}: {os.environ.get(LEASE_ENV)!r} is not a number of seconds") from None
    writer, reader = open_stores(app.state.settings.database, pool_size=2)
    if reader is not writer:
        reader.close()
    cursor = opts.get("cursor") or target.name
    lease = Lease(writer, f"export:{cursor}", ttl)
    exporter = Exporter(writer, target, cursor=cursor, lease=lease)
    poll = float(opts.get("poll_seconds") or 2.0)
    thread = threading.Thread(target=exporter.follow, args=(poll,), name=f"meterline-forward-{fmt}", daemon=True)
    thread.start()
    logger.info("meterline collector: forwarding events to %s (%s, charge by %s)", opts["url"], fmt, charge.dimension)
    return {
        "format": fmt, "url": opts["url"], "exporter": exporter, "thread": thread, "store": writer, "lease": lease
    }  # fmt: skip


def teardown(app: FastAPI) -> None:
    for fwd in getattr(app.state, "forwarders", []):
        fwd["exporter"].stop()
        fwd["thread"].join(10)
        fwd["store"].close()


@router.get("/v1/exports", summary="continuous exports of this collector and their ledger counts")
async def list_exports(request: Request, key: ReadKey) -> list[dict[str, Any]]:
    from meterline.interop.export import ledger as export_ledger
    from meterline.store import leases

    out = []
    for fwd in getattr(request.app.state, "forwarders", []):
        exporter = fwd["exporter"]
        counts = await run_in_threadpool(export_ledger.counts, fwd["store"], exporter.cursor)
        held = await run_in_threadpool(leases.current, fwd["store"], fwd["lease"].name)
        lease: dict[str, Any] = {"holder": held[0], "seconds_left": round(held[1], 1)} if held else {"holder": None}
        lease["this_collector"] = held is not None and held[0] == fwd["lease"].holder
        out.append(
            {"format": fwd["format"], "url": fwd["url"], "cursor": exporter.cursor, "ledger": counts, "lease": lease}
        )
    return out
