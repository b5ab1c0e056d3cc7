"""Stored provider costs rewritten after a price change (``meterline reprice``), and the rollups rebuilt.

Only the cost columns and ``pricing_source`` of the events given are updated, in one transaction with
the rebuild of the daily and the billing rollups (so usage queries never see the two disagree). Invoice tables are not
touched: finalized invoices are snapshots. The ClickHouse store has no such transaction and no row updates
worth the name: :mod:`meterline.store.clickhouse_reprice` writes newer versions of the events instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from meterline.store import billing_rollup
from meterline.store import rollup as rollups
from meterline.store.base import TransactionalStore
from meterline.store.schema import TABLE
from meterline.store.sql import on_clickhouse, transaction

COST_COLUMNS = ("input_cost", "cache_read_cost", "cache_write_cost", "output_cost", "total_cost", "pricing_source")


def update_costs(store: TransactionalStore, rows: Sequence[tuple[Any, ...]]) -> None:
    """``rows``: (input, cache_read, cache_write, output, total pico-USD or None, pricing_source, event id)."""
    if on_clickhouse(store):  # a transaction here would run in its metadata database, not on its events
        from meterline.store.clickhouse_reprice import update_costs as update_clickhouse

        update_clickhouse(store, rows)
        return
    sets = ", ".join(f"{c} = ?" for c in COST_COLUMNS)
    with transaction(store) as tx:
        for i in range(0, len(rows), 5000):
            tx.many(f"UPDATE {TABLE} SET {sets} WHERE id = ?", rows[i : i + 5000])
        for stmt in rollups.rebuild_statements(store.dialect):
            tx.run(stmt)
        dim = tx.run("SELECT value FROM meterline_meta WHERE key = ?", (billing_rollup.META_KEY,))
        if dim:  # billing is in use: its hourly usage is rebuilt too
            for stmt in billing_rollup.rebuild_statements(store.dialect.name, str(dim[0][0])):
                tx.run(stmt)
