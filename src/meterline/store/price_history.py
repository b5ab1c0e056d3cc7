"""Which price data an installation has used: ``meterline prices history``.

Two records, both in the installation's store:

- ``meterline_price_history``: one row per price data installed (``meterline prices update``, the collector's
  periodic refresh) and per re-pricing of open periods after an update (what changed, per model and customer);
- the events themselves: each one's ``pricing_source`` names the price data that priced it
  (``genai-prices@0.2.5``, ``genai-prices@0.2.5+data.2026-12-01.ab12cd34``, ``override``, …), so the versions
  used, with their first and last call and how many calls each priced, are read from the events.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from meterline.core.timeutil import from_micros, to_micros
from meterline.store.base import EventSQL, SQLStore
from meterline.store.extensions import register_tables
from meterline.store.schema import TABLE as EVENTS
from meterline.store.sql import sql

TABLE = "meterline_price_history"


def _tables(dialect: str) -> list[str]:
    big = "BIGINT" if dialect == "postgresql" else "INTEGER"
    return [
        f"CREATE TABLE IF NOT EXISTS {TABLE} (id TEXT PRIMARY KEY, at {big} NOT NULL, kind TEXT NOT NULL, "
        "source TEXT NOT NULL, detail TEXT NOT NULL)",
        f"CREATE INDEX IF NOT EXISTS ix_{TABLE}_at ON {TABLE} (at)",
    ]


register_tables("price_history", _tables)


def ensure(store: SQLStore) -> None:
    """Create the table on a store opened before this area existed (statements are idempotent)."""
    for stmt in _tables(store.dialect.name):
        store.execute(stmt)


def record(store: SQLStore, kind: str, source: str, detail: Mapping[str, Any], at: datetime) -> str:
    """Add one entry (``kind``: ``update`` or ``reprice``); its id."""
    ensure(store)
    rid = uuid.uuid4().hex
    store.execute(
        sql(store.dialect, f"INSERT INTO {TABLE} (id, at, kind, source, detail) VALUES (?, ?, ?, ?, ?)"),
        (rid, to_micros(at), kind, source, json.dumps(detail, sort_keys=True, default=str)),
    )
    return rid


def entries(store: SQLStore) -> list[dict[str, Any]]:
    """Every recorded update and re-pricing, oldest first."""
    ensure(store)
    rows = store.fetch(f"SELECT id, at, kind, source, detail FROM {TABLE} ORDER BY at, id")
    return [
        {"id": r[0], "at": from_micros(int(r[1])).isoformat(), "kind": r[2], "source": r[3], "detail": json.loads(r[4])}
        for r in rows
    ]


def base_source(pricing_source: str | None) -> str:
    """The price data part of a ``pricing_source`` (before ``;fallback:``, ``;correction:``, …)."""
    return (pricing_source or "unpriced").split(";", 1)[0]


def sources_used(store: EventSQL) -> list[dict[str, Any]]:
    """Per price data that priced stored events: first and last call, events, and the corrections applied."""
    _, rows = store.read(
        f"SELECT pricing_source, MIN(start_time), MAX(start_time), COUNT(*) FROM {EVENTS} GROUP BY pricing_source"
    )
    out: dict[str, dict[str, Any]] = {}
    for source, first, last, n in rows:
        key = base_source(source)
        e = out.setdefault(key, {"source": key, "first_call": int(first), "last_call": int(last), "events": 0})
        e["first_call"] = min(e["first_call"], int(first))
        e["last_call"] = max(e["last_call"], int(last))
        e["events"] += int(n)
        for part in str(source or "").split(";")[1:]:
            kind, _, what = part.partition(":")
            if kind in ("correction", "retired"):
                e.setdefault("corrections", {})
                e["corrections"][what] = e["corrections"].get(what, 0) + int(n)
    result = sorted(out.values(), key=lambda e: (e["first_call"], e["source"]))
    for e in result:
        e["first_call"] = from_micros(e["first_call"]).isoformat()
        e["last_call"] = from_micros(e["last_call"]).isoformat()
    return result
