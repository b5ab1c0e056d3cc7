"""ClickHouse only: the hourly rollup, which answers the usage queries the daily rollup cannot.

The daily rollup (``events_daily``, one dimension per row, UTC days) answers one-dimension reports. Reports with
two dimensions (customer x model: an invoice's lines), hour buckets, or a zone with daylight saving scan
``events``: on 10M events that is most of a second even in ClickHouse. ``events_hourly`` holds one row per UTC
hour and combination of the ``HOURLY_DIMS`` values that occurred, with every usage metric summed; a
``SummingMergeTree`` fed by a materialized view on insert, as ``events_daily`` is. Its ``start_time`` column is
the hour's start (µs), so the scan's own bucket and filter SQL (``query.usage_sql``) runs on it unchanged:
only the metrics become sums of sums.

A query is answered from it when every dimension it groups or filters by is in ``HOURLY_DIMS``, its start and
end fall on whole UTC hours, and its buckets are whole hours of UTC (hour, or day/week/month in a zone whose
offset is a whole number of hours: Europe/Paris is, Asia/Kolkata is not). Everything else scans ``events``.

Exactness: the same as ``events_daily``. The writer inserts only ids not stored yet, under a lock every
collector shares (``clickhouse_lock``: collectors racing on one re-sent event insert it once), so each event is
counted once. Unlike the daily rollup, which keeps the
totals of pruned periods, ``meterline prune`` removes the pruned hours from it: hour-grained reports then
answer what a scan of the SQL stores answers.
"""

from __future__ import annotations

from typing import Any

from meterline.core.event import COST_FIELDS
from meterline.core.timeutil import to_micros
from meterline.store import query as queries
from meterline.store.clickhouse_schema import per_event_metrics
from meterline.store.rollup import METRIC_COLUMNS, ROLLUP_DIMS
from meterline.store.schema import TABLE

HOURLY = "events_hourly"
HOURLY_VIEW = "events_hourly_mv"
# the dimensions reports group and filter by (the daily rollup's): a combination of them per hour is one row
HOURLY_DIMS = ROLLUP_DIMS
_LOW_CARDINALITY = frozenset({"provider", "model", "product_id", "agent", "environment", "team_id", "api_key_alias"})

# the scan's per-event metrics -> the same metric over the hourly rows
_SUMS = {
    "COUNT(*) AS requests": "SUM(requests) AS requests",
    "SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS errors": "SUM(errors) AS errors",
    "SUM(CASE WHEN status = 'cancelled' THEN 1 ELSE 0 END) AS cancelled": "SUM(cancelled) AS cancelled",
    "SUM(CASE WHEN total_cost IS NULL THEN 1 ELSE 0 END) AS unpriced": "SUM(unpriced) AS unpriced",
}


def _dim_type(dim: str) -> str:
    base = "String" if dim in ("provider", "model") else "Nullable(String)"
    return f"LowCardinality({base})" if dim in _LOW_CARDINALITY else base


def create_statements(replicated: bool = False) -> list[str]:
    prefix = "Replicated" if replicated else ""
    dims = ", ".join(f"{d} {_dim_type(d)}" for d in HOURLY_DIMS)
    metrics = ", ".join(f"{m} {'Int128' if m in COST_FIELDS else 'Int64'}" for m in METRIC_COLUMNS)
    table = (
        f"CREATE TABLE IF NOT EXISTS {HOURLY} (start_time Int64, {dims}, {metrics}) "
        f"ENGINE = {prefix}SummingMergeTree "
        "PARTITION BY toYYYYMM(fromUnixTimestamp64Micro(start_time, 'UTC')) "
        f"ORDER BY (start_time, {', '.join(HOURLY_DIMS)}) SETTINGS allow_nullable_key = 1"
    )
    view = f"CREATE MATERIALIZED VIEW IF NOT EXISTS {HOURLY_VIEW} TO {HOURLY} AS {hourly_select(TABLE)}"
    return [table, view]


def hourly_select(source: str, sign: str | None = None) -> str:
    """The hourly rows of the events in ``source`` (a table or a parenthesised query); with ``sign`` (a column
    of +1/-1), each event counts that many times (re-pricing's delta rows)."""
    dims = ", ".join(HOURLY_DIMS)
    sums = ", ".join(f"sum(m_{m}) AS {m}" for m in METRIC_COLUMNS)
    return (
        f"SELECT h AS start_time, {dims}, {sums} FROM "
        f"(SELECT intDiv(start_time, {queries.HOUR_US}) * {queries.HOUR_US} AS h, {dims}, "
        f"{per_event_metrics(sign)} FROM {source}) GROUP BY h, {dims}"
    )


def rebuild_statements(events_final: str) -> list[str]:
    return [f"TRUNCATE TABLE {HOURLY}", f"INSERT INTO {HOURLY} {hourly_select(events_final)}"]


def prune_statements(cut: int, events_final: str) -> list[tuple[str, list[Any]]]:
    """After the events before ``cut`` (µs) were deleted: delete the hours before it, and rebuild the hour
    that holds the cut from the events left in it."""
    hour = cut - cut % queries.HOUR_US
    left = f"(SELECT * FROM {events_final} WHERE start_time >= {hour} AND start_time < {hour + queries.HOUR_US})"
    return [
        (f"DELETE FROM {HOURLY} WHERE start_time <= %s", [hour]),
        (f"INSERT INTO {HOURLY} {hourly_select(left)}", []),
    ]


def usable(q: queries.UsageQuery) -> bool:
    """Whether ``events_hourly`` answers ``q`` exactly as a scan of ``events`` would."""
    if not (set(q.group_by) | set(q.filters)) <= set(HOURLY_DIMS):
        return False
    for bound in (q.start, q.end):
        if bound is not None and to_micros(bound) % queries.HOUR_US:
            return False
    unit, offset, _ = queries.bucket_plan(q)
    return unit in (None, queries.HOUR_US, queries.DAY_US) and offset % queries.HOUR_US == 0


def usage_sql(q: queries.UsageQuery) -> tuple[str, list[Any], tuple[int | None, int, bool]]:
    """The scan's SQL (``query.usage_sql``) over ``events_hourly``: same buckets, filters and columns."""
    sql, params, plan = queries.usage_sql(q, queries.CLICKHOUSE, source=HOURLY)
    for scan, summed in _SUMS.items():
        sql = sql.replace(scan, summed, 1)
    return sql, params, plan
