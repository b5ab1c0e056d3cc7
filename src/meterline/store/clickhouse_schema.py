"""ClickHouse DDL for ``events`` and its daily rollup (a materialized view), derived from ``schema.COLUMNS``.

Storage forms match the SQL stores (so the read SQL and ``row_to_event`` are shared): times as Int64
microseconds, costs as integer pico-dollars. Differences, each for a reason:

- costs are ``Int128``: ClickHouse sums an Int64 column as Int64 and wraps silently past ~$9.2M of
  pico-dollars; an Int128 column sums as Int128 (exact far past $10^12 per group).
- ``ReplacingMergeTree`` ordered by ``(start_time, id)``: a re-sent event (same id, so same start time) is
  one row after merges; reads that must be exact say ``FINAL`` (``EVENTS_FINAL``). The writer also skips
  ids already stored (see ``ClickHouseStore.insert``), under a lock every collector shares
  (``clickhouse_lock``), so the rollups count each event once.
- ``PARTITION BY`` calendar month (UTC): retention drops whole partitions.
- dimensions that take few values are ``LowCardinality``.
- the daily rollup is a ``SummingMergeTree`` fed by a materialized view, with the same layout as the SQL
  stores' ``events_daily`` (``dim``, ``value`` as ``'v:'+value`` or ``'n'``, ``day``), so ``rollup.usage_sql``
  reads it unchanged (with ``SUM`` and ``GROUP BY``: parts not yet merged are summed at read time).
"""

from __future__ import annotations

from meterline.core.event import CALL_DIMENSIONS
from meterline.store.query import DAY_US
from meterline.store.rollup import METRIC_COLUMNS, ROLLUP, ROLLUP_DIMS, TOTAL
from meterline.store.schema import COLUMNS, TABLE

EVENTS_FINAL = f"{TABLE} FINAL"
ROLLUP_VIEW = "events_daily_mv"

# few distinct values: dictionary-encoded
# String columns with few distinct values: dictionary-encoded. The call's own dimensions (not the bool stream),
# the SDK version, and these attribution and gateway fields; ids, emails and hashes stay plain String.
_FEW_VALUES = frozenset(
    {
        "agent",
        "api_base",
        "api_key_alias",
        "credential_alias",
        "deployment_id",
        "environment",
        "model_group",
        "product_id",
        "region",
        "task_type",
        "team_id",
        "trace_type",
    }
)
LOW_CARDINALITY = (frozenset(CALL_DIMENSIONS) - {"stream"}) | {"sdk_version"} | _FEW_VALUES
NOT_NULL = frozenset({"id", "start_time", "provider", "model"})

_TYPES = {
    "text": "String",
    "int": "Int64",
    "time": "Int64",
    "real": "Float64",
    "bool": "UInt8",
    "json": "String",
    "cost": "Int128",
}


def column_type(name: str, kind: str) -> str:
    base = _TYPES[kind]
    typ = base if name in NOT_NULL else f"Nullable({base})"
    if base == "String" and name in LOW_CARDINALITY:
        typ = f"LowCardinality({typ})"
    return typ


def create_statements(replicated: bool = False) -> list[str]:
    """CREATE statements; ``replicated`` uses the Replicated* engines with the server's default replica path
    and name (``default_replica_path``/``default_replica_name``), for a cluster with ClickHouse Keeper."""
    prefix = "Replicated" if replicated else ""
    cols = ",\n  ".join(f"{name} {column_type(name, kind)}" for name, kind in COLUMNS)
    events = (
        f"CREATE TABLE IF NOT EXISTS {TABLE} (\n  {cols},\n"
        "  INDEX ix_id id TYPE bloom_filter GRANULARITY 4,\n"
        "  INDEX ix_subscriber subscriber_id TYPE bloom_filter GRANULARITY 4,\n"
        "  INDEX ix_trace trace_id TYPE bloom_filter GRANULARITY 4\n"
        f") ENGINE = {prefix}ReplacingMergeTree\n"
        "PARTITION BY toYYYYMM(fromUnixTimestamp64Micro(start_time, 'UTC'))\n"
        "ORDER BY (start_time, id)"
    )
    metrics = ", ".join(f"{m} {'Int128' if m.endswith('_cost') else 'Int64'}" for m in METRIC_COLUMNS)
    rollup = (
        f"CREATE TABLE IF NOT EXISTS {ROLLUP} (day Int64, dim LowCardinality(String), value String, {metrics}) "
        f"ENGINE = {prefix}SummingMergeTree ORDER BY (dim, value, day)"
    )
    return [events, rollup, _view_statement()]


def add_column_statements() -> list[str]:
    """Columns added to the event schema after a table was created (idempotent)."""
    return [
        f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS {name} {column_type(name, kind)}"
        for name, kind in COLUMNS
        if name not in NOT_NULL
    ]


def _view_statement() -> str:
    return f"CREATE MATERIALIZED VIEW IF NOT EXISTS {ROLLUP_VIEW} TO {ROLLUP} AS {rollup_select(TABLE)}"


def per_event_metrics(sign: str | None = None) -> str:
    """Each event's value of every rollup metric, named ``m_<metric>``; with ``sign`` (a column of +1/-1),
    times that sign. Shared by the daily and the hourly rollups.

    Per-event values get their own names in a subquery: ClickHouse aliases are query-wide, so
    ``sum(total_cost) AS total_cost`` next to ``isNull(total_cost)`` would nest aggregates."""
    per_event = {
        "requests": "1",
        "errors": "toInt64(status = 'error')",
        "cancelled": "toInt64(status = 'cancelled')",
        "unpriced": "toInt64(isNull(total_cost))",
    }
    times = f" * {sign}" if sign else ""
    inner = []
    for m in METRIC_COLUMNS:
        if m in per_event:
            value = f"toInt64({per_event[m]}{times})" if sign else per_event[m]
            inner.append(f"{value} AS m_{m}")
        elif m.endswith("_cost"):
            inner.append(f"toInt128(ifNull({m}, 0)){times} AS m_{m}")
        else:
            inner.append(f"toInt64(ifNull({m}, 0)){times} AS m_{m}")
    return ", ".join(inner)


def rollup_select(source: str, sign: str | None = None) -> str:
    """The rollup rows (day, dim, value, sums) of the events in ``source`` (a table or a parenthesised
    query); with ``sign``, each event counts ``sign`` times (a column of +1/-1: re-pricing's delta rows)."""
    names = ", ".join(f"'{d}'" for d in (TOTAL, *ROLLUP_DIMS))
    values = ", ".join(["'n'", *(f"if(isNull({d}), 'n', concat('v:', toString({d})))" for d in ROLLUP_DIMS)])
    sums = ", ".join(f"sum(m_{m}) AS {m}" for m in METRIC_COLUMNS)
    return (
        f"SELECT day, dim, value, {sums} FROM (SELECT intDiv(start_time, {DAY_US}) AS day, dv.1 AS dim, "
        f"dv.2 AS value, {per_event_metrics(sign)} "
        f"FROM {source} ARRAY JOIN arrayZip([{names}], [{values}]) AS dv) GROUP BY day, dim, value"
    )


def rebuild_rollup_statements() -> list[str]:
    """Rebuild the rollup from every stored event (after a re-price or a repair)."""
    return [f"TRUNCATE TABLE {ROLLUP}", f"INSERT INTO {ROLLUP} {rollup_select(EVENTS_FINAL)}"]
