"""The export ledger: which events each export target has been sent (or has refused or skipped).

It is the durable cursor of continuous exports: an exporter asks for events of its target that are
not in the ledger yet, sends them, then records them here, so a restart neither skips an event (one
stored late, with an old start time, is still "not in the ledger") nor sends one again. Targets
de-duplicate on the event id as well, which covers a crash between a send and its ledger row.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from meterline.event import UsageEvent
from meterline.store.extensions import register_tables, sql
from meterline.store.schema import COLUMN_NAMES, TABLE, row_to_event, to_micros

LEDGER = "export_ledger"
STATES = ("sent", "skipped", "refused")


def _tables(dialect: str) -> list[str]:
    real = "DOUBLE PRECISION" if dialect == "postgresql" else "REAL"
    return [
        f"CREATE TABLE IF NOT EXISTS {LEDGER} (target TEXT NOT NULL, event_id TEXT NOT NULL, state TEXT NOT NULL, "
        f"reason TEXT, at {real} NOT NULL, PRIMARY KEY (target, event_id))"
    ]


register_tables("export_ledger", _tables)


def pending(store: Any, target: str, *, start: datetime | None, end: datetime | None, limit: int) -> list[UsageEvent]:
    """Up to ``limit`` events in [start, end) that ``target`` has no ledger row for, oldest first."""
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


def record(store: Any, target: str, event_ids: Sequence[str], state: str, reason: str | None = None) -> None:
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


def forget(store: Any, target: str, state: str) -> int:
    """Drop ``target``'s ledger rows in ``state`` (e.g. "skipped", after fixing a --map): they are pending again."""
    return int(
        store.execute(sql(store.dialect, f"DELETE FROM {LEDGER} WHERE target = ? AND state = ?"), [target, state])
    )


def counts(store: Any, target: str) -> dict[str, int]:
    rows = store.fetch(
        sql(store.dialect, f"SELECT state, COUNT(*) FROM {LEDGER} WHERE target = ? GROUP BY state"), [target]
    )
    return {str(state): int(n) for state, n in rows}
