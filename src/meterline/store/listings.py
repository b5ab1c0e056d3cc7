"""Reads the dashboard needs beyond :mod:`meterline.store.reads` (newest-first pages, one event by id, recent
traces, latency samples, fast budget spend) and the dashboard's signing secret. SQL lives here, not in the
server package. Every listing is keyset-paged so a page costs the same on page 1 and page 10,000.

Event reads go through ``store.read`` in the store's *read* dialect and from its ``events_from`` (on the
ClickHouse store: ClickHouse's SQL and ``events FINAL``, so a re-sent or re-priced event counts once); the
signing secret lives in the SQL (metadata) database.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from meterline.core.event import DIMENSIONS, UsageEvent
from meterline.core.timeutil import from_micros, to_micros
from meterline.store import query as queries
from meterline.store import rollup as rollups
from meterline.store import schema
from meterline.store.base import EventSQL, SQLStore
from meterline.store.extensions import register_tables
from meterline.store.schema import COLUMN_NAMES, PICO, from_pico, row_to_event
from meterline.store.sql import sql

SECRETS = "dashboard_secrets"
_START = COLUMN_NAMES.index("start_time")


def _tables(dialect: str) -> list[str]:
    return [f"CREATE TABLE IF NOT EXISTS {SECRETS} (name TEXT PRIMARY KEY, value TEXT NOT NULL)"]


register_tables("dashboard", _tables)


def signing_secret(store: SQLStore) -> bytes:
    """The per-install secret that signs session cookies and share links, created on first use and kept in
    the database so every collector replica on one database accepts the same sessions."""
    store.execute(f"CREATE TABLE IF NOT EXISTS {SECRETS} (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
    rows = store.fetch(sql(store.dialect, f"SELECT value FROM {SECRETS} WHERE name = ?"), ("signing",))
    if not rows:
        store.execute(
            sql(store.dialect, f"INSERT INTO {SECRETS} (name, value) VALUES (?, ?) ON CONFLICT DO NOTHING"),
            ("signing", secrets.token_urlsafe(48)),
        )
        rows = store.fetch(sql(store.dialect, f"SELECT value FROM {SECRETS} WHERE name = ?"), ("signing",))
    return str(rows[0][0]).encode()


def _reads(store: EventSQL) -> queries.Dialect:
    """The dialect event reads are written in (the ClickHouse store keeps ``dialect`` for its metadata SQL)."""
    return store.read_dialect


# -- events, newest first ------------------------------------------------------------------------
def _cursor(start_us: int, key: str) -> str:
    return base64.urlsafe_b64encode(f"{start_us}:{key}".encode()).decode().rstrip("=")


def recent_events(
    store: EventSQL,
    *,
    filters: Mapping[str, str | Sequence[str]] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    before: str | None = None,
    limit: int = 50,
) -> tuple[list[UsageEvent], str | None]:
    """A page of events newest first and the cursor of the next (older) page, None at the end."""
    filters = filters or {}
    for dim in filters:
        if dim not in DIMENSIONS:
            raise queries.QueryError(f"filter: unknown dimension {dim!r}")
    dialect = _reads(store)
    where, params = queries.where_clause(dialect, filters, start, end)
    ph = dialect.placeholder
    if before:
        us, event_id = queries.decode_cursor(before)
        # the leading "start_time <= x" gives both databases an index range to start from
        cond = f"start_time <= {ph} AND (start_time < {ph} OR id < {ph})"
        where = f"{where} AND {cond}" if where else f" WHERE {cond}"
        params += [us, us, event_id]
    text = (
        f"SELECT {', '.join(COLUMN_NAMES)} FROM {dialect.events_from}{where} ORDER BY start_time DESC, id DESC "
        f"LIMIT {int(limit)}"
    )
    _, rows = store.read(text, params)
    nxt = _cursor(int(rows[-1][_START]), str(rows[-1][0])) if len(rows) == limit else None
    return [row_to_event(r) for r in rows], nxt


def event_by_id(store: EventSQL, event_id: str) -> UsageEvent | None:
    dialect = _reads(store)
    _, rows = store.read(
        sql(dialect, f"SELECT {', '.join(COLUMN_NAMES)} FROM {dialect.events_from} WHERE id = ?"), (event_id,)
    )
    if not rows:
        return None
    event = row_to_event(rows[0])
    _attach_content(store, [event])
    return event


def _attach_content(store: SQLStore, events: list[UsageEvent]) -> None:
    """Captured content, where this version of the store keeps it apart (``meterline.store.content``);
    otherwise it is already on the event's row."""
    import importlib
    import importlib.util

    name = "meterline.store.content"
    try:
        found = importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        found = False
    if found:
        importlib.import_module(name).attach(store, events)


def latency_sample(
    store: EventSQL, *, start: datetime | None, end: datetime | None, filters: Mapping[str, Any] | None = None,
    limit: int = 20_000,
) -> tuple[list[float], list[float]]:  # fmt: skip
    """(durations, times to first token) in ms of the newest ``limit`` events in the range: percentiles
    from a bounded sample, so the overview costs the same on a million events as on a thousand."""
    dialect = _reads(store)
    where, params = queries.where_clause(dialect, filters or {}, start, end)
    _, rows = store.read(
        f"SELECT duration_ms, time_to_first_token_ms FROM {dialect.events_from}{where} ORDER BY start_time DESC "
        f"LIMIT {int(limit)}",
        params,
    )
    return [float(r[0]) for r in rows if r[0] is not None], [float(r[1]) for r in rows if r[1] is not None]


# -- traces --------------------------------------------------------------------------------------
def recent_traces(
    store: EventSQL,
    *,
    filters: Mapping[str, str | Sequence[str]] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    before: str | None = None,
    limit: int = 25,
) -> tuple[list[dict[str, Any]], str | None]:
    """Traces newest first (by their latest event) with requests, cost, tokens, errors and time span.

    Walks the newest events that carry a trace id (keyset, by the time index) until ``limit`` distinct
    traces are seen, then totals exactly those traces through the trace index."""
    dialect = _reads(store)
    where, params = queries.where_clause(dialect, filters or {}, start, end)
    ph = dialect.placeholder
    cond = "trace_id IS NOT NULL"
    where = f"{where} AND {cond}" if where else f" WHERE {cond}"
    if before:
        us, trace_id = queries.decode_cursor(before)
        where += f" AND start_time <= {ph} AND (start_time < {ph} OR trace_id < {ph})"
        params += [us, us, trace_id]
    seen: dict[str, int] = {}
    scanned_to: tuple[int, str] | None = None
    chunk = max(limit * 20, 500)
    offset_where, offset_params = where, list(params)
    while len(seen) < limit:
        _, rows = store.read(
            f"SELECT trace_id, start_time FROM {dialect.events_from}{offset_where} "
            f"ORDER BY start_time DESC, trace_id DESC LIMIT {chunk}",
            offset_params,
        )
        for tid, st in rows:
            if tid not in seen:
                if len(seen) == limit:
                    break
                seen[tid] = int(st)
            scanned_to = (int(st), str(tid))
        if len(rows) < chunk or len(seen) >= limit or scanned_to is None:
            break
        us, tid = scanned_to
        offset_where = where + f" AND start_time <= {ph} AND (start_time < {ph} OR trace_id < {ph})"
        offset_params = [*params, us, us, tid]
    if not seen:
        return [], None
    ids = list(seen)
    marks = ", ".join([ph] * len(ids))
    # a trace's cost summed in two halves outside ClickHouse (Int128 there): an int64 sum of pico-dollars
    # overflows past ~$9.2M, which SQLite reports as an error (a 500 on the traces page)
    cost = "SUM(total_cost), 0" if dialect.name == "clickhouse" else schema.split_sum_sql("total_cost", "cost")
    _, rows = store.read(
        f"SELECT trace_id, COUNT(*), SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END), SUM(total_tokens), "
        f"{cost}, MIN(start_time), MAX(COALESCE(end_time, start_time)), MIN(trace_name), "
        f"MIN(subscriber_id), SUM(CASE WHEN total_cost IS NULL THEN 1 ELSE 0 END), MAX(start_time) "
        f"FROM {dialect.events_from} WHERE trace_id IN ({marks}) GROUP BY trace_id",
        ids,
    )
    by_id = {r[0]: r for r in rows}
    before_us = queries.decode_cursor(before)[0] if before else None
    out = []
    for tid in ids:
        r = by_id[tid]
        if before_us is not None and int(r[11]) > before_us:
            continue  # its newest event was on an earlier page: shown there already
        pico = int(r[4] or 0) if dialect.name == "clickhouse" else schema.join_split(r[4], r[5]) or 0
        out.append(
            {
                "trace_id": tid,
                "requests": int(r[1]),
                "errors": int(r[2] or 0),
                "total_tokens": int(r[3] or 0),
                "total_cost": Decimal(pico) / PICO,
                "start": from_micros(int(r[6])),
                "start_us": int(r[6]),
                "end_us": int(r[7]),
                "trace_name": r[8],
                "subscriber_id": r[9],
                "unpriced": int(r[10] or 0),
            }
        )
    last = ids[-1]
    nxt = _cursor(seen[last], last) if len(ids) == limit else None
    return out, nxt


# -- top lists -----------------------------------------------------------------------------------
def top_groups(store: EventSQL, q: queries.UsageQuery, n: int) -> list[dict[str, Any]] | None:
    """The ``n`` values of ``q``'s one dimension with the highest spend, straight from the daily rollup
    (only the sums a top list shows, sorted and cut in SQL), or None when the rollup cannot answer ``q``.
    Same sums as ``store.usage(q)``: the rollup rows that query would read."""
    if len(q.group_by) != 1 or not getattr(store, "_rollup_ready", False) or rollups.usable(q) != q.group_by[0]:
        return None
    dim = q.group_by[0]
    where = "dim = ?"
    params: list[Any] = [dim]
    if q.start is not None:
        where += " AND day >= ?"
        params.append(to_micros(q.start) // queries.DAY_US)
    if q.end is not None:
        where += " AND day < ?"
        params.append(to_micros(q.end) // queries.DAY_US)
    dialect = _reads(store)  # the rollup sits next to the events (in ClickHouse on its store, Int128 sums)
    columns = rollups.METRIC_COLUMNS if dialect.name == "clickhouse" else rollups.metric_columns(dialect.name)
    if "total_cost_hi" in columns:  # kept in two parts (high and low digits) so that SQLite sums cannot overflow
        split = int(getattr(schema, "SPLIT", 1_000_000))
        cost = "SUM(total_cost_hi), SUM(total_cost_lo)"
        order = f"SUM(total_cost_hi) * {split}.0 + SUM(total_cost_lo)"
    else:
        split, cost, order = 0, "SUM(total_cost), 0", "SUM(total_cost)"
    _, rows = store.read(
        sql(
            dialect,
            f"SELECT value, SUM(requests), SUM(total_tokens), {cost} FROM {rollups.ROLLUP} WHERE {where} "
            f"GROUP BY value ORDER BY {order} DESC, SUM(requests) DESC, value LIMIT {int(n)}",
        ),
        params,
    )
    return [
        {
            dim: None if r[0] == "n" else str(r[0])[2:],
            "requests": int(r[1]),
            "total_tokens": int(r[2]),
            "total_cost": from_pico(int(r[3] or 0) * split + int(r[4] or 0) if split else int(r[3] or 0)),
        }
        for r in rows
    ]
