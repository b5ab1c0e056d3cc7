"""The recorder: non-blocking submit, batching, retry/backoff, spool + replay, flush deadlines, fork."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from meterline.core.event import UsageEvent
from meterline.sdk.delivery.spool import Spool
from meterline.sdk.recorder import Recorder
from meterline.sdk.sinks.base import SinkError
from meterline.sdk.sinks.sqlite import SQLiteSink
from meterline.store import SQLiteStore


def _ev(i: int = 0) -> UsageEvent:
    return UsageEvent(
        provider="openai", model="gpt-4o-mini", start_time=datetime.now(timezone.utc), input_tokens=i, output_tokens=1
    )


class FlakySink:
    """Fails the first ``failures`` writes with the given error, then stores into SQLite."""

    description = "flaky"

    def __init__(
        self,
        path: Path,
        failures: int,
        *,
        retryable: bool = True,
        retry_after: float | None = None,
        exc: Exception | None = None,
    ) -> None:
        self.inner = SQLiteSink(path)
        self.failures = failures
        self.retryable = retryable
        self.retry_after = retry_after
        self.exc = exc
        self.calls: list[tuple[float, int]] = []
        self.block = threading.Event()
        self.block.set()

    def write(self, events: Sequence[UsageEvent]) -> int:
        self.block.wait()
        self.calls.append((time.monotonic(), len(events)))
        if self.failures > 0:
            self.failures -= 1
            if self.exc is not None:
                raise self.exc
            raise SinkError("collector unavailable", retryable=self.retryable, retry_after=self.retry_after)
        return self.inner.write(events)

    def close(self) -> None:
        self.inner.close()


def _stored_ids(path: Path) -> list[str]:
    store = SQLiteStore(path)
    try:
        return [e.id for e in store.iter_events()]
    finally:
        store.close()


def test_full_queue_drops_are_counted_and_submit_returns_false(tmp_path: Path) -> None:
    sink = FlakySink(tmp_path / "m.db", 0)
    sink.block.clear()  # the writer is stuck: nothing leaves the queue
    r = Recorder(sink, queue_size=10, batch_size=1000, flush_interval=0.01)
    results = [r.submit(_ev(i)) for i in range(15)]
    time.sleep(0.05)  # the worker takes what is queued and blocks on the sink
    more = [r.submit(_ev(i)) for i in range(15)]
    assert results.count(True) == 10 and results.count(False) == 5
    assert more.count(True) == 10 and more.count(False) == 5
    assert r.stats()["dropped_queue_full"] == 10
    sink.block.set()
    assert r.flush(5)
    assert r.shutdown(5)
    assert len(_stored_ids(tmp_path / "m.db")) == 20


def test_batches_by_count(tmp_path: Path) -> None:
    sink = FlakySink(tmp_path / "m.db", 0)
    r = Recorder(sink, batch_size=100, flush_interval=60)
    for i in range(1050):
        r.submit(_ev(i))
    assert r.flush(5)
    assert sum(n for _, n in sink.calls) == 1050
    assert max(n for _, n in sink.calls) == 100
    r.shutdown()


def test_retryable_failure_backs_off_then_succeeds_with_retry_after_as_minimum(tmp_path: Path) -> None:
    sink = FlakySink(tmp_path / "m.db", 2, retry_after=0.3)
    r = Recorder(sink, batch_size=10, flush_interval=0.01, backoff_base=0.01, backoff_max=0.5)
    ids = [_ev(i) for i in range(5)]
    for e in ids:
        r.submit(e)
    assert r.flush(5)
    gaps = [b[0] - a[0] for a, b in zip(sink.calls, sink.calls[1:], strict=False)]
    assert len(sink.calls) == 3
    assert all(g >= 0.3 for g in gaps), gaps  # Retry-After honoured as a minimum
    assert r.stats()["retries"] == 2 and r.stats()["written"] == 5
    assert sorted(_stored_ids(tmp_path / "m.db")) == sorted(e.id for e in ids)
    r.shutdown()


def test_retry_after_is_capped_by_backoff_max(tmp_path: Path) -> None:
    sink = FlakySink(tmp_path / "m.db", 1, retry_after=3600)
    r = Recorder(sink, flush_interval=0.01, backoff_base=0.01, backoff_max=0.2)
    r.submit(_ev())
    assert r.flush(3)
    assert sink.calls[1][0] - sink.calls[0][0] < 1.0
    r.shutdown()


def test_sink_down_spools_then_replays_same_ids_exactly_once(tmp_path: Path) -> None:
    sink = FlakySink(tmp_path / "m.db", 10_000, retryable=False)
    spool = Spool(tmp_path / "spool")
    r = Recorder(sink, spool=spool, batch_size=50, flush_interval=0.01, max_retries=0, backoff_max=0.05)
    events = [_ev(i) for i in range(120)]
    for e in events:
        r.submit(e)
    assert r.flush(5)
    assert r.stats()["spooled"] == 120
    assert spool.pending_files() >= 1
    sink.failures = 0  # the sink is back
    deadline = time.monotonic() + 10
    # a file being replayed is claimed (renamed), so "no pending file" comes before "replayed": wait for both
    while (spool.pending_files() or r.stats()["replayed"] < 120) and time.monotonic() < deadline:
        r._wakeup.set()
        time.sleep(0.05)
    assert spool.pending_files() == 0
    assert r.stats()["replayed"] == 120
    stored = _stored_ids(tmp_path / "m.db")
    assert sorted(stored) == sorted(e.id for e in events)
    r.shutdown()


def test_full_spool_counts_losses(tmp_path: Path) -> None:
    sink = FlakySink(tmp_path / "m.db", 10_000, retryable=False)
    r = Recorder(sink, spool=Spool(tmp_path / "spool", max_bytes=100), flush_interval=0.01, max_retries=0)
    for i in range(3):
        r.submit(_ev(i))
    assert r.flush(5) is False  # done in time, but the events were lost: flush says so
    assert r.stats()["dropped_sink_failure"] == 3
    r.shutdown(1)


@pytest.mark.allow_internal_errors
def test_a_crashing_sink_loses_nothing(tmp_path: Path) -> None:
    sink = FlakySink(tmp_path / "m.db", 1, exc=RuntimeError("bug in sink"))
    spool = Spool(tmp_path / "spool")
    r = Recorder(sink, spool=spool, flush_interval=0.01, backoff_max=0.05)
    e = _ev()
    r.submit(e)
    assert r.flush(5)
    assert r.stats()["spooled"] == 1
    deadline = time.monotonic() + 5
    # a claimed spool file is renamed (no longer "pending") before its replay is written: wait for the write
    while r.stats()["replayed"] < 1 and time.monotonic() < deadline:
        r._wakeup.set()
        time.sleep(0.05)
    assert _stored_ids(tmp_path / "m.db") == [e.id]
    assert spool.pending_files() == 0
    r.shutdown()


def test_flush_respects_its_deadline(tmp_path: Path) -> None:
    sink = FlakySink(tmp_path / "m.db", 0)
    sink.block.clear()
    r = Recorder(sink, flush_interval=0.01)
    r.submit(_ev())
    t = time.monotonic()
    assert r.flush(0.2) is False
    assert time.monotonic() - t < 1.0
    sink.block.set()
    assert r.flush(5)
    r.shutdown()


def _run(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "METERLINE_HOME": str(tmp_path / "home")}
    env.pop("PYTEST_CURRENT_TEST", None)
    env.pop("METERLINE_RAISE_INTERNAL", None)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=60
    )


def test_exit_flushes_without_an_explicit_flush(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    proc = _run(
        f"""
        import meterline
        meterline.init("sqlite:///{db}", flush_interval=30)
        for i in range(2000):
            meterline.record(provider="openai", model="gpt-4o-mini", input_tokens=i)
    """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(_stored_ids(db)) == 2000


def test_forked_child_records_its_own_events_only(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    proc = _run(
        f"""
        import os, meterline
        meterline.init("sqlite:///{db}", flush_interval=30)
        for i in range(10):
            meterline.record(provider="openai", model="gpt-4o-mini", attributes={{"who": "parent"}})
        pid = os.fork()
        if pid == 0:
            for i in range(5):
                meterline.record(provider="openai", model="gpt-4o-mini", attributes={{"who": "child"}})
            ok = meterline.flush(10)
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert meterline.flush(10)
    """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    store = SQLiteStore(db)
    who = [e.attributes["who"] for e in store.iter_events()]
    store.close()
    assert who.count("parent") == 10 and who.count("child") == 5


# -- deferred events: built on the recorder's thread (issue 18) -------------------------------------
class _Later:
    """A Deferred that records the thread it was built on; ``fail`` raises, ``none`` builds no event."""

    def __init__(self, i: int, *, fail: bool = False, none: bool = False) -> None:
        self.i, self.fail, self.none = i, fail, none
        self.built_on: str | None = None

    def build(self) -> UsageEvent | None:
        self.built_on = threading.current_thread().name
        if self.fail:
            raise RuntimeError("a bug while building")
        return None if self.none else _ev(self.i)


def _stored_tokens(path: Path) -> list[int]:
    store = SQLiteStore(path)
    try:
        return [e.input_tokens for e in store.iter_events()]
    finally:
        store.close()


def _deferred(item: _Later) -> Any:
    from meterline.sdk.recorder import Deferred

    class D(Deferred):
        __slots__ = ()

        def build(self) -> UsageEvent | None:
            return item.build()

    return D()


@pytest.mark.allow_internal_errors
def test_deferred_events_are_built_on_the_worker_and_a_failing_build_is_a_counted_loss(tmp_path: Path) -> None:
    r = Recorder(SQLiteSink(tmp_path / "m.db"), flush_interval=0.01)
    good, none, bad = _Later(7), _Later(8, none=True), _Later(9, fail=True)
    for item in (good, none, bad):
        assert r.submit(_deferred(item))
    assert r.flush(5) is False  # done, but one event was lost: flush says so
    s = r.stats()
    assert (s["written"], s["dropped_internal_error"]) == (1, 1), s
    assert {good.built_on, none.built_on, bad.built_on} == {"meterline-recorder"}
    assert _stored_tokens(tmp_path / "m.db") == [7]
    r.submit(_deferred(_Later(10)))  # the worker goes on
    assert r.flush(5) is True
    assert r.stats()["written"] == 2
    r.shutdown()


def test_durable_mode_builds_a_deferred_event_before_submit_returns(tmp_path: Path) -> None:
    r = Recorder(SQLiteSink(tmp_path / "m.db"), durable_dir=tmp_path / "log", flush_interval=0.01)
    item = _Later(3)
    assert r.submit(_deferred(item))
    assert item.built_on == threading.current_thread().name  # the log holds the event, not a promise of one
    assert r.submit(_deferred(_Later(4, none=True)))  # no event: nothing logged
    assert r.shutdown(5)
    assert _stored_tokens(tmp_path / "m.db") == [3]
