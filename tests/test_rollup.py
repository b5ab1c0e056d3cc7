"""The daily rollup answers usage queries exactly as a scan of the events would (SQLite, PostgreSQL)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from meterline.core.event import UsageEvent
from meterline.pricing import get_pricer
from meterline.store import query as queries
from meterline.store import rollup as rollups
from meterline.store.backend import open_stores

T0 = datetime(2026, 2, 20, tzinfo=timezone.utc)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    db = f"sqlite:///{tmp_path / 'r.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    writer, reader = open_stores(db, pool_size=2)
    yield writer
    writer.close()
    if reader is not writer:
        reader.close()


def events(n: int, seed: int = 1) -> list[UsageEvent]:
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        provider, model = rnd.choice([("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku-4-5"), ("x", "mystery")])
        e = UsageEvent(
            start_time=T0 + timedelta(seconds=rnd.randrange(40 * 86400)),
            provider=provider,
            model=model,
            status=rnd.choice(["success", "success", "error", "cancelled"]),
            input_tokens=rnd.randrange(0, 3000),
            cache_read_tokens=rnd.choice([0, 0, 512]),
            output_tokens=rnd.randrange(0, 500),
            subscriber_id=rnd.choice(["a", "b", "c", None]),
            environment=rnd.choice(["prod", None]),
            team_id=rnd.choice(["t1", "t2"]),
        )
        e.finalize_totals()
        get_pricer().price(e)
        out.append(e)
    return out


def raw(store: Any, q: queries.UsageQuery) -> list[dict[str, Any]]:
    sql, params, plan = queries.usage_sql(q, store.dialect)
    cols, rows = store._fetch(sql, params)
    return queries.shape_usage_rows(q, cols, rows, plan)


def keyed(rows: list[dict[str, Any]], q: queries.UsageQuery) -> dict[tuple[Any, ...], dict[str, Any]]:
    keys = (["bucket"] if q.bucket else []) + list(q.group_by)
    return {tuple(r[k] for k in keys): r for r in rows}


QUERIES = [
    queries.UsageQuery(),
    queries.UsageQuery(group_by=["model"]),
    queries.UsageQuery(group_by=["subscriber_id"]),
    queries.UsageQuery(group_by=["model"], bucket="day"),
    queries.UsageQuery(group_by=["environment"], bucket="week"),
    queries.UsageQuery(bucket="month"),
    queries.UsageQuery(
        group_by=["team_id"], filters={"team_id": ["t2"]}, start=T0 + timedelta(days=3), end=T0 + timedelta(days=20)
    ),
    queries.UsageQuery(filters={"subscriber_id": "a"}, bucket="day"),
]


def test_rollup_answers_equal_a_scan(store: Any) -> None:
    batch = events(3000)
    assert store.insert(batch[:2000]) == 2000
    assert store.insert(batch[1000:]) == 1000  # half re-sent: the rollup must not count them twice
    for q in QUERIES:
        assert rollups.usable(q) is not None, q
        got, want = keyed(store.usage(q), q), keyed(raw(store, q), q)
        assert got == want, q
    total = store.usage(queries.UsageQuery())[0]
    assert total["requests"] == 3000
    assert total["total_cost"] == sum((e.total_cost or Decimal(0) for e in batch), Decimal(0))


def test_queries_the_rollup_cannot_answer_scan_the_events(store: Any) -> None:
    store.insert(events(200, seed=2))
    for q in (
        queries.UsageQuery(group_by=["model", "subscriber_id"]),
        queries.UsageQuery(group_by=["model"], bucket="hour"),
        queries.UsageQuery(group_by=["model"], bucket="day", tz="Europe/Paris"),
        queries.UsageQuery(group_by=["model"], start=T0 + timedelta(hours=5)),
        queries.UsageQuery(group_by=["operation"]),
        queries.UsageQuery(group_by=["model"], filters={"environment": "prod"}),
    ):
        assert rollups.usable(q) is None, q
        assert keyed(store.usage(q), q) == keyed(raw(store, q), q)


def test_a_file_from_before_rollups_is_backfilled(tmp_path: Path) -> None:
    from meterline.store.sqlite import SQLiteStore

    path = tmp_path / "old.db"
    s = SQLiteStore(path)
    s.insert(events(500, seed=3))
    # what a file written by an older meterline looks like: no rollup, no marker
    s.execute(f"DROP TABLE {rollups.ROLLUP}")
    s.execute(f"DELETE FROM meterline_meta WHERE key = '{rollups.META_KEY}'")
    s.close()
    s = SQLiteStore(path)
    try:
        q = queries.UsageQuery(group_by=["subscriber_id"], bucket="day")
        assert keyed(s.usage(q), q) == keyed(raw(s, q), q)
        assert s.usage(queries.UsageQuery())[0]["requests"] == 500
    finally:
        s.close()
