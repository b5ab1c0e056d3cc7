"""PostgreSQL: ``events`` partitioned by UTC month of ``start_time`` (integer microseconds).

One partition per month, ``events_pYYYY_MM``, created before a batch that needs it is inserted (under an
advisory lock: replicas may race); ``events_default`` catches anything else (it stays empty in normal
operation). Retention (:mod:`meterline.store.retention`) drops whole partitions that lie before the cutoff,
instead of deleting millions of rows, and deletes only inside the partition the cutoff falls in.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from meterline.core.timeutil import to_micros
from meterline.store.schema import TABLE

logger = logging.getLogger("meterline")

_LOCK_KEY = 0x6D6C7074  # advisory lock while creating partitions
PARTITIONED_SQL = f"SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass('{TABLE}')"


def month_of(dt: datetime) -> tuple[int, int]:
    u = dt.astimezone(timezone.utc)
    return u.year, u.month


def month_bounds(year: int, month: int) -> tuple[int, int]:
    """[start, end) of a UTC month in microseconds."""
    start = datetime(year, month, 1, tzinfo=timezone.utc)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=timezone.utc)
    return to_micros(start), to_micros(end)


def partition_name(year: int, month: int) -> str:
    return f"{TABLE}_p{year:04d}_{month:02d}"


def create_sql(year: int, month: int) -> str:
    lo, hi = month_bounds(year, month)
    return (
        f"CREATE TABLE IF NOT EXISTS {partition_name(year, month)} PARTITION OF {TABLE} "
        f"FOR VALUES FROM ({lo}) TO ({hi})"
    )


def is_partitioned(conn: Any) -> bool:
    return conn.execute(PARTITIONED_SQL).fetchone() is not None


def ensure(conn: Any, months: Iterable[tuple[int, int]]) -> None:
    """Create the monthly partitions that are missing (``conn`` in a transaction)."""
    import psycopg  # PostgreSQL only: SQLite users need not have it

    months = sorted(set(months))
    if not months:
        return
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
    existing = {r[0] for r in conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(%s)",
        (TABLE,),
    ).fetchall()}  # fmt: skip
    for year, month in months:
        if partition_name(year, month) in existing or not 1970 <= year <= 2200:
            continue  # rows outside the accepted window (stored before it existed) go to the default partition
        try:
            with conn.transaction():  # a savepoint: a failure here must not abort the insert
                conn.execute(create_sql(year, month))
        except psycopg.errors.CheckViolation:
            # rows of that month already sit in the default partition (written while the month's partition
            # was dropped by a prune): leave them there, new rows of the month join them
            logger.info(
                "meterline: %s not created: the default partition holds rows of that month", partition_name(year, month)
            )


def monthly_partitions(conn: Any) -> list[tuple[str, int, int]]:
    """(name, start, end) of every monthly partition, oldest first (the default partition left out)."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(%s) ORDER BY c.relname",
        (TABLE,),
    ).fetchall()
    out = []
    prefix = f"{TABLE}_p"
    for (name,) in rows:
        if not name.startswith(prefix):
            continue
        try:
            year, month = int(name[len(prefix) : len(prefix) + 4]), int(name[-2:])
        except ValueError:
            continue
        lo, hi = month_bounds(year, month)
        out.append((name, lo, hi))
    return out


def months_between(lo_us: int, hi_us: int) -> list[tuple[int, int]]:
    """Every UTC month from the one holding ``lo_us`` to the one holding ``hi_us``."""
    from meterline.core.timeutil import from_micros

    y, m = month_of(from_micros(lo_us))
    end = month_of(from_micros(hi_us))
    out = []
    while (y, m) <= end:
        out.append((y, m))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out
