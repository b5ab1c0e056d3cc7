"""One bad event never blocks the rest: per-event isolation, dead letters, spool per destination and replay.

The end-to-end runs are real app processes (the events must be stored by the app's own exit) writing to
SQLite, PostgreSQL, or a real collector process over HTTP.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import pytest

import meterline
from collector_support import SRC, ProcessCollector
from meterline.core.config import destination_key
from meterline.core.event import UsageEvent
from meterline.sdk.delivery.deadletter import DeadLetters
from meterline.sdk.delivery.spool import Spool
from meterline.sdk.recorder import Recorder
from meterline.sdk.sinks.base import SinkError
from meterline.sdk.sinks.sqlite import SQLiteSink
from meterline.store.backend import open_stores

# An app that records one event the store cannot take, then 2,000 good ones, and exits without flush().
# The poison is planted after validation (as a before_write hook or a later bug could), so the test holds
# whatever the event validation accepts.
POISON_APP = textwrap.dedent(
    """
    import atexit, json, sys
    import meterline
    from datetime import datetime, timezone
    from meterline.core.event import UsageEvent

    dest, state, poison = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    atexit.register(lambda: print(json.dumps(meterline.stats()), flush=True))  # runs after meterline's hook
    meterline.init(destination=dest, spool_dir=state, flush_interval=0.05, exit_timeout=60)
    bad = UsageEvent(provider="openai", model="gpt-4o-mini", start_time=datetime.now(timezone.utc))
    bad.subscriber_id = poison
    meterline.get_recorder().submit(bad)
    print(bad.id, flush=True)
    for i in range(2000):
        meterline.record(provider="openai", model="gpt-4o-mini", input_tokens=10, output_tokens=1,
                         subscriber_id=f"c{i % 7}")
    """
)


def _run_app(code: str, *args: str, tmp_path: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "app.py"
    script.write_text(code)
    env = {**os.environ, "PYTHONPATH": SRC, "METERLINE_HOME": str(tmp_path / "home")}
    env.pop("PYTEST_CURRENT_TEST", None)
    env.pop("METERLINE_RAISE_INTERNAL", None)
    return subprocess.run(
        [sys.executable, str(script), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def _count(dest: str) -> int:
    store, reader = open_stores(dest, pool_size=1)
    if reader is not store:
        reader.close()
    try:
        return int(store.fetch("SELECT COUNT(DISTINCT id) FROM events")[0][0])
    finally:
        store.close()


def _dead_letters(state: Path, dest: str) -> list[dict[str, object]]:
    return list(DeadLetters(state / destination_key(dest) / "deadletter.jsonl").read())


@pytest.mark.parametrize(
    ("backend", "poison"),
    [
        ("sqlite", "\ud800"),
        pytest.param("postgres", "\ud800", marks=pytest.mark.postgres),
        pytest.param("postgres", "a\x00b", marks=pytest.mark.postgres),
    ],
    ids=["sqlite-surrogate", "postgres-surrogate", "postgres-nul"],
)
def test_one_unstorable_event_then_2000_good_ones_direct(
    backend: str, poison: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    dest = f"sqlite:///{tmp_path / 'm.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    proc = _run_app(POISON_APP, dest, str(tmp_path / "state"), json.dumps(poison), tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    bad_id, stats_line = proc.stdout.strip().splitlines()[0], proc.stdout.strip().splitlines()[-1]
    stats = json.loads(stats_line)
    assert _count(dest) == 2000
    assert stats["written"] == 2000 and stats["dead_lettered"] == 1, stats
    assert stats["dropped_sink_failure"] == 0 and stats["spooled"] == 0, stats
    letters = _dead_letters(tmp_path / "state", dest)
    assert [d["event"]["id"] for d in letters] == [bad_id]  # type: ignore[index]
    assert letters[0]["event"]["subscriber_id"] == poison  # type: ignore[index]  # kept as it was, escaped
    assert letters[0]["reason"]


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_one_unstorable_event_then_2000_good_ones_over_http(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db = f"sqlite:///{tmp_path / 'collector.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    collector = ProcessCollector(db, "--no-auth", log=tmp_path / "collector.log").start()
    try:
        proc = _run_app(POISON_APP, collector.url, str(tmp_path / "state"), json.dumps("\ud800"), tmp_path=tmp_path)
    finally:
        collector.stop()
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    stats = json.loads(lines[-1])
    assert _count(db) == 2000
    assert stats["dead_lettered"] == 1 and stats["dropped_sink_failure"] == 0, stats
    assert [d["event"]["id"] for d in _dead_letters(tmp_path / "state", collector.url)] == [lines[0]]  # type: ignore[index]


# -- in-process: bisection, spool files, destinations --------------------------------------------------
def _ev(i: int = 0, subscriber: str | None = None) -> UsageEvent:
    e = UsageEvent(
        provider="openai", model="gpt-4o-mini", start_time=datetime.now(timezone.utc), input_tokens=i, output_tokens=1
    )
    e.subscriber_id = subscriber
    e.finalize_totals()
    return e


class PickySink:
    """Refuses a whole batch (as a 422 would) when it holds a ``poison`` subscriber; stores the rest."""

    description = "picky"

    def __init__(self, path: Path, *, data_fault: bool | None = True, down: bool = False) -> None:
        self.inner = SQLiteSink(path)
        self.data_fault = data_fault
        self.down = down
        self.writes = 0

    def write(self, events: Sequence[UsageEvent]) -> int:
        self.writes += 1
        if self.down:
            raise SinkError("connection refused", retryable=True)
        if any(e.subscriber_id == "poison" for e in events):
            raise SinkError("answered 422: subscriber_id: not storable", retryable=False, data_fault=self.data_fault)
        return self.inner.write(events)

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize("data_fault", [True, None], ids=["data-fault", "unclear-500"])
def test_a_refused_batch_is_split_and_only_the_culprits_are_dead_lettered(
    tmp_path: Path, data_fault: bool | None
) -> None:
    sink = PickySink(tmp_path / "m.db", data_fault=data_fault)
    letters = DeadLetters(tmp_path / "dead.jsonl")
    r = Recorder(sink, spool=Spool(tmp_path / "spool"), dead_letters=letters, batch_size=1000, flush_interval=60)
    events = [_ev(i, "poison" if i in (3, 700) else f"c{i}") for i in range(1000)]
    for e in events:
        r.submit(e)
    assert r.flush(10)
    s = r.stats()
    assert s["written"] == 998 and s["dead_lettered"] == 2 and s["spooled"] == 0, s
    assert sorted(d["event"]["id"] for d in letters.read()) == sorted([events[3].id, events[700].id])  # type: ignore[index]
    assert sink.writes <= 45  # a bisection, not one write per event
    r.shutdown()


def test_an_unclear_failure_of_every_write_blames_the_destination_not_the_events(tmp_path: Path) -> None:
    class Broken(PickySink):
        def write(self, events: Sequence[UsageEvent]) -> int:
            self.writes += 1
            raise SinkError("answered 500", retryable=True, data_fault=None)

    letters = DeadLetters(tmp_path / "dead.jsonl")
    r = Recorder(Broken(tmp_path / "m.db"), spool=Spool(tmp_path / "spool"), dead_letters=letters, flush_interval=60)
    for i in range(8):
        r.submit(_ev(i))
    assert r.flush(10)
    s = r.stats()
    assert s["spooled"] == 8 and s["dead_lettered"] == 0, s
    assert list(letters.read()) == []
    r.shutdown(0.5)


def test_a_poisoned_spool_file_never_blocks_newer_ones_and_replays_at_start(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    oldest = [_ev(0, "poison"), *(_ev(i) for i in range(1, 50))]
    newer = [[_ev(i) for i in range(50)] for _ in range(5)]
    assert spool.append(oldest)
    for batch in newer:
        assert spool.append(batch)
    sink = PickySink(tmp_path / "m.db")
    letters = DeadLetters(tmp_path / "dead.jsonl")
    # no event is ever submitted: the replay starts with the recorder
    r = Recorder(sink, spool=spool, dead_letters=letters, flush_interval=60)
    deadline = time.monotonic() + 10
    while r.stats()["replayed"] < 300 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert r.shutdown(10)
    s = r.stats()
    assert s["replayed"] == 300 and s["written"] == 299 and s["dead_lettered"] == 1, s
    assert spool.pending_files() == 0
    assert [d["event"]["id"] for d in letters.read()] == [oldest[0].id]  # type: ignore[index]


def test_replay_goes_at_full_speed_while_the_destination_is_up(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    for _ in range(200):
        assert spool.append([_ev(i) for i in range(10)])
    r = Recorder(PickySink(tmp_path / "m.db"), spool=spool, flush_interval=30)  # one wake-up per 30 s at most
    t = time.monotonic()
    # a claimed file is no longer pending before its write is done: wait for the count
    while r.stats()["replayed"] < 2000 and time.monotonic() - t < 20:
        time.sleep(0.02)
    took = time.monotonic() - t
    assert spool.pending_files() == 0 and r.stats()["replayed"] == 2000
    assert took < 10, took  # 200 files, not one per 30-second wake-up
    r.shutdown()


def test_a_destination_that_comes_back_is_found_again_within_seconds(tmp_path: Path) -> None:
    sink = PickySink(tmp_path / "m.db", down=True)
    r = Recorder(sink, spool=Spool(tmp_path / "spool"), flush_interval=30, max_retries=0, backoff_max=30)
    for i in range(100):
        r.submit(_ev(i))
    assert r.flush(5)
    assert r.stats()["spooled"] == 100
    sink.down = False  # back, and no new event arrives
    deadline = time.monotonic() + 6
    while r.stats()["replayed"] < 100 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert r.stats()["replayed"] == 100 and r.stats()["written"] == 100
    r.shutdown()


def test_each_destination_has_its_own_spool_and_no_credential_in_its_path(tmp_path: Path) -> None:
    state = tmp_path / "state"
    down = "http://user:hunter2@127.0.0.1:9/"  # nothing listens on port 9: every write fails
    meterline.init(down, spool_dir=state, max_retries=0, flush_interval=0.05)
    ids = [meterline.record(provider="openai", model="gpt-4o-mini", input_tokens=i) for i in range(20)]
    assert meterline.flush(10)
    assert meterline.stats()["spooled"] == 20
    paths = [str(p) for p in state.rglob("*")]
    assert paths and not any("hunter2" in p or "user" in p for p in paths), paths
    assert all("hunter2" not in p.read_text(errors="replace") for p in state.rglob("*") if p.is_file())
    meterline.shutdown(0.5)
    # another destination starts: it never replays the first one's spool
    db = tmp_path / "other.db"
    meterline.init(f"sqlite:///{db}", spool_dir=state)
    meterline.record(provider="openai", model="gpt-4o-mini")
    assert meterline.flush(10)
    assert _count(f"sqlite:///{db}") == 1
    meterline.shutdown(5)
    spooled = [json.loads(line)["id"] for p in state.rglob("*.jsonl") for line in p.read_text().splitlines()]
    assert sorted(spooled) == sorted(ids)


@pytest.mark.allow_internal_errors
def test_a_spool_under_a_regular_file_is_counted_and_flush_says_false(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    meterline.init("http://127.0.0.1:9/", spool_dir=blocker / "spool", max_retries=0, flush_interval=0.05)
    for i in range(5):
        meterline.record(provider="openai", model="gpt-4o-mini", input_tokens=i)
    assert meterline.flush(10) is False  # the events are lost, and flush says so
    s = meterline.stats()  # never raises
    assert s["dropped_sink_failure"] == 5 and s["spool_errors"] >= 1 and s["spool_files"] == 0, s
    meterline.shutdown(0.5)


def test_events_a_collector_rejects_in_a_207_are_dead_lettered_with_its_reason(tmp_path: Path) -> None:
    from collector_support import ThreadCollector
    from meterline.sdk.sinks.http import HttpSink

    with ThreadCollector(database=f"sqlite:///{tmp_path / 'c.db'}", auth=False) as collector:
        letters = DeadLetters(tmp_path / "dead.jsonl")
        r = Recorder(HttpSink(collector.url), dead_letters=letters, flush_interval=60)
        events = [_ev(i) for i in range(10)]
        bad = events[4]
        r.submit(bad)
        for e in events[:4] + events[5:]:
            r.submit(e)
        bad.input_tokens = -5  # after submit, before the worker serialises it: the collector's validation refuses it
        assert r.flush(10)
        s = r.stats()
        assert s["written"] == 9 and s["rejected"] == 1 and s["dead_lettered"] == 1, s
        (letter,) = list(letters.read())
        assert letter["event"]["id"] == bad.id  # type: ignore[index]
        assert "input_tokens" in str(letter["reason"])
        r.shutdown()


def test_a_spool_line_that_no_longer_validates_is_dead_lettered_not_dropped(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    good = [_ev(i) for i in range(3)]
    assert spool.append(good)
    (only,) = list((tmp_path / "spool").glob("*.jsonl"))
    invalid = json.dumps({"id": "not-a-uuid-at-all", "provider": "openai", "input_tokens": -5})
    only.write_text(only.read_text() + invalid + "\n" + "{torn\n")
    letters = DeadLetters(tmp_path / "dead.jsonl")
    r = Recorder(PickySink(tmp_path / "m.db"), spool=spool, dead_letters=letters, flush_interval=60)
    assert r.shutdown(10)
    s = r.stats()
    assert s["written"] == 3 and s["dead_lettered"] == 2 and s["spool_errors"] == 2, s
    assert sorted(str(d["raw"]) for d in letters.read()) == sorted([invalid, "{torn"])
