"""The ClickHouse store on the real engine (chdb): the same answers as SQLite and PostgreSQL, exact sums past
$10M per group, idempotent inserts, monthly partitions dropped by prune, and the resumable, verified copy
from SQLite/PostgreSQL (``meterline migrate --to``)."""

from __future__ import annotations

import random
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import meterline
from meterline.budgets import store as budget_store
from meterline.cli import main
from meterline.core.event import UsageEvent
from meterline.store import keys as key_store
from meterline.store.backend import open_stores
from meterline.store.query import UsageQuery
from meterline.store.transfer import copy_events, verify

pytestmark = pytest.mark.clickhouse

T0 = datetime(2026, 9, 28, 21, 30, tzinfo=timezone.utc)  # spans a month end and Paris' DST change (Oct 25)
# per event; two of them: a $12M group, past what an int64 pico-dollar sum holds (~$9.2M)
WHALE = "6000000.123456789012"
MODELS = ("gpt-4o", "claude-sonnet-4-5", "gemini-2.5-pro")


def corpus(n: int = 600, seed: int = 7) -> list[UsageEvent]:
    """Events over ~6 weeks with NULL and non-NULL dimensions, unpriced rows, errors, and one customer whose
    spend passes $10,000,000 (two events of $6M): Int64 pico-dollar sums would wrap there."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        priced = i % 17 != 0
        cost = Decimal(rnd.randint(1, 10**9)) / Decimal(10**12) * 1000 if priced else None
        out.append(
            UsageEvent(
                id=str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
                provider="openai" if i % 3 else "anthropic",
                model=MODELS[i % 3],
                start_time=T0 + timedelta(minutes=rnd.randint(0, 60 * 24 * 42), microseconds=rnd.randint(0, 999_999)),
                status="error" if i % 23 == 0 else ("cancelled" if i % 29 == 0 else "success"),
                stream=bool(i % 2),
                input_tokens=rnd.randint(0, 5000),
                cache_read_tokens=rnd.randint(0, 300),
                output_tokens=rnd.randint(0, 900),
                total_tokens=0,
                input_cost=cost,
                total_cost=cost,
                subscriber_id=None if i % 5 == 0 else f"cust-{i % 7}",
                environment="prod" if i % 4 else None,
                team_id=f"team-{i % 3}",
            )
        )
    big = [
        UsageEvent(provider="openai", model="gpt-4o", start_time=T0 + timedelta(days=3, hours=h),
                   input_cost=Decimal(WHALE), total_cost=Decimal(WHALE),
                   subscriber_id="whale")
        for h in (1, 2)
    ]  # fmt: skip
    return out + big


QUERIES = [
    UsageQuery(),
    UsageQuery(group_by=["model"]),
    UsageQuery(group_by=["subscriber_id"]),
    UsageQuery(group_by=["model"], bucket="day"),
    UsageQuery(group_by=["model", "subscriber_id"], bucket="week"),
    UsageQuery(bucket="day", tz="Europe/Paris"),
    UsageQuery(bucket="month", tz="Asia/Kolkata", group_by=["environment"]),
    UsageQuery(bucket="hour", filters={"subscriber_id": ["cust-1", "cust-2"]}),
    UsageQuery(group_by=["status", "stream"], filters={"team_id": "team-1"}),
    UsageQuery(group_by=["provider"], start=T0 + timedelta(days=2), end=T0 + timedelta(days=20, hours=5)),
    UsageQuery(group_by=["team_id"], start=datetime(2026, 10, 1, tzinfo=timezone.utc),
               end=datetime(2026, 10, 15, tzinfo=timezone.utc), bucket="day"),
]  # fmt: skip


def _open(dest: str) -> Any:
    writer, reader = open_stores(dest, pool_size=2)
    if reader is not writer:
        reader.close()
    return writer


@pytest.fixture
def stores(tmp_path: Path, chdb_url: str, request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """The corpus in SQLite, ClickHouse and (when the server is up) PostgreSQL."""
    events = corpus()
    dests = {"sqlite": f"sqlite:///{tmp_path / 'ref.db'}", "chdb": chdb_url}
    try:
        dests["postgres"] = request.getfixturevalue("postgres_url")
    except pytest.skip.Exception:
        pass
    opened: dict[str, Any] = {}
    for name, dest in dests.items():
        writer, reader = open_stores(dest, pool_size=2)
        for i in range(0, len(events), 128):
            writer.insert(events[i : i + 128])
        if reader is not writer:
            writer.close()
        opened[name] = reader
    yield opened
    for s in opened.values():
        s.close()


def _rows(store: Any, q: UsageQuery) -> list[dict[str, Any]]:
    # rows come in bucket order; without a bucket no store promises an order (PostgreSQL hashes groups)
    return sorted(store.usage(q), key=lambda r: [str(v) for v in r.values()])


def test_every_usage_and_listing_query_answers_exactly_as_sqlite_and_postgres(stores: dict[str, Any]) -> None:
    ref = stores["sqlite"]
    for q in QUERIES:
        expected = _rows(ref, q)
        assert expected, q
        for name, store in stores.items():
            assert _rows(store, q) == expected, (name, q)
    whale = next(r for r in ref.usage(UsageQuery(group_by=["subscriber_id"])) if r["subscriber_id"] == "whale")
    assert whale["total_cost"] == 2 * Decimal(WHALE)  # past $10M (with WHALE of $6M), to the pico-dollar
    assert stores["chdb"].count() == ref.count() == 602
    for name, store in stores.items():  # paging: every event once, in the same order
        ids = [e.id for e in store.iter_events(page_size=97)]
        assert ids == [e.id for e in ref.iter_events(page_size=500)], name
        page, _ = store.events(filters={"subscriber_id": "cust-3"}, limit=5)
        assert [e.to_wire() for e in page] == [e.to_wire() for e in ref.events(filters={"subscriber_id": "cust-3"},
                                                                                limit=5)[0]], name  # fmt: skip


def test_day_buckets_are_integer_division_not_one_group_per_event(chdb_url: str) -> None:
    store = _open(chdb_url)
    try:
        base = datetime(2026, 11, 2, tzinfo=timezone.utc)
        store.insert([UsageEvent(provider="openai", model="m", start_time=base + timedelta(hours=h))
                      for h in range(72)])  # fmt: skip
        rows = store.usage(UsageQuery(bucket="day", group_by=["model", "provider"]))  # scans events, not the rollup
        assert [(r["bucket"].day, r["requests"]) for r in rows] == [(2, 24), (3, 24), (4, 24)]
    finally:
        store.close()


def test_inserts_are_idempotent_on_the_event_id_for_events_and_rollup(chdb_url: str) -> None:
    store = _open(chdb_url)
    try:
        events = corpus(200, seed=3)
        assert store.insert(events) == 202
        assert store.insert(events[:50]) == 0  # a retry
        assert store.insert([*events[150:], *events[150:]]) == 0  # duplicates inside one batch, already stored
        store.optimize()
        assert store.count() == 202
        rollup = store.usage(UsageQuery(group_by=["model"]))  # answered from the materialized rollup
        scan = store.usage(UsageQuery(group_by=["model"], bucket="hour"))
        assert sum(r["requests"] for r in rollup) == sum(r["requests"] for r in scan) == 202
        assert sum(r["total_cost"] for r in rollup) == sum(r["total_cost"] for r in scan)
        store.rebuild_rollup()
        assert store.usage(UsageQuery(group_by=["model"])) == rollup
    finally:
        store.close()


def test_prune_drops_month_partitions_and_keeps_the_rollup(chdb_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    store = _open(chdb_url)
    parts_sql = ("SELECT DISTINCT partition FROM system.parts WHERE database = currentDatabase() "
                 "AND table = 'events' AND active")  # fmt: skip
    try:
        days = [datetime(2026, m, d, 12, tzinfo=timezone.utc) for m, d in ((8, 5), (9, 10), (10, 2), (10, 20), (11, 1))]
        store.insert([UsageEvent(provider="openai", model="m", start_time=t, total_cost=Decimal(1)) for t in days])
        assert {r[0] for r in store.fetch_clickhouse(parts_sql)} == {"202608", "202609", "202610", "202611"}
    finally:
        store.close()
    assert main(["prune", "--database", chdb_url, "--older-than", "2026-10-10T08:00:00Z", "--dry-run"]) == 0
    assert "would delete 3 events" in capsys.readouterr().out
    assert main(["prune", "--database", chdb_url, "--older-than", "2026-10-10T08:00:00Z"]) == 0
    assert "deleted 3 events started before 2026-10-10 08:00 UTC" in capsys.readouterr().out
    store = _open(chdb_url)
    try:
        assert [e.start_time for e in store.iter_events()] == days[3:]
        assert {r[0] for r in store.fetch_clickhouse(parts_sql)} == {"202610", "202611"}  # two months dropped whole
        totals = store.usage(UsageQuery())  # from the rollup: kept by design, as on the SQL stores
        assert (totals[0]["requests"], totals[0]["total_cost"]) == (5, Decimal(5))
        scan = store.usage(UsageQuery(bucket="hour"))  # from the events: what is left
        assert sum(r["requests"] for r in scan) == 2
    finally:
        store.close()


def test_keys_and_budgets_live_in_the_metadata_database_and_spend_reads_clickhouse(chdb_url: str) -> None:
    store = _open(chdb_url)
    try:
        key, rec = key_store.create_key(store, "admin", "ops")
        assert key_store.find_key(store, key) == rec
        budget = budget_store.create_budget(store, {"name": "acme", "scope": "subscriber", "scope_value": "acme",
                                         "period": "total", "limit_usd": "20000000"})  # fmt: skip
        store.insert(
            [
                UsageEvent(
                    provider="openai",
                    model="m",
                    start_time=T0 + timedelta(hours=i),
                    total_cost=Decimal("5000000.000000000001"),
                    subscriber_id="acme",
                )
                for i in range(3)
            ]
        )
        store.insert([UsageEvent(provider="openai", model="m", start_time=T0, total_cost=Decimal(9),
                                 subscriber_id="x")])  # fmt: skip
        assert budget_store.spend(store, budget, now=T0 + timedelta(days=1)) == Decimal("15000000.000000000003")
        assert budget_store.claim_alert(store, budget, T0, 50, Decimal(15)) is True
        assert budget_store.claim_alert(store, budget, T0, 50, Decimal(15)) is False
    finally:
        store.close()


def test_sdk_records_straight_into_clickhouse(chdb_url: str, tmp_path: Path) -> None:
    meterline.init(destination=chdb_url, spool_dir=tmp_path / "spool")
    try:
        for i in range(25):
            meterline.record(provider="openai", model="gpt-4o-mini", input_tokens=1000, output_tokens=10 * i,
                             subscriber_id="acme")  # fmt: skip
        assert meterline.flush(20)
    finally:
        meterline.shutdown(5)
    store = _open(chdb_url)
    try:
        (row,) = store.usage(UsageQuery(group_by=["subscriber_id"]))
        assert (row["requests"], row["input_tokens"], row["output_tokens"]) == (25, 25_000, 3000)
    finally:
        store.close()


def test_migrate_copies_resumes_and_verifies(tmp_path: Path, chdb_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    src = f"sqlite:///{tmp_path / 'src.db'}"
    _open(src).close()
    events = corpus(900, seed=11)
    w, _ = open_stores(src)
    w.insert(events)
    w.close()

    class Dies:  # a source that fails after two pages, like a copy interrupted by a restart
        def __init__(self, inner: Any) -> None:
            self.inner, self.pages = inner, 0

        def events(self, **kw: Any) -> Any:
            self.pages += 1
            if self.pages > 2:
                raise ConnectionError("source went away")
            return self.inner.events(**kw)

    source, _ = open_stores(src)
    target, _ = open_stores(chdb_url)
    try:
        with pytest.raises(ConnectionError):
            copy_events(Dies(source), target, source_description=src, page_size=200)
        assert target.count() == 400
    finally:
        source.close()
        target.close()
    assert main(["migrate", "--database", src, "--to", chdb_url, "--batch-size", "200"]) == 0
    out = capsys.readouterr().out
    assert "copied 902 events (resumed, 502 new)" in out
    assert "verified: " in out and "every count, token and cost sum equal" in out
    assert main(["migrate", "--database", src, "--to", chdb_url]) == 0  # again: nothing new
    assert "(resumed, 0 new)" in capsys.readouterr().out
    source, _ = open_stores(src)
    target, _ = open_stores(chdb_url)
    try:
        assert target.count() == 902
        days, diffs = verify(source, target)
        assert days > 40 and diffs == []
        target.insert([UsageEvent(provider="openai", model="m", start_time=T0, total_cost=Decimal("0.5"))])
        _, diffs = verify(source, target)
        assert {d.metric for d in diffs} == {"requests", "total_cost"}
    finally:
        source.close()
        target.close()
    assert main(["migrate", "--database", src, "--to", chdb_url, "--verify-only"]) == 1
    assert "MISMATCH 2026-09-28 requests: source" in capsys.readouterr().err


def test_bad_destinations_are_one_line_errors_without_the_clickhouse_extras(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same commands on an install without `[clickhouse]`/`[chdb]`: one line naming the extra to install
    (this test depended on whether the extras happened to be installed)."""
    monkeypatch.setitem(sys.modules, "clickhouse_connect", None)
    monkeypatch.setitem(sys.modules, "chdb", None)
    for destination in ("clickhouse://127.0.0.1:9/meter", "chdb:///tmp/nowhere"):
        assert main(["report", "--database", destination]) == 2
        err = capsys.readouterr().err
        assert "needs pip install 'meterline[clickhouse]' (or '[chdb]' for chdb://)" in err, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main(["report", "--database", "clickhouse://h/bad-name!"]) == 2
    assert "bad database name 'bad-name!'" in capsys.readouterr().err


def test_bad_destinations_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("clickhouse_connect", reason="needs the [clickhouse] extra (CI installs it)")
    assert main(["report", "--database", "clickhouse://127.0.0.1:9/meter"]) == 2
    err = capsys.readouterr().err
    assert "cannot connect to clickhouse://127.0.0.1:9/meter" in err and "Traceback" not in err
    assert main(["report", "--database", "chdb://relative/dir"]) == 2
    assert "write chdb:///path/to/dir" in capsys.readouterr().err
    assert main(["report", "--database", "clickhouse://h/bad-name!"]) == 2
    assert "bad database name 'bad-name!'" in capsys.readouterr().err


# -- the hourly rollup (ClickHouse only) ----------------------------------------------------------------
HOURLY_QUERIES = [  # answered from events_hourly: (query, from the hourly rollup?)
    (UsageQuery(group_by=["model"], bucket="day", tz="Europe/Paris"), True),  # DST: local days from hours
    (UsageQuery(group_by=["subscriber_id", "model"]), True),
    (UsageQuery(bucket="hour", filters={"environment": "prod"}), True),
    # whole hours (T0 is at :30)
    (
        UsageQuery(
            group_by=["model"], bucket="week", start=T0 + timedelta(minutes=150), end=T0 + timedelta(days=9, minutes=30)
        ),
        True,
    ),
    (UsageQuery(bucket="day", tz="Asia/Kolkata", group_by=["model"]), False),  # +5:30: days split hours
    (UsageQuery(group_by=["model", "agent"], start=T0 + timedelta(minutes=10)), False),  # not on an hour
    (UsageQuery(group_by=["status", "model"]), False),  # status is not an hourly dimension
]


def test_hourly_rollup_answers_what_the_scan_answers_and_only_when_it_can(stores: dict[str, Any]) -> None:
    ch, ref = stores["chdb"], stores["sqlite"]
    seen: list[str] = []
    fetch = ch._fetch

    def spy(sql: str, params: Any) -> Any:
        seen.append(sql)
        return fetch(sql, params)

    ch._fetch = spy
    for q, hourly in HOURLY_QUERIES:
        seen.clear()
        assert _rows(ch, q) == _rows(ref, q), q
        assert any("FROM events_hourly" in s for s in seen) is hourly, (q, seen)
    # the $12M customer, to the pico-dollar, through the hourly rows
    [whale] = [r for r in ch.usage(UsageQuery(group_by=["subscriber_id", "model"])) if r["subscriber_id"] == "whale"]
    assert whale["total_cost"] == 2 * Decimal(WHALE)


def test_hourly_rollup_is_filled_for_a_store_made_before_it_and_rebuilt_on_demand(chdb_url: str) -> None:
    store = _open(chdb_url)
    q = UsageQuery(group_by=["subscriber_id", "model"], bucket="day", tz="Europe/Paris")
    try:
        store.insert(corpus(300, seed=5))
        expected = store.usage(q)
        assert sum(r["requests"] for r in expected) == 302
        store.command_clickhouse("DROP VIEW events_hourly_mv")
        store.command_clickhouse("DROP TABLE events_hourly")  # as a store of before the hourly rollup
        store.execute("DELETE FROM meterline_meta WHERE key = ?", ("clickhouse_hourly_ready",))
    finally:
        store.close()
    store = _open(chdb_url)  # opening creates it and fills it from the stored events
    try:
        assert store.fetch_clickhouse("SELECT sum(requests) FROM events_hourly") == [(302,)]
        assert store._hourly_ready and store.usage(q) == expected
        store.command_clickhouse("TRUNCATE TABLE events_hourly")
        # another process claimed the fill and has not finished: reports scan events meanwhile
        store.execute("DELETE FROM meterline_meta WHERE key = ?", ("clickhouse_hourly_ready",))
        store.execute("INSERT INTO meterline_meta (key, value) VALUES (?, ?)", ("clickhouse_hourly_ready", "filling"))
    finally:
        store.close()
    store = _open(chdb_url)
    try:
        assert not store._hourly_ready and store.usage(q) == expected  # from a scan: the hourly table is empty
        store.rebuild_rollup()  # fills it and marks it ready
        assert store._hourly_ready and store.fetch_clickhouse("SELECT sum(requests) FROM events_hourly") == [(302,)]
        assert store.usage(q) == expected
    finally:
        store.close()


def test_prune_removes_pruned_hours_and_rebuilds_the_hour_of_the_cut(chdb_url: str) -> None:
    store = _open(chdb_url)
    base = datetime(2026, 10, 5, 7, tzinfo=timezone.utc)
    try:
        store.insert([UsageEvent(provider="openai", model="m", start_time=base + timedelta(minutes=m), input_tokens=m)
                      for m in (10, 50, 80, 130)])  # fmt: skip
        assert store.prune_events(base + timedelta(minutes=30)) == 1
        rows = store.usage(UsageQuery(bucket="hour"))
        assert [(r["bucket"].hour, r["requests"], r["input_tokens"]) for r in rows] == [
            (7, 1, 50),
            (8, 1, 80),
            (9, 1, 130),
        ]
    finally:
        store.close()
