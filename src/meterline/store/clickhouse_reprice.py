"""Re-pricing on the ClickHouse store: a newer version of each re-priced event, and the daily rollup corrected.

ClickHouse has two ways to change stored rows, and re-pricing uses the second:

- ``ALTER TABLE events UPDATE …`` is a *mutation*: it rewrites every data part that holds one of the rows
  (gigabytes for a few re-priced events spread over a month), runs in the background unless told to wait,
  needs one statement per distinct value (or a giant ``CASE`` over the ids), and is invisible to the
  materialized view, so the daily rollup would keep the old costs anyway.
- ``events`` is a ``ReplacingMergeTree`` keyed on ``(start_time, id)``: a row inserted later with the same key
  *replaces* the earlier one (every read says ``FINAL``; merges drop the old row). Re-pricing writes the new
  versions, which costs what inserting those rows costs.

The new versions must not go through an ``INSERT INTO events``: the materialized view would add them to the
daily rollup on top of the old versions (every re-priced event counted twice in usage sums). So they are
inserted into a staging table with the same structure and attached with ``ATTACH PARTITION … FROM`` (a copy
of whole parts that fires no view; the attached parts get new block numbers, so ``FINAL`` keeps them), and
the rollups (daily and hourly) get one insert of delta rows each (new version +1, old version -1, per day and
dimension value, or per hour and dimension values), which their ``SummingMergeTree`` adds up. ClickHouse has
no transaction over both steps: between the attach and the delta insert (milliseconds) a usage query answered
from a rollup still shows the costs from before the re-price; if the process dies right there, ``meterline
migrate --rebuild-rollup`` makes the rollups exact again. Events are never counted twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from meterline.store import clickhouse_hourly as ch_hourly
from meterline.store import clickhouse_schema as ch_schema
from meterline.store.rollup import ROLLUP
from meterline.store.schema import COLUMN_NAMES, TABLE

if TYPE_CHECKING:
    from meterline.store.clickhouse import ClickHouseStore

COST_COLUMNS = ("input_cost", "cache_read_cost", "cache_write_cost", "output_cost", "total_cost", "pricing_source")
_CHUNK = 50_000  # cost rows per staged insert


def update_costs(store: ClickHouseStore, rows: Sequence[tuple[Any, ...]]) -> None:
    """``rows``: (input, cache_read, cache_write, output, total pico-USD or None, pricing_source, event id)."""
    if not rows:
        return
    tag = uuid.uuid4().hex[:12]  # several re-pricers (replicas) never share a staging table
    costs, stage = f"meterline_reprice_costs_{tag}", f"meterline_reprice_events_{tag}"
    cost_types = ", ".join(f"{c} {'Nullable(String)' if c == 'pricing_source' else 'Nullable(Int128)'}"
                           for c in COST_COLUMNS)  # fmt: skip
    run = store.command_clickhouse
    run(f"CREATE TABLE {costs} (id String, {cost_types}) ENGINE = Memory")
    try:
        for i in range(0, len(rows), _CHUNK):
            chunk = rows[i : i + _CHUNK]
            store.insert_clickhouse(costs, [(r[-1], *r[:-1]) for r in chunk], ("id", *COST_COLUMNS))
        # the staging table: the events table's columns, partitioning and order, never replicated (its
        # parts are attached to ``events`` below; a Replicated ``events`` accepts parts from a plain one)
        run(
            f"CREATE TABLE {stage} AS {TABLE} ENGINE = ReplacingMergeTree "
            f"PARTITION BY toYYYYMM(fromUnixTimestamp64Micro(start_time, 'UTC')) ORDER BY (start_time, id)"
        )
        try:
            _stage_and_attach(store, costs, stage)
        finally:
            run(f"DROP TABLE IF EXISTS {stage}")
    finally:
        run(f"DROP TABLE IF EXISTS {costs}")


def _stage_and_attach(store: ClickHouseStore, costs: str, stage: str) -> None:
    run = store.command_clickhouse
    cols = ", ".join(COLUMN_NAMES)
    picked = ", ".join(f"c.{c}" if c in COST_COLUMNS else f"e.{c}" for c in COLUMN_NAMES)
    run(
        f"INSERT INTO {stage} ({cols}) SELECT {picked} FROM {TABLE} AS e FINAL INNER JOIN {costs} AS c ON e.id = c.id "
        f"WHERE e.id IN (SELECT id FROM {costs})"  # lets the id skip index pick the granules
    )
    # the old versions, kept before the attach hides them, for the rollup's delta
    old = f"{stage}_old"
    run(f"CREATE TABLE {old} AS {stage}")
    try:
        run(
            f"INSERT INTO {old} ({cols}) SELECT {cols} FROM {ch_schema.EVENTS_FINAL} "
            f"WHERE id IN (SELECT id FROM {stage})"
        )
        parts = store.fetch_clickhouse(
            "SELECT DISTINCT partition_id FROM system.parts WHERE database = currentDatabase() AND table = %s "
            "AND active ORDER BY partition_id",
            [stage],
        )
        for (partition,) in parts:
            run(f"ALTER TABLE {TABLE} ATTACH PARTITION ID '{int(partition)}' FROM {stage}")
        delta = f"(SELECT *, toInt8(1) AS sign FROM {stage} UNION ALL SELECT *, toInt8(-1) AS sign FROM {old})"
        run(f"INSERT INTO {ROLLUP} {ch_schema.rollup_select(delta, 'sign')}")
        run(f"INSERT INTO {ch_hourly.HOURLY} {ch_hourly.hourly_select(delta, 'sign')}")
    finally:
        run(f"DROP TABLE IF EXISTS {old}")
