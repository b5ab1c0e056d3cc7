"""Two collectors racing on one re-sent event, on the embedded ClickHouse (chdb).

The issue "Hardening": a client sends a batch to collector A, times out, and re-sends it to collector B while A
is still inserting it. Both looked the ids up before either inserted, both inserted, and both rollups
(``events_daily`` and ``events_hourly``, SummingMergeTree tables fed by materialized views) counted the events
twice until ``meterline migrate --rebuild-rollup``. The fix serialises each batch's id check and insert under a
lock in the SQL metadata database that the collectors share (see ``store.clickhouse_lock``).

chdb opens a data directory in one process only (a second process fails with "Error initializing
EmbeddedServer"), so the two collectors are two ``ClickHouseStore`` objects in one process, each with its own
client and its own connections to the metadata database, racing on threads; a barrier placed right after each
id look-up makes every collector look before any inserts (the race, every time). Crash and failure of the
lock's holder are checked with a real second process holding the lock in the metadata database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from meterline.core.event import UsageEvent
from meterline.store.clickhouse import ClickHouseStore
from meterline.store.query import UsageQuery
from meterline.store.rollup import TOTAL

pytestmark = pytest.mark.clickhouse
T0 = datetime(2026, 11, 30, 22, 0, tzinfo=timezone.utc)  # spans two days and two months: several rollup rows
_SUMS = ("requests", "input_tokens", "output_tokens", "total_cost")


def _events(n: int, seed: int = 0) -> list[UsageEvent]:
    return [
        UsageEvent(
            id=str(uuid.UUID(int=seed * 10**6 + i + 1)),
            provider="openai" if i % 2 else "anthropic",
            model=("gpt-4o", "claude-sonnet-4-5", "gpt-4o-mini")[i % 3],
            start_time=T0 + timedelta(minutes=7 * i),
            input_tokens=100 + i,
            output_tokens=10 + i % 13,
            total_cost=Decimal("0.000123456789") * (i + 1),
            subscriber_id=f"cust-{i % 4}",
        )
        for i in range(n)
    ]


class _PauseAfterLookUp:
    """A ClickHouse client whose id look-up (``SELECT id FROM events …``) waits at a barrier once it has its
    answer: every collector has looked before any inserts. With the cross-process lock, the second collector
    cannot look while the first holds it, so the barrier times out and each goes on in turn."""

    def __init__(self, client: Any, barrier: threading.Barrier) -> None:
        self._client, self._barrier = client, barrier

    def query(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        result = self._client.query(sql, *args, **kwargs)
        if sql.lstrip().startswith("SELECT id FROM events"):
            try:
                self._barrier.wait(timeout=1.0)
            except threading.BrokenBarrierError:
                pass
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def _with_meta(chdb_url: str, meta: str) -> str:
    base, _, query = chdb_url.partition("?")
    params = dict(urllib.parse.parse_qsl(query))
    params["meta"] = meta
    return f"{base}?{urllib.parse.urlencode(params)}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def destination(request: pytest.FixtureRequest, chdb_url: str) -> str:
    """One ClickHouse database whose metadata database is a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "postgres":
        return _with_meta(chdb_url, request.getfixturevalue("postgres_url"))
    return chdb_url


@pytest.fixture
def collectors(destination: str) -> Iterator[list[ClickHouseStore]]:
    stores = [ClickHouseStore(destination) for _ in range(3)]
    yield stores
    for s in stores:
        s.close()


def _race(stores: list[ClickHouseStore], batches: list[list[UsageEvent]]) -> list[int]:
    """Each store inserts its batch on its own thread, every id look-up done before any insert."""
    barrier = threading.Barrier(len(stores))
    originals = [s._client for s in stores]
    for s in stores:
        s._client = _PauseAfterLookUp(s._client, barrier)
    new = [0] * len(stores)
    errors: list[BaseException] = []

    def run(k: int) -> None:
        try:
            new[k] = stores[k].insert(batches[k])
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    try:
        threads = [threading.Thread(target=run, args=(k,)) for k in range(len(stores))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        for s, client in zip(stores, originals, strict=True):
            s._client = client
    assert errors == []
    return new


def _sums(store: ClickHouseStore) -> dict[str, tuple[Any, ...]]:
    """The same sums from the events (FINAL: each id once), the daily rollup and the hourly rollup."""
    cols = ", ".join(f"sum({c})" for c in ("input_tokens", "output_tokens", "total_cost"))
    (final,) = store.fetch_clickhouse(f"SELECT count(), {cols} FROM events FINAL")
    (hourly,) = store.fetch_clickhouse(f"SELECT sum(requests), {cols} FROM events_hourly")
    (daily,) = store.fetch_clickhouse(f"SELECT sum(requests), {cols} FROM events_daily WHERE dim = %s", [TOTAL])
    return {"final": tuple(final), "daily": tuple(daily), "hourly": tuple(hourly)}


def _check_exact(store: ClickHouseStore, n: int) -> None:
    sums = _sums(store)
    assert sums["final"][0] == n
    assert sums["daily"] == sums["final"], sums
    assert sums["hourly"] == sums["final"], sums
    # and what a report reads: from the daily rollup, from the hourly rollup, from a scan of events
    daily = store.usage(UsageQuery(group_by=["model"]))
    hourly = store.usage(UsageQuery(group_by=["model", "subscriber_id"], bucket="day"))
    store.hourly_reads = False
    try:
        scan = store.usage(UsageQuery(group_by=["model", "subscriber_id"], bucket="day"))
    finally:
        store.hourly_reads = True
    assert hourly == scan
    for col in _SUMS:
        assert sum(r[col] for r in daily) == sum(r[col] for r in scan), col


def test_collectors_racing_on_a_resent_batch_count_it_once_in_both_rollups(collectors: list[ClickHouseStore]) -> None:
    a, b, c = collectors
    events = _events(60)
    # the same batch re-sent to all three collectors at once
    new = _race([a, b, c], [events, events, events])
    assert sum(new) == 60, new  # exactly one collector reports each event as new
    _check_exact(a, 60)
    # overlapping re-sends: each batch shares ids with the others, and brings some of its own
    more = _events(90, seed=1)
    new = _race([a, b, c], [more[0:50], more[20:70], [*more[40:90], *events[:10]]])
    assert sum(new) == 90, new
    _check_exact(b, 150)


def test_the_old_path_double_counts_the_race(collectors: list[ClickHouseStore]) -> None:
    """The reproduction itself: without the metadata lock (each process's own lock only, as before the fix),
    the same race counts the batch twice in both rollups while ``events FINAL`` counts it once."""
    a, b, _ = collectors
    a.serialise_inserts = b.serialise_inserts = False
    events = _events(40, seed=2)
    assert _race([a, b], [events, events]) == [40, 40]
    sums = _sums(a)
    assert sums["final"][0] == 40
    assert sums["daily"][0] == sums["hourly"][0] == 80  # the bug
    a.rebuild_rollup()  # the old repair
    _check_exact(a, 40)


def test_an_insert_that_fails_after_the_look_up_leaves_no_claim_behind(collectors: list[ClickHouseStore]) -> None:
    """A failure between the look-up and the insert must not make the re-send look like a duplicate."""
    a, b, _ = collectors
    events = _events(30, seed=3)

    class _Down:
        def __init__(self, client: Any) -> None:
            self._client = client

        def insert(self, *args: Any, **kwargs: Any) -> None:
            raise ConnectionError("ClickHouse went away mid-insert")

        def __getattr__(self, name: str) -> Any:
            return getattr(self._client, name)

    real = a._client
    a._client = _Down(real)
    try:
        with pytest.raises(ConnectionError):
            a.insert(events)
    finally:
        a._client = real
    assert b.insert(events) == 30  # the re-send, on the other collector
    assert a.insert(events) == 0  # and the client's own retry
    _check_exact(a, 30)


_HOLDER = textwrap.dedent(
    """
    import sys, time
    from meterline.store.clickhouse import _open_meta
    from meterline.store.clickhouse_lock import InsertLock

    lock = InsertLock(_open_meta(sys.argv[1]))
    with lock.hold(["{ids}"]):
        print("held", flush=True)
        time.sleep(120)
    """
)


def test_a_collector_killed_while_holding_the_lock_blocks_nobody(collectors: list[ClickHouseStore]) -> None:
    """A process holding the lock (between its look-up and its insert) and then killed: the database releases
    the lock with its connection, the other collectors go on, and nothing was claimed for the dead one."""
    a = collectors[0]
    events = _events(20, seed=4)
    meta = a.meta
    meta_url = f"sqlite:///{meta.path}" if meta.dialect.name == "sqlite" else meta.url  # type: ignore[union-attr]
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER.replace("{ids}", events[0].id), meta_url],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        done: list[int] = []
        t = threading.Thread(target=lambda: done.append(a.insert(events)))
        t.start()
        time.sleep(1.0)
        assert done == []  # waiting for the other process's lock
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
        t.join(20)
        assert done == [20]
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
    _check_exact(a, 20)
