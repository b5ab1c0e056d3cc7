"""Retention: ``meterline prune`` removes exactly the events and content older than the cutoffs, on SQLite
and PostgreSQL (where whole monthly partitions are dropped); rollups are kept by design; the migration
from today's plain PostgreSQL table to the partitioned one keeps every row."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from meterline.cli import main
from meterline.cli.prune import parse_age
from meterline.core.event import UsageEvent
from meterline.store.backend import open_stores
from meterline.store.content import content_for
from meterline.store.query import UsageQuery
from meterline.store.retention import prune
from meterline.store.schema import _SQL_TYPES, COLUMNS, INDEXES

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)


def _event(start: datetime, i: int, content: bool = True) -> UsageEvent:
    e = UsageEvent(
        start_time=start, provider="openai", model="gpt-4o-mini", input_tokens=10 + i, output_tokens=5,
        total_cost=Decimal("0.001"), subscriber_id="cust", integration="manual",
    )  # fmt: skip
    if content:
        e.input_messages = [{"role": "user", "content": f"q{i}"}]
        e.output_text = f"a{i}"
    e.finalize_totals()
    return e


# events at these ages (days) before NOW: several months back, so partitions are dropped on PostgreSQL
AGES = [500, 450, 401, 399, 200, 60, 31, 29, 1]


def _populate(store: Any) -> list[UsageEvent]:
    events = [_event(NOW - timedelta(days=d), i) for i, d in enumerate(AGES)]
    store.insert(events)
    return events


def _usage_total(store: Any) -> tuple[int, int]:
    [row] = store.usage(UsageQuery(start=datetime(2024, 1, 1, tzinfo=timezone.utc)))
    return int(row["requests"]), int(row["input_tokens"])


def test_prune_removes_exactly_what_it_should(database: str) -> None:
    store, reader = open_stores(database, pool_size=2)
    try:
        events = _populate(store)
        before = _usage_total(store)
        dry = prune(store, events_before=NOW - timedelta(days=400), dry_run=True)
        assert (dry.events, dry.content) == (3, 3)
        assert store.count() == len(AGES)
        result = prune(store, events_before=NOW - timedelta(days=400), content_before=NOW - timedelta(days=30))
        assert (result.events, result.content) == (3, 7)  # content: everything at >= 31 days
        kept = {e.id for e in store.iter_events()}
        assert kept == {e.id for e, d in zip(events, AGES, strict=True) if d < 400}
        with_content = {e.id for e in store.iter_events() if e.input_messages is not None}
        assert with_content == {e.id for e, d in zip(events, AGES, strict=True) if d < 30}
        young = events[-1]
        assert content_for(store, young.id) == {"input_messages": young.input_messages, "output_text": "a8"}
        # rollups are kept by design: totals over the pruned period are unchanged
        assert _usage_total(store) == before
        if database.startswith("postgresql"):
            # 500, 450 and 401 days back lie in months that end before the cutoff: dropped whole
            assert len(result.dropped_partitions) >= 2
            assert all(name.startswith("events_p") for name in result.dropped_partitions)
        again = prune(store, events_before=NOW - timedelta(days=400), content_before=NOW - timedelta(days=30))
        assert (again.events, again.content) == (0, 0)
        # an old event arriving after its partition was dropped is stored again (partition re-created)
        late = _event(NOW - timedelta(days=450), 99)
        assert store.insert([late]) == 1 and store.count() == 7
    finally:
        store.close()
        if reader is not store:
            reader.close()


def test_cli_prune_and_its_errors(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path / 'm.db'}"
    store, reader = open_stores(db)
    now = datetime.now(timezone.utc)
    store.insert([_event(now - timedelta(days=d), i) for i, d in enumerate([500, 100, 40, 10])])
    store.close()
    reader.close()
    assert main(["prune", "--database", db, "--older-than", "400d", "--content-older-than", "30d"]) == 0
    out = capsys.readouterr().out
    assert "deleted 1 events" in out and "deleted 3 captured content rows" in out
    assert main(["prune", "--database", db]) == 2
    assert "give --older-than" in capsys.readouterr().err
    assert main(["prune", "--database", db, "--older-than", "soon"]) == 2
    assert "--older-than: 'soon' is neither an age" in capsys.readouterr().err
    assert main(["prune", "--database", "http://collector", "--older-than", "1d"]) == 2
    assert "not 'http://collector'" in capsys.readouterr().err


def test_parse_age() -> None:
    assert parse_age("400d", now=NOW) == NOW - timedelta(days=400)
    assert parse_age("12h", now=NOW) == NOW - timedelta(hours=12)
    assert parse_age("2026-01-01") == datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.mark.postgres
def test_migration_partitions_a_populated_plain_table(postgres_url: str) -> None:
    """Today's PostgreSQL table (plain, content columns inline) → partitioned by month, rows and rollup kept."""
    import psycopg
    from alembic import command

    from meterline.store import migrate
    from meterline.store import rollup as rollups
    from meterline.store.postgres import PostgresStore

    types = _SQL_TYPES["postgresql"]
    cols = ", ".join(f"{n} {types[k]}{' PRIMARY KEY' if n == 'id' else ''}" for n, k in COLUMNS)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE events ({cols}, input_messages TEXT, output_text TEXT)")
        for ix, c in INDEXES:
            conn.execute(f"CREATE INDEX {ix} ON events ({c})")
    store = PostgresStore(postgres_url)  # works on the plain table as before
    events = _populate(store)
    before = _usage_total(store)
    legacy = events[-1]
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("DELETE FROM event_content")  # content as an older version kept it: inline
        conn.execute(
            "UPDATE events SET input_messages = %s, output_text = 'old' WHERE id = %s",
            (json.dumps([{"role": "user", "content": "legacy"}]), legacy.id),
        )
    store.close()
    command.stamp(migrate.alembic_config(postgres_url), "0002")  # type: ignore[arg-type]
    migrate.upgrade(postgres_url)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        assert conn.execute("SELECT 1 FROM pg_partitioned_table WHERE partrelid = 'events'::regclass").fetchone()
        parts = [r[0] for r in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'events'::regclass ORDER BY 1"
        )]  # fmt: skip
        assert "events_default" in parts and len(parts) >= 10
        assert conn.execute("SELECT COUNT(*) FROM events_default").fetchone()[0] == 0
        assert conn.execute(f"SELECT COUNT(*) FROM {rollups.ROLLUP}").fetchone()[0] > 0
    store = PostgresStore(postgres_url)
    try:
        assert sorted(e.id for e in store.iter_events()) == sorted(e.id for e in events)
        assert _usage_total(store) == before
        assert content_for(store, legacy.id) == {"input_messages": [{"role": "user", "content": "legacy"}],
                                                 "output_text": "old"}  # fmt: skip
        assert store.insert(events[:2]) == 0  # still idempotent on the event id
        assert store.insert([_event(NOW, 50)]) == 1
        result = prune(store, events_before=NOW - timedelta(days=400))
        assert result.events == 3 and result.dropped_partitions
        assert store.count() == len(AGES) - 3 + 1
    finally:
        store.close()


@pytest.mark.postgres
def test_a_late_event_for_a_dropped_month_goes_to_the_default_partition(postgres_url: str) -> None:
    """A replica that still believed in a dropped partition wrote into the default one: later inserts of
    that month must still succeed (the month's partition cannot be created over those rows) and prune
    still removes them."""
    from meterline.store.postgres import PostgresStore

    store = PostgresStore(postgres_url)
    try:
        _populate(store)
        assert prune(store, events_before=NOW - timedelta(days=400)).dropped_partitions
        old = NOW - timedelta(days=450)
        late = _event(old, 70)
        with store.connection() as conn:  # what a replica with a stale partition cache ends up doing
            from meterline.store.schema import COLUMN_NAMES, event_to_row

            cols = ", ".join(COLUMN_NAMES)
            conn.execute(f"INSERT INTO events_default ({cols}) VALUES ({', '.join(['%s'] * len(COLUMN_NAMES))})",
                         event_to_row(late, native_bool=True))  # fmt: skip
        fresh = PostgresStore(postgres_url)
        try:
            assert fresh.insert([_event(old, 71)]) == 1
            assert fresh.fetch("SELECT COUNT(*) FROM events_default") == [(2,)]
            assert prune(fresh, events_before=NOW - timedelta(days=400)).events == 2
        finally:
            fresh.close()
    finally:
        store.close()
