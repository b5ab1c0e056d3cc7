"""Dialect-neutral SQL for usage reports and event listings, shared by the SQLite and PostgreSQL stores.

Time buckets: SQL groups by integer arithmetic on microsecond timestamps (``(start_time + offset) /
unit``), which is exact in both dialects. Zones with a fixed offset bucket directly in SQL; zones with
daylight saving group by UTC hour (or quarter hour) in SQL and are rolled up to local buckets here.
Weeks start on Monday; months are calendar months in the requested zone.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from meterline.core.event import COST_FIELDS, DIMENSIONS, MAX_TIME, MIN_TIME
from meterline.core.timeutil import from_micros, parse_zone, to_micros
from meterline.store.schema import COLUMN_NAMES, TABLE, from_pico, join_split, split_sum_sql

HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
BUCKETS = ("hour", "day", "week", "month")
TOKEN_METRICS = (
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "total_tokens",
)
METRICS = ("requests", "errors", "cancelled", "unpriced", *TOKEN_METRICS, *COST_FIELDS)


class QueryError(ValueError):
    """A bad report/listing parameter; the message names it."""


def check_filter_values(filters: Mapping[str, str | Sequence[str]]) -> None:
    """Filter values a store can compare: text of at most 1024 characters without NUL, at most 100 per
    dimension (PostgreSQL refuses NUL in a string parameter)."""
    for dim, value in filters.items():
        values = [value] if isinstance(value, (str, bool)) else list(value)
        if len(values) > 100:
            raise QueryError(f"{dim}: at most 100 values")
        for v in values:
            if isinstance(v, str) and (len(v) > 1024 or "\x00" in v or not _encodable(v)):
                raise QueryError(f"{dim}: a filter value must be text of at most 1024 characters, without NUL")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# most dimensions one usage query may group by: each one is a column of the GROUP BY (PostgreSQL refuses
# more than 1,664 columns, SQLite 2,000), and a dimension named twice is refused rather than de-duplicated
MAX_GROUP_BY = 10


@dataclasses.dataclass
class UsageQuery:
    group_by: Sequence[str] = ()
    bucket: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    filters: Mapping[str, str | Sequence[str]] = dataclasses.field(default_factory=dict)
    tz: str = "UTC"

    def validate(self) -> ZoneInfo:
        if len(self.group_by) > MAX_GROUP_BY:
            raise QueryError(f"group_by: at most {MAX_GROUP_BY} dimensions; got {len(self.group_by)}")
        seen: set[str] = set()
        for dim in self.group_by:
            if dim not in DIMENSIONS:
                raise QueryError(f"group_by: unknown dimension {dim!r}; use one of {', '.join(DIMENSIONS)}")
            if dim in seen:
                raise QueryError(f"group_by: dimension {dim!r} is named twice; name each dimension once")
            seen.add(dim)
        for dim in self.filters:
            if dim not in DIMENSIONS:
                raise QueryError(f"filter: unknown dimension {dim!r}; use one of {', '.join(DIMENSIONS)}")
        check_filter_values(self.filters)
        if self.bucket is not None and self.bucket not in BUCKETS:
            raise QueryError(f"bucket: must be one of {', '.join(BUCKETS)}; got {self.bucket!r}")
        if self.start and self.end and self.start >= self.end:
            raise QueryError("start must be before end")
        found = parse_zone(self.tz)
        if found is None:
            raise QueryError(f"tz: unknown time zone {self.tz[:100]!r}")
        return found


@dataclasses.dataclass(frozen=True)
class Dialect:
    name: str
    placeholder: str  # "?" or "%s"
    # what reads select events from: ClickHouse says FINAL so a re-sent event not yet merged counts once
    events_from: str = TABLE

    def bool_value(self, value: bool) -> Any:
        return value if self.name == "postgresql" else int(value)

    @property
    def split_sums(self) -> bool:
        """True when a SUM() of pico-dollar costs may overflow (SQLite: 64-bit integers only), so cost sums
        are read in two halves (``schema.split_sum_sql``); PostgreSQL sums into NUMERIC, ClickHouse into Int128."""
        return self.name == "sqlite"

    def intdiv(self, expr: str, unit: int) -> str:
        """Integer division in SQL: ``/`` is integer division on integers in SQLite and PostgreSQL, but
        float division in ClickHouse (buckets would silently be one per event)."""
        return f"intDiv({expr}, {unit})" if self.name == "clickhouse" else f"({expr}) / {unit}"


SQLITE = Dialect("sqlite", "?")
POSTGRESQL = Dialect("postgresql", "%s")
CLICKHOUSE = Dialect("clickhouse", "%s", events_from=f"{TABLE} FINAL")


def where_clause(
    dialect: Dialect,
    filters: Mapping[str, str | Sequence[str]],
    start: datetime | None,
    end: datetime | None,
) -> tuple[str, list[Any]]:
    ph = dialect.placeholder
    parts: list[str] = []
    params: list[Any] = []
    if start is not None:
        parts.append(f"start_time >= {ph}")
        params.append(to_micros(start))
    if end is not None:
        parts.append(f"start_time < {ph}")
        params.append(to_micros(end))
    for dim, value in filters.items():
        values = [value] if isinstance(value, (str, bool)) else list(value)
        if dim in ("stream", "cache_hit"):
            values = [dialect.bool_value(str(v).lower() in ("1", "true", "yes")) for v in values]
        if len(values) == 1:
            parts.append(f"{dim} = {ph}")
        else:
            parts.append(f"{dim} IN ({', '.join([ph] * len(values))})")
        params.extend(values)
    return (" WHERE " + " AND ".join(parts)) if parts else "", params


def _plan_bucket(bucket: str | None, zone: ZoneInfo) -> tuple[int | None, int, bool]:
    """(SQL unit in µs, offset in µs, roll up in Python?)."""
    if bucket is None:
        return None, 0, False
    now = datetime.now(timezone.utc)
    offsets = {zone.utcoffset(datetime(now.year, month, 1)) or timedelta(0) for month in (1, 4, 7, 10)}
    if len(offsets) == 1:  # fixed offset: bucket in SQL (weeks and months from days)
        off = int(next(iter(offsets)).total_seconds()) * 1_000_000
        if bucket == "hour":
            return HOUR_US, off, False
        return DAY_US, off, bucket != "day"
    whole_hours = all(o.total_seconds() % 3600 == 0 for o in offsets)
    return (HOUR_US if whole_hours else HOUR_US // 4), 0, True


def bucket_plan(q: UsageQuery) -> tuple[int | None, int, bool]:
    """(SQL bucket unit in µs, offset in µs, roll up in Python?) of a valid query."""
    return _plan_bucket(q.bucket, q.validate())


def usage_sql(
    q: UsageQuery, dialect: Dialect, *, source: str | None = None
) -> tuple[str, list[Any], tuple[int | None, int, bool]]:
    """The usage report's SQL over ``events`` (``source``: a table of the same columns, such as ClickHouse's
    hourly rollup, whose caller swaps the per-event metrics for sums)."""
    zone = q.validate()
    unit, offset, rollup = _plan_bucket(q.bucket, zone)
    where, params = where_clause(dialect, q.filters, q.start, q.end)
    select = list(q.group_by)
    group = list(q.group_by)
    if unit is not None:
        select.insert(0, f"{dialect.intdiv(f'start_time + {offset}', unit)} AS bucket_key")
        group.insert(0, "bucket_key")
    metrics = [
        "COUNT(*) AS requests",
        "SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS errors",
        "SUM(CASE WHEN status = 'cancelled' THEN 1 ELSE 0 END) AS cancelled",
        "SUM(CASE WHEN total_cost IS NULL THEN 1 ELSE 0 END) AS unpriced",
        *(f"SUM({m}) AS {m}" for m in TOKEN_METRICS),
        # ClickHouse sums Int128 cost columns whole; the others split each sum in two (int64 would overflow)
        *(f"SUM({c}) AS {c}" if dialect.name == "clickhouse" else split_sum_sql(c) for c in COST_FIELDS),
    ]
    sql = f"SELECT {', '.join([*select, *metrics])} FROM {source or dialect.events_from}{where}"
    if group:
        sql += f" GROUP BY {', '.join(group)} ORDER BY {', '.join(group)}"
    return sql, params, (unit, offset, rollup)


def _bucket_label(key: int, unit: int, offset: int, bucket: str, zone: ZoneInfo, rollup: bool) -> datetime:
    """Start of the local bucket that SQL bucket ``key`` falls in, as an aware datetime in ``zone``.

    A row stored before the time window was enforced (year 1, year 9999) may have no local time in
    ``zone``: its bucket is labelled in UTC rather than failing the whole report."""
    utc_start = from_micros(key * unit - offset)
    try:
        local = utc_start.astimezone(zone)
        if not rollup:
            return local
        if bucket == "hour":
            return local.replace(minute=0, second=0, microsecond=0)
        day = local.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
        if bucket == "week":
            day -= timedelta(days=day.weekday())
        elif bucket == "month":
            day = day.replace(day=1)
        return day.replace(tzinfo=zone)
    except (OverflowError, ValueError):
        return utc_start


def shape_usage_rows(
    q: UsageQuery, columns: Sequence[str], rows: Iterable[Sequence[Any]], plan: tuple[int | None, int, bool]
) -> list[dict[str, Any]]:
    """Turn SQL rows into report rows: Decimal costs, bucket start times, rolled-up local buckets.

    Costs are summed as integer pico-dollars and made Decimal once per report row (the same exact value as
    summing Decimals, without a Decimal division per SQL row); a bucket's label is computed once per key."""
    unit, offset, rollup = plan
    zone = ZoneInfo(q.tz)
    index = {c: i for i, c in enumerate(columns)}
    counted = METRICS[: 4 + len(TOKEN_METRICS)]
    count_at = [index[m] for m in counted]
    # each cost: (column of a whole sum, or None) and (columns of a split sum's halves, or None)
    cost_at = [
        (index.get(c), (index[f"{c}__hi"], index[f"{c}__lo"]) if f"{c}__hi" in index else None) for c in COST_FIELDS
    ]
    dims = [(d, index[d], d in ("stream", "cache_hit")) for d in q.group_by]
    bucket_at = index.get("bucket_key")
    labels: dict[int, datetime] = {}
    merged: dict[tuple[Any, ...], tuple[dict[str, Any], list[int], list[int | None]]] = {}
    for raw in rows:
        key_parts: list[Any] = []
        if unit is not None:
            assert q.bucket is not None and bucket_at is not None
            bkey = int(raw[bucket_at])
            label = labels.get(bkey)
            if label is None:
                label = labels[bkey] = _bucket_label(bkey, unit, offset, q.bucket, zone, rollup)
            key_parts.append(label)
        for _, i, flag in dims:
            v = raw[i]
            key_parts.append(bool(v) if flag and v is not None else v)
        key = tuple(key_parts)
        target = merged.get(key)
        if target is None:
            out: dict[str, Any] = {}
            if unit is not None:
                out["bucket"] = key_parts[0]
            for (d, _, _), v in zip(dims, key_parts[len(key_parts) - len(dims) :], strict=True):
                out[d] = v
            target = merged[key] = (out, [0] * len(counted), [None] * len(COST_FIELDS))
        counts, costs = target[1], target[2]
        for n, i in enumerate(count_at):
            counts[n] += int(raw[i] or 0)
        for n, (whole, split) in enumerate(cost_at):
            if whole is not None:
                pico = int(raw[whole]) if raw[whole] is not None else None
            else:
                pico = join_split(raw[split[0]], raw[split[1]]) if split is not None else None
            if pico is not None:
                costs[n] = (costs[n] or 0) + pico
    result = []
    for out, counts, costs in merged.values():
        out.update(zip(counted, counts, strict=True))
        for c, pico in zip(COST_FIELDS, costs, strict=True):
            out[c] = Decimal(0) if pico is None else from_pico(pico)
        result.append(out)
    if unit is not None:
        result.sort(key=lambda r: (r["bucket"], *(str(r[d]) for d in q.group_by)))
    return result


# -- event listings -----------------------------------------------------------------------------
def encode_cursor(start_us: int, event_id: str) -> str:
    return base64.urlsafe_b64encode(f"{start_us}:{event_id}".encode()).decode().rstrip("=")


_INT64 = 2**63


def decode_cursor(cursor: str) -> tuple[int, str]:
    """(start_time µs, id) from a ``next_cursor``; anything else is a :class:`QueryError` naming it."""
    bad = QueryError(f"cursor: not a cursor from this API: {cursor[:100]!r}")
    if len(cursor) > 200:
        raise bad
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        us_text, _, event_id = base64.urlsafe_b64decode(padded.encode()).decode().partition(":")
        us = int(us_text)
    except (ValueError, UnicodeError):
        raise bad from None
    if not -_INT64 <= us < _INT64 or not event_id or len(event_id) > 128 or not event_id.isprintable():
        raise bad
    return us, event_id


def parse_query_time(value: str | None, name: str) -> datetime | None:
    """A report's ``start``/``end``: ISO 8601 (UTC when no offset) within the stored-time window
    [event.MIN_TIME, event.MAX_TIME]; a :class:`QueryError` naming the parameter otherwise."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        if len(text) > 64:
            raise ValueError(text)
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        dt = (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
    except (ValueError, OverflowError):
        raise QueryError(f"{name}: not an ISO 8601 time in the supported range: {text[:64]!r}") from None
    if not MIN_TIME <= dt <= MAX_TIME:
        raise QueryError(f"{name}: outside the supported range {MIN_TIME.date()} .. {MAX_TIME.date()}: {text!r}")
    return dt


def events_sql(
    dialect: Dialect,
    *,
    filters: Mapping[str, str | Sequence[str]] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> tuple[str, list[Any]]:
    """Events in (start_time, id) order, ``limit`` of them after ``cursor``."""
    filters = filters or {}
    for dim in filters:
        if dim not in DIMENSIONS:
            raise QueryError(f"filter: unknown dimension {dim!r}")
    check_filter_values(filters)
    if limit < 1:
        raise QueryError("limit: must be at least 1")
    where, params = where_clause(dialect, filters, start, end)
    ph = dialect.placeholder
    if cursor:
        us, event_id = decode_cursor(cursor)
        cond = f"(start_time > {ph} OR (start_time = {ph} AND id > {ph}))"
        where = f"{where} AND {cond}" if where else f" WHERE {cond}"
        params += [us, us, event_id]
    columns = ", ".join(COLUMN_NAMES)
    return f"SELECT {columns} FROM {dialect.events_from}{where} ORDER BY start_time, id LIMIT {int(limit)}", params
