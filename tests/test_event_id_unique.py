"""An event id is stored once on every store, whatever else a retry changes (first write wins, the retry
counted as a duplicate): regression for PostgreSQL storing one id twice when a retry's start_time differed by
1 ms (the monthly partitions' key is (id, start_time)) and ClickHouse looking ids up only within the batch's
start_time range, and the upgrade of a database that already holds one."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from collector_support import ThreadCollector, request, wire_event
from meterline.core.event import UsageEvent
from meterline.store import keys as key_store

FIRST = datetime(2026, 11, 30, 23, 59, 59, 999500, tzinfo=timezone.utc)
# the same id again: 1 ms later (across the month boundary: another partition), a month later, other fields
RETRIES = [FIRST + timedelta(milliseconds=1), FIRST + timedelta(days=40), FIRST]


@pytest.fixture
def collector(any_database: str) -> Iterator[ThreadCollector]:
    with ThreadCollector(database=any_database, max_batch_events=100, max_body_bytes=200_000) as c:
        yield c


def _iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def test_a_retry_with_another_start_time_is_stored_once_on_every_store(collector: ThreadCollector) -> None:
    key = key_store.create_key(collector.app.state.writer, "ingest", "test-ingest")[0]
    first = wire_event(start_time=_iso(FIRST), model="gpt-4o-mini", input_tokens=1000)

    def post(events: list[dict[str, Any]]) -> tuple[int, Any]:
        return request(collector.url + "/v1/events", "POST", {"events": events}, key=key)

    assert post([first]) == (200, {"accepted": 1, "duplicates": 0, "rejected": []})
    for n, when in enumerate(RETRIES):
        retry = {**first, "start_time": _iso(when), "model": "gpt-4o", "input_tokens": 5 + n}
        assert post([retry]) == (200, {"accepted": 0, "duplicates": 1, "rejected": []})
    # one batch holding a new id twice with different start times: the first in the batch wins
    other = wire_event(start_time=_iso(FIRST), model="first")
    assert post([other, {**other, "start_time": _iso(RETRIES[1]), "model": "second"}]) == (
        200,
        {"accepted": 1, "duplicates": 1, "rejected": []},
    )
    stored = [e for e in collector.store.iter_events() if e.id in (first["id"], other["id"])]
    assert sorted((e.id, e.model, e.input_tokens) for e in stored) == sorted(
        [(first["id"], "gpt-4o-mini", 1000), (other["id"], "first", 1000)]
    )
    assert collector.store.count() == 2


def _event(event_id: str, when: datetime, model: str) -> UsageEvent:
    return UsageEvent(id=event_id, start_time=when, provider="openai", model=model, input_tokens=10)


@pytest.mark.postgres
def test_the_sdk_postgres_sink_stores_a_retried_id_once(postgres_url: str) -> None:
    from meterline.sdk.sinks.postgres import PostgresSink

    sink = PostgresSink(postgres_url)
    try:
        event_id = str(uuid.uuid4())
        sink.write([_event(event_id, FIRST, "first")])
        news = []
        for n, when in enumerate(RETRIES):
            news.append(sink.store.insert([_event(event_id, when, f"retry-{n}")]))
            sink.write([_event(event_id, when, f"retry-{n}")])
        assert news == [0, 0, 0]  # each counted as a duplicate, not stored
        rows = sink.store.fetch("SELECT id, model FROM events")
        assert rows == [(event_id, "first")]
    finally:
        sink.close()


def _old_database_with_a_duplicate(url: str) -> str:
    """A database as the store of before left it: no event_ids, one id stored twice (two partitions)."""
    import psycopg

    from meterline.store.postgres import PostgresStore

    store = PostgresStore(url)
    event_id, retry_id = str(uuid.uuid4()), str(uuid.uuid4())
    store.insert([_event(event_id, FIRST, "first"), _event(str(uuid.uuid4()), FIRST, "other")])
    store.insert([_event(retry_id, RETRIES[0], "retry")])
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE event_ids")
        # what the old insert path stored for a retry 1 ms later (another month: another partition)
        conn.execute("UPDATE events SET id = %s WHERE id = %s", (event_id, retry_id))
    assert store.fetch("SELECT COUNT(*) FROM events WHERE id = %s", (event_id,)) == [(2,)]
    store.close()
    return event_id


def _check_upgraded(url: str, event_id: str, caplog: pytest.LogCaptureFixture) -> None:
    from meterline.store.event_ids import DUPLICATES_SQL
    from meterline.store.postgres import PostgresStore

    warnings = [r.getMessage() for r in caplog.records if "stored more than once" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("meterline: 1 event id(s)")
    store = PostgresStore(url)
    try:
        assert store.fetch("SELECT COUNT(*) FROM events") == [(3,)]  # every row kept
        assert store.fetch(DUPLICATES_SQL) == [(event_id, 2)]
        assert store.insert([_event(event_id, FIRST + timedelta(days=60), "again")]) == 0
        other = str(uuid.uuid4())
        assert store.insert([_event(other, FIRST, "new")]) == 1
        assert store.insert([_event(other, FIRST + timedelta(milliseconds=1), "new")]) == 0
        assert store.fetch("SELECT COUNT(*) FROM events") == [(4,)]
    finally:
        store.close()


@pytest.mark.postgres
def test_opening_an_old_database_fills_event_ids_and_reports_its_duplicates(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from meterline.store.postgres import PostgresStore

    event_id = _old_database_with_a_duplicate(postgres_url)
    with caplog.at_level(logging.WARNING, logger="meterline"):
        PostgresStore(postgres_url).close()
    _check_upgraded(postgres_url, event_id, caplog)


@pytest.mark.postgres
def test_the_alembic_migration_fills_event_ids_and_reports_its_duplicates(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from alembic import command

    from meterline.store import migrate

    event_id = _old_database_with_a_duplicate(postgres_url)
    command.stamp(migrate.alembic_config(postgres_url), "0007_leases")  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="meterline"):
        migrate.upgrade(postgres_url)
    assert migrate.current(postgres_url) == migrate.head()  # 0008_event_ids or a later revision
    _check_upgraded(postgres_url, event_id, caplog)


@pytest.mark.postgres
def test_prune_keeps_event_ids_so_a_late_retry_is_not_stored_again(postgres_url: str) -> None:
    from meterline.store.postgres import PostgresStore
    from meterline.store.retention import prune

    store = PostgresStore(postgres_url)
    try:
        old, kept = str(uuid.uuid4()), str(uuid.uuid4())
        assert store.insert([_event(old, FIRST - timedelta(days=60), "old"), _event(kept, FIRST, "kept")]) == 2
        result = prune(store, events_before=FIRST - timedelta(days=20))
        assert result.events == 1 and result.dropped_partitions
        assert store.fetch("SELECT id FROM events") == [(kept,)]
        # a late retry of the pruned id (in a month still kept) is refused, not billed again
        assert store.insert([_event(old, FIRST, "late retry")]) == 0
        assert store.fetch("SELECT COUNT(*) FROM events") == [(1,)]
    finally:
        store.close()


@pytest.mark.postgres
def test_migrate_to_postgres_keeps_the_first_write_of_an_id(postgres_url: str, tmp_path: Any) -> None:
    """``meterline migrate --to``: a SQLite source holding an id the target already has at another start_time."""
    from meterline.store.postgres import PostgresStore
    from meterline.store.sqlite import SQLiteStore
    from meterline.store.transfer import copy_events

    event_id, fresh = str(uuid.uuid4()), str(uuid.uuid4())
    source = SQLiteStore(tmp_path / "source.db")
    target = PostgresStore(postgres_url)
    try:
        assert target.insert([_event(event_id, FIRST, "in target first")]) == 1
        source.insert([_event(event_id, RETRIES[0], "retry in source"), _event(fresh, FIRST, "fresh")])
        result = copy_events(source, target, source_description="sqlite-source")
        assert (result.copied, result.new) == (2, 1)
        assert sorted(target.fetch("SELECT id, model FROM events")) == sorted(
            [(event_id, "in target first"), (fresh, "fresh")]
        )
    finally:
        source.close()
        target.close()


# -- ClickHouse (chdb): ids looked up in event_ids, whatever the start_time -----------------------------------


def _chdb_old_store_with_a_duplicate(chdb_url: str) -> tuple[str, str]:
    """A store as the ClickHouse store of before left it: no event_ids, one id stored twice (two months)."""
    from meterline.store.clickhouse import ClickHouseStore
    from meterline.store.schema import COLUMN_NAMES, event_to_row

    store = ClickHouseStore(chdb_url)
    event_id, other = str(uuid.uuid4()), str(uuid.uuid4())
    try:
        assert store.insert([_event(event_id, FIRST, "first"), _event(other, FIRST, "other")]) == 2
        store.command_clickhouse("DROP VIEW event_ids_mv")
        store.command_clickhouse("DROP TABLE event_ids")
        store.execute("DELETE FROM meterline_meta WHERE key = ?", ("clickhouse_event_ids_ready",))
        # what the old insert path stored for a retry 1 ms later (its look-up read only that start_time range)
        store.insert_clickhouse("events", [event_to_row(_event(event_id, RETRIES[0], "retry"))], COLUMN_NAMES)
        assert store.fetch_clickhouse("SELECT count() FROM events FINAL WHERE id = %s", [event_id]) == [(2,)]
    finally:
        store.close()
    return event_id, other


@pytest.mark.clickhouse
def test_opening_an_old_clickhouse_store_fills_event_ids_and_reports_its_duplicates(
    chdb_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from meterline.store.clickhouse import ClickHouseStore
    from meterline.store.clickhouse_ids import DUPLICATES_SQL

    event_id, other = _chdb_old_store_with_a_duplicate(chdb_url)
    with caplog.at_level(logging.WARNING, logger="meterline"):
        store = ClickHouseStore(chdb_url)
    try:
        warnings = [r.getMessage() for r in caplog.records if "stored more than once" in r.getMessage()]
        assert len(warnings) == 1 and warnings[0].startswith("meterline: 1 event id(s)")
        assert store.count() == 3  # every row kept
        assert store.fetch_clickhouse(DUPLICATES_SQL) == [(event_id, 2)]
        assert store.insert([_event(event_id, FIRST + timedelta(days=60), "again")]) == 0
        assert store.insert([_event(other, FIRST - timedelta(days=3), "again")]) == 0
        fresh = str(uuid.uuid4())
        assert store.insert([_event(fresh, FIRST, "new")]) == 1
        assert store.insert([_event(fresh, FIRST + timedelta(milliseconds=1), "new")]) == 0
        assert store.count() == 4
    finally:
        store.close()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="meterline"):
        ClickHouseStore(chdb_url).close()  # filled once: not again, nothing logged
    assert not [r for r in caplog.records if "stored more than once" in r.getMessage()]


@pytest.mark.clickhouse
def test_a_clickhouse_store_opened_before_event_ids_is_filled_looks_ids_up_in_events(chdb_url: str) -> None:
    from meterline.store.clickhouse import ClickHouseStore

    event_id, _ = _chdb_old_store_with_a_duplicate(chdb_url)
    store = ClickHouseStore(chdb_url, create=False)
    try:
        assert not store._ids_ready
        assert store.insert([_event(event_id, FIRST + timedelta(days=40), "again")]) == 0
    finally:
        store.close()


@pytest.mark.clickhouse
def test_clickhouse_prune_keeps_event_ids_so_a_late_retry_is_not_stored_again(chdb_url: str) -> None:
    from meterline.store.clickhouse import ClickHouseStore

    store = ClickHouseStore(chdb_url)
    try:
        old, kept = str(uuid.uuid4()), str(uuid.uuid4())
        assert store.insert([_event(old, FIRST - timedelta(days=60), "old"), _event(kept, FIRST, "kept")]) == 2
        assert store.prune_events(FIRST - timedelta(days=20)) == 1
        assert [e.id for e in store.iter_events()] == [kept]
        assert store.insert([_event(old, FIRST, "late retry")]) == 0
        assert store.count() == 1
    finally:
        store.close()
