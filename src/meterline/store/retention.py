"""Retention: delete events and captured content older than a cutoff, on SQLite and PostgreSQL.

Events: on a PostgreSQL table partitioned by month, every monthly partition that ends at or before the
cutoff is dropped whole (no row-by-row delete, no table bloat); rows of the partition the cutoff falls in
(and of the default partition) are deleted. SQLite and an unpartitioned PostgreSQL table delete rows.
Content (``event_content``) is deleted row-wise by its own cutoff; content never outlives its event, so
the events cutoff applies to it as well.

Rollups are kept by design: ``events_daily`` is the long-term record of usage and cost per day and
dimension, so reports and invoices over pruned periods keep their exact totals while the per-call rows
(and their content) are gone. Queries that need raw events (hour buckets, several dimensions) only see
what is left.

The ClickHouse store keeps no hourly billing rollup (billing sums ``events FINAL``), so once its events are
pruned, usage before the cutoff cannot be billed again: the cutoff is recorded (``pruned_before``) and
billing refuses such a period with an error naming it, rather than invoicing it as empty.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import TYPE_CHECKING, cast

from meterline.core.timeutil import to_micros
from meterline.store import partitions
from meterline.store.base import SQLStore, TransactionalStore
from meterline.store.content import CONTENT_TABLE
from meterline.store.schema import TABLE
from meterline.store.sql import sql

if TYPE_CHECKING:
    from meterline.store.postgres import PostgresStore


@dataclasses.dataclass
class PruneResult:
    events: int = 0
    content: int = 0
    dropped_partitions: list[str] = dataclasses.field(default_factory=list)


def _count(store: SQLStore, table: str, cutoff: int) -> int:
    ph = store.dialect.placeholder
    return int(store.fetch(f"SELECT COUNT(*) FROM {table} WHERE start_time < {ph}", [cutoff])[0][0])


def prune(
    store: TransactionalStore,
    *,
    events_before: datetime | None = None,
    content_before: datetime | None = None,
    dry_run: bool = False,
) -> PruneResult:
    """Remove events that started before ``events_before`` and content of events that started before
    ``content_before`` (or before ``events_before``). ``dry_run`` only counts."""
    result = PruneResult()
    ev_cut = to_micros(events_before) if events_before is not None else None
    cuts = [c for c in (ev_cut, to_micros(content_before) if content_before is not None else None) if c is not None]
    content_cut = max(cuts) if cuts else None
    if dry_run:
        result.events = _count(store, TABLE, ev_cut) if ev_cut is not None else 0
        result.content = _count(store, CONTENT_TABLE, content_cut) if content_cut is not None else 0
        return result
    ph = store.dialect.placeholder
    if content_cut is not None:
        result.content = store.execute(f"DELETE FROM {CONTENT_TABLE} WHERE start_time < {ph}", [content_cut])
    if ev_cut is None:
        return result
    prune_events = getattr(store, "prune_events", None)
    if prune_events is not None:  # ClickHouse: whole monthly partitions dropped, the rest deleted
        assert events_before is not None
        result.events = int(prune_events(events_before))
        _mark_pruned(store, ev_cut)
        return result
    if store.dialect.name == "postgresql":
        with cast("PostgresStore", store).connection() as conn, conn.transaction():
            if partitions.is_partitioned(conn):
                for name, _lo, hi in partitions.monthly_partitions(conn):
                    if hi <= ev_cut:
                        counted = conn.execute(f"SELECT COUNT(*) FROM {name}").fetchone()
                        assert counted is not None  # COUNT(*) answers one row
                        result.events += int(counted[0])
                        conn.execute(f"DROP TABLE {name}")
                        result.dropped_partitions.append(name)
            result.events += conn.execute(f"DELETE FROM {TABLE} WHERE start_time < %s", (ev_cut,)).rowcount
        forget = getattr(store, "_months", None)
        if isinstance(forget, set):
            forget.clear()  # dropped partitions are re-created if an old event arrives later
        return result
    result.events = store.execute(f"DELETE FROM {TABLE} WHERE start_time < ?", [ev_cut])
    return result


PRUNED_KEY = "clickhouse_pruned_before"


def pruned_before(store: SQLStore) -> int | None:
    """Micros before which the ClickHouse store's events were pruned (None: never pruned)."""
    rows = store.fetch(sql(store.dialect, "SELECT value FROM meterline_meta WHERE key = ?"), (PRUNED_KEY,))
    return int(rows[0][0]) if rows else None


def _mark_pruned(store: TransactionalStore, cut: int) -> None:
    from meterline.store.sql import transaction

    with transaction(store) as tx:  # the metadata database of a ClickHouse store
        old = tx.run("SELECT value FROM meterline_meta WHERE key = ?", (PRUNED_KEY,))
        tx.run("DELETE FROM meterline_meta WHERE key = ?", (PRUNED_KEY,))
        tx.run(
            "INSERT INTO meterline_meta (key, value) VALUES (?, ?)",
            (PRUNED_KEY, str(max([cut, *(int(r[0]) for r in old)]))),
        )
