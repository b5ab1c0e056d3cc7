"""Daily rollups: per UTC day and per dimension value, every usage metric, kept next to ``events``.

A usage query over a million events scans a million rows; the same question asked of the rollup reads
one row per day and value. The rollup is maintained in the same transaction as the insert, from the
rows that were really new (a re-sent event changes nothing), so it is always exact.

A query is answered from the rollup when it asks for at most one of ``ROLLUP_DIMS`` (grouped, filtered
or both), in UTC (or a zone always at UTC+0), with no bucket or day/week/month buckets, and with start/end
at UTC midnight. Everything else scans ``events`` as before. A database whose rollup is not complete
(``meterline_meta.rollup_daily`` missing) is never read through it.

Values are stored as ``'v:' + value`` or ``'n'`` for NULL (primary keys cannot hold NULL).

Costs: NUMERIC sums of pico-dollars in PostgreSQL (exact, no upper bound). SQLite has no integer wider
than 64 bits, so each cost is kept as two sums, ``<cost>_hi`` (micro-dollars) and ``<cost>_lo`` (the pico
remainder): exact up to $9.2 * 10^12 per day and value (see ``schema.split_sum_sql``).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from meterline.core.event import COST_FIELDS
from meterline.core.timeutil import to_micros
from meterline.store.query import DAY_US, TOKEN_METRICS, Dialect, UsageQuery
from meterline.store.schema import SPLIT, TABLE

ROLLUP = "events_daily"
META_KEY = "rollup_daily"
TOTAL = "*"  # the dimension of the all-events row
ROLLUP_DIMS = (
    "provider",
    "model",
    "subscriber_id",
    "organization_id",
    "product_id",
    "agent",
    "environment",
    "team_id",
    "api_key_alias",
)
METRIC_COLUMNS = ("requests", "errors", "cancelled", "unpriced", *TOKEN_METRICS, *COST_FIELDS)
COUNT_COLUMNS = METRIC_COLUMNS[: -len(COST_FIELDS)]
SPLIT_COST_COLUMNS = tuple(f"{c}_{half}" for c in COST_FIELDS for half in ("hi", "lo"))

# per-event value of each metric, from an events row
_METRIC_EXPR = {
    "requests": "1",
    "errors": "CASE WHEN status = 'error' THEN 1 ELSE 0 END",
    "cancelled": "CASE WHEN status = 'cancelled' THEN 1 ELSE 0 END",
    "unpriced": "CASE WHEN total_cost IS NULL THEN 1 ELSE 0 END",
    **{m: m for m in TOKEN_METRICS},
    **{c: f"COALESCE({c}, 0)" for c in COST_FIELDS},
    **{f"{c}_hi": f"COALESCE({c}, 0) / {SPLIT}" for c in COST_FIELDS},
    **{f"{c}_lo": f"COALESCE({c}, 0) - COALESCE({c}, 0) / {SPLIT} * {SPLIT}" for c in COST_FIELDS},
}


def metric_columns(dialect: str) -> tuple[str, ...]:
    """The rollup's metric columns: costs whole in PostgreSQL (NUMERIC), split in two in SQLite."""
    return METRIC_COLUMNS if dialect == "postgresql" else (*COUNT_COLUMNS, *SPLIT_COST_COLUMNS)


def create_statements(dialect: str) -> list[str]:
    big = "BIGINT" if dialect == "postgresql" else "INTEGER"
    # NUMERIC in PostgreSQL: sums of pico-dollars can pass BIGINT over years of traffic
    cost = "NUMERIC" if dialect == "postgresql" else "INTEGER"
    metrics = ", ".join(f"{m} {cost if m in COST_FIELDS else big} NOT NULL" for m in metric_columns(dialect))
    return [
        f"CREATE TABLE IF NOT EXISTS {ROLLUP} (day {big} NOT NULL, dim TEXT NOT NULL, value TEXT NOT NULL, "
        f"{metrics}, PRIMARY KEY (dim, value, day))"
    ]


def _encode(column: str, dialect: Dialect) -> str:
    return f"CASE WHEN {column} IS NULL THEN 'n' ELSE 'v:' || {column} END"


def aggregate_select(source: str, dialect: Dialect) -> str:
    """SELECT (day, dim, value, metric sums…) over the events in ``source``, one group per key."""
    columns = metric_columns(dialect.name)
    per_event = ", ".join(f"{_METRIC_EXPR[m]} AS {m}" for m in columns)
    parts = [f"SELECT start_time / {DAY_US} AS day, '{TOTAL}' AS dim, 'n' AS value, {per_event} FROM {source}"]
    for d in ROLLUP_DIMS:
        parts.append(
            f"SELECT start_time / {DAY_US} AS day, '{d}' AS dim, {_encode(d, dialect)} AS value, {per_event} "
            f"FROM {source}"
        )
    sums = ", ".join(f"SUM({m})" for m in columns)
    return (
        f"SELECT day, dim, value, {sums} FROM ({' UNION ALL '.join(parts)}) AS x "
        "GROUP BY dim, value, day ORDER BY dim, value, day"  # one lock order for concurrent writers
    )


def upsert_sql(source: str, dialect: Dialect) -> str:
    """Add the events in ``source`` to the rollup."""
    columns = metric_columns(dialect.name)
    cols = ", ".join(columns)
    sets = ", ".join(f"{m} = {ROLLUP}.{m} + excluded.{m}" for m in columns)
    select = aggregate_select(source, dialect)
    if dialect.name == "sqlite":  # SQLite's upsert parser needs a WHERE on INSERT … SELECT
        select = f"SELECT * FROM ({select}) WHERE true"
    return f"INSERT INTO {ROLLUP} (day, dim, value, {cols}) {select} ON CONFLICT (dim, value, day) DO UPDATE SET {sets}"


def rebuild_statements(dialect: Dialect) -> list[str]:
    """Build the rollup from every stored event and mark it complete (run in one transaction)."""
    mark = (
        f"INSERT OR REPLACE INTO meterline_meta (key, value) VALUES ('{META_KEY}', '1')"
        if dialect.name == "sqlite"
        else f"INSERT INTO meterline_meta (key, value) VALUES ('{META_KEY}', '1') ON CONFLICT (key) DO NOTHING"
    )
    return [f"DELETE FROM {ROLLUP}", upsert_sql(TABLE, dialect), mark]


READY_SQL = f"SELECT value FROM meterline_meta WHERE key = '{META_KEY}'"
SPLIT_PROBE = f"SELECT {SPLIT_COST_COLUMNS[0]} FROM {ROLLUP} LIMIT 0"  # fails on a SQLite rollup of before


def upgrade_split_statements() -> list[str]:
    """SQLite: replace a rollup with single (overflowing) cost sums by the split one, rebuilt from events."""
    return [f"DROP TABLE IF EXISTS {ROLLUP}", f"DELETE FROM meterline_meta WHERE key = '{META_KEY}'"]


# -- reading --------------------------------------------------------------------------------------
def _midnight(dt: datetime | None) -> bool:
    if dt is None:
        return True
    u = dt.astimezone(timezone.utc)
    return (u.hour, u.minute, u.second, u.microsecond) == (0, 0, 0, 0)


def _utc_zone(tz: str) -> bool:
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(tz)
    now = datetime.now(timezone.utc)
    return all(
        (zone.utcoffset(datetime(now.year + y, month, 1)) or timedelta(0)) == timedelta(0)
        for y in (-1, 0)
        for month in (1, 4, 7, 10)
    )


def usable(q: UsageQuery) -> str | None:
    """The rollup dimension that answers ``q`` (``'*'`` for totals), or None when it cannot."""
    dims = set(q.group_by) | set(q.filters)
    if len(q.group_by) > 1 or len(dims) > 1 or not dims <= set(ROLLUP_DIMS):
        return None
    if q.bucket == "hour" or not (_midnight(q.start) and _midnight(q.end)) or not _utc_zone(q.tz):
        return None
    return next(iter(dims)) if dims else TOTAL


def usage_sql(q: UsageQuery, dim: str, dialect: Dialect) -> tuple[str, list[Any], tuple[int | None, int, bool]]:
    """SQL over the rollup with the columns ``query.shape_usage_rows`` expects (days bucket like SQL
    buckets of one day at offset 0; weeks and months are rolled up from days there)."""
    ph = dialect.placeholder
    where = [f"dim = {ph}"]
    params: list[Any] = [dim]
    if q.start is not None:
        where.append(f"day >= {ph}")
        params.append(to_micros(q.start) // DAY_US)
    if q.end is not None:
        where.append(f"day < {ph}")
        params.append(to_micros(q.end) // DAY_US)
    for values in q.filters.values():
        vals = [values] if isinstance(values, str) else list(values)
        where.append(f"value IN ({', '.join([ph] * len(vals))})")
        params += ["v:" + str(v) for v in vals]
    select: list[str] = []
    group: list[str] = []
    if q.bucket is not None:
        select.append("day AS bucket_key")
        group.append("day")
    if q.group_by:
        select.append(f"value AS {q.group_by[0]}")
        group.append("value")
    if dialect.name in ("postgresql", "clickhouse"):  # whole cost sums (NUMERIC, Int128): no overflow
        metrics = [f"SUM({m}) AS {m}" for m in METRIC_COLUMNS]
    else:
        metrics = [f"SUM({m}) AS {m}" for m in COUNT_COLUMNS]
        metrics += [f"SUM({c}_hi) AS {c}__hi, SUM({c}_lo) AS {c}__lo" for c in COST_FIELDS]
    sql = f"SELECT {', '.join([*select, *metrics])} FROM {ROLLUP} WHERE {' AND '.join(where)}"
    if group:
        sql += f" GROUP BY {', '.join(group)}"
    plan = (DAY_US, 0, q.bucket != "day") if q.bucket is not None else (None, 0, False)
    return sql, params, plan


def decode_rows(q: UsageQuery, columns: list[str], rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rollup values back to plain values (``'v:x'`` → ``'x'``, ``'n'`` → None)."""
    if not q.group_by:
        return rows
    i = columns.index(q.group_by[0])
    out = []
    for r in rows:
        v = r[i]
        out.append((*r[:i], None if v == "n" else str(v)[2:], *r[i + 1 :]))
    return out
