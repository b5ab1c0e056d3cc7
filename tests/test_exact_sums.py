"""Cost sums are exact and never overflow for any realistic total (over $10^12 in one group), on SQLite,
PostgreSQL and ClickHouse, through the daily rollup and through a scan of events; and a SQLite file whose rollup has the
old single-column cost sums is rebuilt with split sums on open."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from meterline.budgets import store as budget_store
from meterline.core.event import MAX_COST, UsageEvent
from meterline.store import rollup as rollups
from meterline.store.backend import open_stores
from meterline.store.query import UsageQuery
from meterline.store.sqlite import SQLiteStore


@pytest.fixture
def database(any_database: str) -> str:
    """Every event store, ClickHouse included: what this module checks, all of them must do."""
    return any_database


DAY = datetime(2026, 11, 2, tzinfo=timezone.utc)
PICO = Decimal("0.000000000001")


def _events(n: int) -> list[UsageEvent]:
    out = []
    for i in range(n):
        cost = MAX_COST if i % 2 == 0 else MAX_COST - PICO  # both halves of the split sum carry
        out.append(
            UsageEvent(
                provider="p",
                model="m",
                response_model="rm",
                subscriber_id="whale",
                team_id="t",
                start_time=DAY + timedelta(seconds=i % 7200),
                input_cost=cost,
                total_cost=cost,
            )
        )
    return out  # fmt: skip


def test_sums_past_ten_to_the_twelve_dollars_are_exact(database: str) -> None:
    writer, reader = open_stores(database)
    try:
        n = 120_000  # 120,000 calls of about $9,000,000: $1.08 * 10^12
        chunk = _events(20_000)  # 20,000 is even: every chunk keeps the even/odd pattern of the global index
        for _ in range(n // 20_000):
            assert writer.insert([_copy(e) for e in chunk]) == 20_000
        expected = MAX_COST * n - PICO * (n // 2)
        assert expected > Decimal(10) ** 12
        queries = [
            UsageQuery(),  # totals, from the rollup
            UsageQuery(group_by=["subscriber_id"], bucket="month"),  # rollup, rolled up from days
            UsageQuery(group_by=["response_model"]),  # not a rollup dimension: a scan of events
            UsageQuery(bucket="hour", tz="Europe/Paris"),  # a scan with local buckets
        ]
        for q in queries:
            rows = reader.usage(q)
            assert sum((r["total_cost"] for r in rows), Decimal(0)) == expected, q
            assert sum((r["input_cost"] for r in rows), Decimal(0)) == expected, q
            assert sum(r["requests"] for r in rows) == n
        budget = budget_store.validate(
            {"name": "t", "scope": "team", "scope_value": "t", "period": "total", "limit_usd": "1"}
        )
        assert budget_store.spend(writer, budget) == expected
    finally:
        writer.close()
        if reader is not writer:
            reader.close()


def _copy(event: UsageEvent) -> UsageEvent:
    return dataclasses.replace(event, id=str(uuid.uuid4()))


def test_an_old_sqlite_rollup_is_rebuilt_with_split_sums(tmp_path: object) -> None:
    path = f"{tmp_path}/old.db"
    store = SQLiteStore(path)
    store.insert(_events(3))
    # the layout before: one INTEGER column per cost
    store.execute(f"DROP TABLE {rollups.ROLLUP}")
    cols = ", ".join(f"{m} INTEGER NOT NULL" for m in rollups.METRIC_COLUMNS)
    store.execute(f"CREATE TABLE {rollups.ROLLUP} (day INTEGER NOT NULL, dim TEXT NOT NULL, value TEXT NOT NULL, "
                  f"{cols}, PRIMARY KEY (dim, value, day))")  # fmt: skip
    store.close()
    store = SQLiteStore(path)
    try:
        [row] = store.usage(UsageQuery())
        assert row["total_cost"] == MAX_COST * 3 - PICO and row["requests"] == 3
        columns = {r[1] for r in store.fetch(f"PRAGMA table_info({rollups.ROLLUP})")}
        assert set(rollups.SPLIT_COST_COLUMNS) <= columns
    finally:
        store.close()
