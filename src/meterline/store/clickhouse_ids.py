"""The ClickHouse store's id look-up table: ``event_ids``, every stored event id, keyed by id alone.

An event id is the idempotency key: first write wins, a retry is a duplicate whatever else differs. ``events``
is keyed (and partitioned by month) on ``start_time`` first, so a look-up of a batch's ids in ``events`` is
cheap only within the batch's ``start_time`` range, and a retry whose ``start_time`` differs (1 ms later, across
a month boundary, 40 days later) was not found there and was stored a second time.

Why a table in ClickHouse, fed by a materialized view, rather than a claim table in the metadata database (as
PostgreSQL's own ``event_ids``, ``store.event_ids``):

- a look-up by id reads a few granules of its primary key: 500 ids in ~6 ms, 5,000 in ~21 ms on 10M stored ids
  (chdb, the 2-core development machine), about what the old ``start_time``-range look-up cost;
- the metadata database stays small (keys, budgets, ledgers): it does not grow by one row per event, and a
  ClickHouse store is meant for billions of them;
- every write that reaches ``events`` with an ``INSERT`` fills it, as part of that insert (the view): the
  collector, ``meterline migrate --to``, bulk loads; re-pricing attaches parts and fires no view, but only
  re-writes ids that are already here;
- the upgrade fills it inside ClickHouse (``INSERT … SELECT id FROM events``, streamed), no id leaves the server.

The id look-up and the insert still run under the metadata database's insert lock (``clickhouse_lock``):
the view fills ``event_ids`` within the insert, so the next holder of the lock finds the ids.

``ReplacingMergeTree`` ordered by ``id``: a row per id after merges (rows written twice meanwhile, by a backfill
run by two processes at once, only cost room). ``meterline prune`` keeps these rows, as on PostgreSQL: a late
retry of a pruned id is refused, not billed again (about 35 bytes per event ever stored for a UUID id).

Upgrade: a store made before this table opens with it created, the view created first (so events inserted by
other collectors meanwhile are covered), then filled from ``events``; the metadata key :data:`READY` is set
when the fill is done (a process killed during it leaves the key unset: the next open fills again). Every event
is kept; ids already stored more than once (different ``start_time``) are logged in one line and listed by
:data:`DUPLICATES_SQL`. Until the key is set (a store opened with ``create=False``), ids are looked up in
``events`` without a time range (exact, but a scan helped only by the id bloom filter).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from meterline.store.schema import TABLE
from meterline.store.sql import sql

if TYPE_CHECKING:
    from meterline.store.clickhouse import ClickHouseStore

logger = logging.getLogger("meterline")

ID_TABLE = "event_ids"
ID_VIEW = "event_ids_mv"
READY = "clickhouse_event_ids_ready"  # metadata key: '1' once event_ids holds every stored id
# the ids stored more than once (before event_ids existed: another start_time), with how many rows each has
DUPLICATES_SQL = f"SELECT id, count() AS copies FROM {TABLE} FINAL GROUP BY id HAVING count() > 1 ORDER BY id"
# the upgrade's duplicate count groups every id: let ClickHouse spill to disk past 1 GiB rather than fail
_GROUP_SETTINGS = {"max_bytes_before_external_group_by": 1 << 30}


def create_statements(replicated: bool = False) -> list[str]:
    """The table, then its view (``IF NOT EXISTS``: idempotent)."""
    prefix = "Replicated" if replicated else ""
    return [
        f"CREATE TABLE IF NOT EXISTS {ID_TABLE} (id String) ENGINE = {prefix}ReplacingMergeTree ORDER BY id",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {ID_VIEW} TO {ID_TABLE} AS SELECT id FROM {TABLE}",
    ]


def is_ready(store: ClickHouseStore) -> bool:
    meta = store.meta
    rows = meta.fetch(sql(meta.dialect, "SELECT value FROM meterline_meta WHERE key = ?"), (READY,))
    return bool(rows) and str(rows[0][0]) == "1"


def ensure(store: ClickHouseStore) -> int | None:
    """Fill ``event_ids`` from ``events`` unless the metadata database says it is done (the table and its
    view exist). Keeps every event; returns how many ids are stored more than once when it filled now (and
    logs one line when there are any), else None."""
    if is_ready(store):
        return None
    duplicates = 0
    if store.fetch_clickhouse(f"SELECT 1 FROM {TABLE} LIMIT 1"):
        store.command_clickhouse(f"INSERT INTO {ID_TABLE} (id) SELECT id FROM {TABLE}")
        duplicates = int(
            store.fetch_clickhouse(f"SELECT count() FROM ({DUPLICATES_SQL})", settings=_GROUP_SETTINGS)[0][0]
        )
        if duplicates:
            logger.warning(
                "meterline: %d event id(s) are stored more than once in ClickHouse (written before event ids "
                "were looked up across start times); every row is kept, new duplicates are refused. List them: %s",
                duplicates,
                DUPLICATES_SQL,
            )
    meta = store.meta
    try:
        meta.execute(sql(meta.dialect, "INSERT INTO meterline_meta (key, value) VALUES (?, ?)"), (READY, "1"))
    except Exception:  # another process filled it at the same time and marked it first
        if not is_ready(store):
            raise
    return duplicates
