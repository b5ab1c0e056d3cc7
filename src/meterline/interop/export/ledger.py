"""The export ledger: which events each export target has been sent (or has refused or skipped).

It is the durable cursor of continuous exports: an exporter asks for events of its target that are
not in the ledger yet, sends them, then records them here, so a restart neither skips an event (one
stored late, with an old start time, is still "not in the ledger") nor sends one again. Targets
de-duplicate on the event id as well, which covers a crash between a send and its ledger row.

On the ClickHouse store the ledger is in its SQL metadata database, apart from the events
(``store.meta_apart``): no single query can join them, so ``pending`` walks the events in (start time, id)
order in pages and looks each page's ids up in the ledger (same answer as the SQL stores' NOT EXISTS, in the
same order).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from meterline.core.event import UsageEvent
from meterline.core.timeutil import to_micros
from meterline.store.base import LedgerStore, SQLStore
from meterline.store.extensions import register_tables
from meterline.store.schema import COLUMN_NAMES, TABLE, row_to_event
from meterline.store.sql import sql

LEDGER = "export_ledger"
STATES = ("sent", "skipped", "refused")


def _tables(dialect: str) -> list[str]:
    real = "DOUBLE PRECISION" if dialect == "postgresql" else "REAL"
    return [
        f"CREATE TABLE IF NOT EXISTS {LEDGER} (target TEXT NOT NULL, event_id TEXT NOT NULL, state TEXT NOT NULL, "
        f"reason TEXT, at {real} NOT NULL, PRIMARY KEY (target, event_id))"
    ]


register_tables("export_ledger", _tables)


def pending(
    store: LedgerStore, target: str, *, start: datetime | None, end: datetime | None, limit: int
) -> list[UsageEvent]:
    """Up to ``limit`` events in [start, end) that ``target`` has no ledger row for, oldest first."""
    if store.meta_apart:
        return _pending_apart(store, target, start, end, limit)
    cols = ", ".join(f"e.{c}" for c in COLUMN_NAMES)
    where, params = ["NOT EXISTS (SELECT 1 FROM export_ledger l WHERE l.target = ? AND l.event_id = e.id)"], [target]
    if start is not None:
        where.append("e.start_time >= ?")
        params.append(to_micros(start))  # type: ignore[arg-type]
    if end is not None:
        where.append("e.start_time < ?")
        params.append(to_micros(end))  # type: ignore[arg-type]
    text = f"SELECT {cols} FROM {TABLE} e WHERE {' AND '.join(where)} ORDER BY e.start_time, e.id LIMIT {int(limit)}"
    return [row_to_event(r) for r in store.fetch(sql(store.dialect, text), params)]


_PAGE = 5000  # event ids per page of the ClickHouse walk
_IN = 500  # ids per IN (...) look-up in the ledger


def _pending_apart(
    store: SQLStore, target: str, start: datetime | None, end: datetime | None, limit: int
) -> list[UsageEvent]:
    """``pending`` when the ledger and the events live in two databases (ClickHouse store)."""
    bounds, params = [], []
    if start is not None:
        bounds.append("start_time >= ?")
        params.append(to_micros(start))
    if end is not None:
        bounds.append("start_time < ?")
        params.append(to_micros(end))
    found: list[tuple[int, str]] = []
    after: tuple[int, str] | None = None
    while len(found) < limit:
        where = list(bounds)
        page_params: list[Any] = list(params)
        if after is not None:
            where.append("(start_time > ? OR (start_time = ? AND id > ?))")
            page_params += [after[0], after[0], after[1]]
        cond = f" WHERE {' AND '.join(where)}" if where else ""
        page = [
            (int(t), str(i))
            for t, i in store.fetch(
                sql(store.dialect, f"SELECT start_time, id FROM {TABLE}{cond} ORDER BY start_time, id LIMIT {_PAGE}"),
                page_params,
            )
        ]
        if not page:
            break
        done: set[str] = set()
        for k in range(0, len(page), _IN):
            ids = [i for _, i in page[k : k + _IN]]
            marks = ", ".join("?" * len(ids))
            done.update(
                str(r[0])
                for r in store.fetch(
                    sql(store.dialect, f"SELECT event_id FROM {LEDGER} WHERE target = ? AND event_id IN ({marks})"),
                    [target, *ids],
                )
            )
        found += [p for p in page if p[1] not in done][: limit - len(found)]
        if len(page) < _PAGE:
            break
        after = page[-1]
    if not found:
        return []
    out: list[UsageEvent] = []
    cols = ", ".join(COLUMN_NAMES)
    for k in range(0, len(found), _IN):
        chunk = found[k : k + _IN]
        marks = ", ".join("?" * len(chunk))
        rows = store.fetch(
            sql(store.dialect, f"SELECT {cols} FROM {TABLE} WHERE start_time >= ? AND start_time <= ? "
                               f"AND id IN ({marks}) ORDER BY start_time, id"),
            [chunk[0][0], chunk[-1][0], *(i for _, i in chunk)],
        )  # fmt: skip
        out += [row_to_event(r) for r in rows]
    return out


def record(store: SQLStore, target: str, event_ids: Sequence[str], state: str, reason: str | None = None) -> None:
    """Ledger rows for ``event_ids`` (already present ones are kept as they are)."""
    if state not in STATES:
        raise ValueError(f"state: must be one of {', '.join(STATES)}")
    now = time.time()
    for i in range(0, len(event_ids), 200):
        chunk = event_ids[i : i + 200]
        values = ", ".join("(?, ?, ?, ?, ?)" for _ in chunk)
        params: list[Any] = []
        for event_id in chunk:
            params += [target, event_id, state, reason, now]
        store.execute(
            sql(
                store.dialect,
                f"INSERT INTO {LEDGER} (target, event_id, state, reason, at) VALUES {values} "
                "ON CONFLICT (target, event_id) DO NOTHING",
            ),
            params,
        )


def forget(store: SQLStore, target: str, state: str) -> int:
    """Drop ``target``'s ledger rows in ``state`` (e.g. "skipped", after fixing a --map): they are pending again."""
    return int(
        store.execute(sql(store.dialect, f"DELETE FROM {LEDGER} WHERE target = ? AND state = ?"), [target, state])
    )


def counts(store: SQLStore, target: str) -> dict[str, int]:
    rows = store.fetch(
        sql(store.dialect, f"SELECT state, COUNT(*) FROM {LEDGER} WHERE target = ? GROUP BY state"), [target]
    )
    return {str(state): int(n) for state, n in rows}
