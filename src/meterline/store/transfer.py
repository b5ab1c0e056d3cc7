"""Copy every event of one store into another, resumably, and verify the copy day by day.

Used by ``meterline migrate --to clickhouse://…`` (from SQLite or PostgreSQL), and usable between any two
stores: events are read in ``(start_time, id)`` order a page at a time and inserted idempotently, and the
cursor of the last page written is saved in the target's metadata database (``meterline_copy_state``,
keyed by the source), so an interrupted copy resumes where it stopped and a repeated one copies nothing twice.
Verification compares, per UTC day, the event count, every token sum and every cost sum.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

from meterline.store.base import EventReader, SQLStore, Store, UsageReader
from meterline.store.extensions import register_tables
from meterline.store.query import METRICS, UsageQuery
from meterline.store.sql import sql

STATE = "meterline_copy_state"


def _tables(dialect: str) -> list[str]:
    big = "BIGINT" if dialect == "postgresql" else "INTEGER"
    return [f"CREATE TABLE IF NOT EXISTS {STATE} (source TEXT PRIMARY KEY, cursor TEXT, copied {big} NOT NULL)"]


register_tables("copy_state", _tables)


@dataclasses.dataclass
class CopyResult:
    copied: int  # events read from the source and written (already-present ones included)
    new: int  # events the target did not have
    resumed: bool


def source_key(description: str) -> str:
    """The state key of a source: a hash, so no credential of the source is stored in the target."""
    return hashlib.sha256(description.encode()).hexdigest()[:32]


def _state(target: SQLStore, key: str) -> tuple[str | None, int] | None:
    rows = target.fetch(sql(target.dialect, f"SELECT cursor, copied FROM {STATE} WHERE source = ?"), (key,))
    return (rows[0][0], int(rows[0][1])) if rows else None


def _save(target: SQLStore, key: str, cursor: str | None, copied: int) -> None:
    changed = target.execute(sql(target.dialect, f"UPDATE {STATE} SET cursor = ?, copied = ? WHERE source = ?"),
                             (cursor, copied, key))  # fmt: skip
    if not changed:
        target.execute(sql(target.dialect, f"INSERT INTO {STATE} (source, cursor, copied) VALUES (?, ?, ?)"),
                       (key, cursor, copied))  # fmt: skip


def copy_events(
    source: EventReader,
    target: Store,
    *,
    source_description: str,
    page_size: int = 10_000,
    restart: bool = False,
    progress: Callable[[int], None] | None = None,
) -> CopyResult:
    """Copy ``source``'s events into ``target`` from where the last copy of this source stopped."""
    key = source_key(source_description)
    state = None if restart else _state(target, key)
    cursor, copied = state if state else (None, 0)
    resumed = state is not None and copied > 0
    new = 0
    while True:
        page, next_cursor = source.events(cursor=cursor, limit=page_size)
        if page:
            new += int(target.insert(page))
            copied += len(page)
        if next_cursor is not None:
            cursor = next_cursor
        elif page:  # the last page: resume after its last event next time
            from meterline.core.timeutil import to_micros
            from meterline.store.query import encode_cursor

            cursor = encode_cursor(to_micros(page[-1].start_time), page[-1].id)
        _save(target, key, cursor, copied)
        if progress is not None:
            progress(copied)
        if next_cursor is None:
            return CopyResult(copied=copied, new=new, resumed=resumed)


@dataclasses.dataclass
class DayDiff:
    day: datetime
    metric: str
    source: Any
    target: Any


def verify(source: UsageReader, target: UsageReader) -> tuple[int, list[DayDiff]]:
    """(days compared, differences): per UTC day, the count, token and cost sums of both stores."""
    q = UsageQuery(bucket="day")
    a = {r["bucket"]: r for r in source.usage(q)}
    b = {r["bucket"]: r for r in target.usage(q)}
    diffs: list[DayDiff] = []
    for day in sorted(set(a) | set(b)):
        ra, rb = a.get(day, {}), b.get(day, {})
        for m in METRICS:
            va, vb = ra.get(m, 0), rb.get(m, 0)
            if va != vb:
                diffs.append(DayDiff(day, m, va, vb))
    return len(set(a) | set(b)), diffs
