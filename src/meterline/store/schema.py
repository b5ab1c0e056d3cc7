"""The ``events`` table, one definition for every SQL store (SQLite and PostgreSQL).

Storage forms: times as integer microseconds since the epoch (UTC) so range scans and time buckets are
integer arithmetic in any dialect; costs as integer pico-dollars (10^-12 USD, exactly the precision of
the event's Decimal costs) so SQL sums are exact; tags and attributes as JSON text.
"""

from __future__ import annotations

import json
import operator
from decimal import Decimal
from typing import Any

from meterline.core.event import CONTENT_FIELDS, COST_FIELDS, FIELD_NAMES, UsageEvent
from meterline.core.timeutil import from_micros, to_micros

TABLE = "events"
PICO = Decimal(10) ** 12

# column kind per field; every other field is TEXT
_KINDS: dict[str, str] = {
    "schema_version": "int",
    "start_time": "time",
    "end_time": "time",
    "duration_ms": "real",
    "time_to_first_token_ms": "real",
    "stream": "bool",
    "input_tokens": "int",
    "cache_read_tokens": "int",
    "cache_write_tokens": "int",
    "cache_write_1h_tokens": "int",
    "output_tokens": "int",
    "reasoning_tokens": "int",
    "total_tokens": "int",
    "response_quality_score": "real",
    "retry_number": "int",
    "cache_hit": "bool",
    "fallback_depth": "int",
    "tags": "json",
    "attributes": "json",
    **dict.fromkeys(COST_FIELDS, "cost"),
}

# Captured content is not a column: it lives in ``event_content`` (meterline.store.content), so the usage
# rows stay small. (Databases created before keep their old, unused input_messages/output_text columns.)
COLUMNS: tuple[tuple[str, str], ...] = tuple(
    (name, _KINDS.get(name, "text")) for name in FIELD_NAMES if name not in CONTENT_FIELDS
)
COLUMN_NAMES = tuple(name for name, _ in COLUMNS)
KIND = dict(COLUMNS)

_SQL_TYPES = {
    "sqlite": {
        "text": "TEXT",
        "int": "INTEGER",
        "time": "INTEGER",
        "real": "REAL",
        "bool": "INTEGER",
        "json": "TEXT",
        "cost": "INTEGER",
    },
    "postgresql": {
        "text": "TEXT",
        "int": "BIGINT",
        "time": "BIGINT",
        "real": "DOUBLE PRECISION",
        "bool": "BOOLEAN",
        "json": "TEXT",
        "cost": "BIGINT",
    },
}

# Dimensions a usage query may group or filter by.

INDEXES = (
    ("ix_events_start", "start_time"),
    ("ix_events_subscriber", "subscriber_id, start_time"),
    ("ix_events_org", "organization_id, start_time"),
    ("ix_events_trace", "trace_id, start_time"),
    ("ix_events_team", "team_id, start_time"),
    ("ix_events_model", "model, start_time"),
)


def create_statements(dialect: str) -> list[str]:
    types = _SQL_TYPES[dialect]
    # PostgreSQL: partitioned by month of start_time (meterline.store.partitions), so retention drops whole
    # partitions; a partitioned table's key must include the partition column: (id, start_time). A
    # retried event carries its original start_time, so the id stays the idempotency key.
    partitioned = dialect == "postgresql"
    cols = ",\n  ".join(
        f"{name} {types[kind]}{' PRIMARY KEY' if name == 'id' and not partitioned else ''}"
        f"{' NOT NULL' if name in ('id', 'start_time', 'provider', 'model') else ''}"
        for name, kind in COLUMNS
    )
    if partitioned:
        stmts = [
            f"CREATE TABLE IF NOT EXISTS {TABLE} (\n  {cols},\n  PRIMARY KEY (id, start_time)\n)"
            " PARTITION BY RANGE (start_time)",
            # a database from before partitioning keeps its plain table until `meterline migrate`
            f"DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = '{TABLE}'::regclass) "
            f"THEN CREATE TABLE IF NOT EXISTS {TABLE}_default PARTITION OF {TABLE} DEFAULT; END IF; END $$",
        ]
    else:
        stmts = [f"CREATE TABLE IF NOT EXISTS {TABLE} (\n  {cols}\n)"]
    stmts += [f"CREATE INDEX IF NOT EXISTS {ix} ON {TABLE} ({cols_})" for ix, cols_ in INDEXES]
    return stmts


def to_pico(value: Decimal) -> int:
    return int(value * PICO)


def from_pico(value: int) -> Decimal:
    return (Decimal(value) / PICO).quantize(Decimal("1e-12"))


# Exact cost sums in SQL. One event's cost fits int64 pico-dollars (event.MAX_COST is $9,000,000), but a
# sum of them may not: SQLite's SUM() raises "integer overflow" past 2^63 pico (~$9.2 million). So SQL sums
# the micro-dollar part and the pico remainder separately, both far from overflow (the first reaches 2^63
# only past $9.2 * 10^12, the second after 9.2 * 10^12 events), and Python adds them as exact integers.
SPLIT = 1_000_000


def split_sum_sql(column: str, alias: str | None = None) -> str:
    """``SUM(col / 10^6) AS alias__hi, SUM(col mod 10^6) AS alias__lo`` (see :func:`join_split`)."""
    a = alias or column
    # the remainder as a - a / n * n: '%' would be a placeholder for psycopg
    return f"SUM({column} / {SPLIT}) AS {a}__hi, SUM({column} - {column} / {SPLIT} * {SPLIT}) AS {a}__lo"


def join_split(hi: Any, lo: Any) -> int | None:
    """Pico-dollars from the two halves of a split sum (None when both are NULL: nothing to add)."""
    if hi is None and lo is None:
        return None
    return int(hi or 0) * SPLIT + int(lo or 0)


_ALL_FIELDS = operator.attrgetter(*COLUMN_NAMES)
_INDEXES = {k: tuple(i for i, (_, kind) in enumerate(COLUMNS) if kind == k) for k in ("time", "cost", "json", "bool")}


def _json(value: Any) -> str:
    if not value:  # the common empty tags/attributes, without json.dumps
        return "[]" if isinstance(value, list) else "{}" if isinstance(value, dict) else json.dumps(value)
    return json.dumps(value, separators=(",", ":"), default=str)


def event_to_row(event: UsageEvent, *, native_bool: bool = False) -> tuple[Any, ...]:
    # Every attribute in one C call, then only the few columns that need converting: this runs once per
    # stored event, on the recorder's thread in an app and on the request path in the collector.
    row = list(_ALL_FIELDS(event))
    for i in _INDEXES["time"]:
        if row[i] is not None:
            row[i] = to_micros(row[i])
    for i in _INDEXES["cost"]:
        if row[i] is not None:
            row[i] = to_pico(row[i])
    for i in _INDEXES["json"]:
        if row[i] is not None:
            row[i] = _json(row[i])
    for i in _INDEXES["bool"]:
        if row[i] is not None:
            row[i] = bool(row[i]) if native_bool else int(row[i])
    return tuple(row)


def row_to_event(row: Any) -> UsageEvent:
    kw: dict[str, Any] = {}
    for (name, kind), v in zip(COLUMNS, row, strict=True):
        if v is None:
            continue
        if kind == "time":
            kw[name] = from_micros(int(v))
        elif kind == "cost":
            kw[name] = from_pico(int(v))
        elif kind == "json":
            kw[name] = json.loads(v)
        elif kind == "bool":
            kw[name] = bool(v)
        else:
            kw[name] = v
    return UsageEvent(**kw)
