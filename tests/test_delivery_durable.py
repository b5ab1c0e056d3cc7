"""Process death: the durable log (SIGKILL), fork and multiprocessing children, os._exit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import meterline
from collector_support import SRC
from meterline.core.config import destination_key
from meterline.sdk.delivery.durable import fsync_interval_from_env
from meterline.store import SQLiteStore
from meterline.store.backend import open_stores


def _env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": SRC, "METERLINE_HOME": str(tmp_path / "home")}
    env.pop("PYTEST_CURRENT_TEST", None)
    env.pop("METERLINE_RAISE_INTERNAL", None)
    return env


def _stored(db: Path) -> list[str]:
    if not db.exists():
        return []
    store = SQLiteStore(db)
    try:
        return [e.id for e in store.iter_events()]
    finally:
        store.close()


# The app records at a steady rate and logs (unbuffered, one write per event) when it recorded what.
# flush_interval=5 and batch_size=100_000: apart from each log segment rotated (every ten seconds), the recorder
# delivers nothing before the kill, so the events survives only through the durable log.
KILLED_APP = textwrap.dedent(
    """
    import os, sys, time
    import meterline

    dest, state, record_log, interval_ms = sys.argv[1:5]
    meterline.init(destination=dest, spool_dir=state, durability="disk", fsync_interval_ms=float(interval_ms),
                   flush_interval=5.0, batch_size=100_000)
    fd = os.open(record_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    print("READY", flush=True)
    i = 0
    while True:
        event_id = meterline.record(provider="openai", model="gpt-4o-mini", input_tokens=i, output_tokens=1)
        os.write(fd, f"{time.time():.6f} {event_id}\\n".encode())
        i += 1
        time.sleep(0.0005)  # about 1,500 events per second
    """
)

NEXT_START = textwrap.dedent(
    """
    import json, sys
    import meterline

    dest, state = sys.argv[1:3]
    r = meterline.init(destination=dest, spool_dir=state, durability="disk")
    meterline.shutdown(30)
    print(json.dumps(r.stats()))
    """
)


@pytest.mark.parametrize("interval_ms", [50, 100])
def test_sigkill_in_durable_mode_loses_at_most_one_fsync_interval(tmp_path: Path, interval_ms: int) -> None:
    db, state, record_log = tmp_path / "m.db", tmp_path / "state", tmp_path / "recorded.log"
    dest = f"sqlite:///{db}"
    app = subprocess.Popen(
        [sys.executable, "-c", KILLED_APP, dest, str(state), str(record_log), str(interval_ms)],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert app.stdout is not None and app.stdout.readline().strip() == "READY", app.stderr
        time.sleep(2.5)
        killed_at = time.time()
        os.kill(app.pid, signal.SIGKILL)
        app.wait(10)
    finally:
        if app.poll() is None:
            app.kill()
    delivered_before = len(_stored(db))  # a rotated log segment is delivered at once; the current one is not
    nxt = subprocess.run(
        [sys.executable, "-c", NEXT_START, dest, str(state)],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert nxt.returncode == 0, nxt.stderr[-3000:]
    stats = json.loads(nxt.stdout.strip().splitlines()[-1])
    recorded = [(float(t), i) for t, i in (line.split() for line in record_log.read_text().splitlines())]
    stored = set(_stored(db))
    lost = [(t, i) for t, i in recorded if i not in stored]
    window = interval_ms / 1000
    in_last_interval = sum(1 for t, _ in recorded if t > killed_at - window)
    assert len(recorded) > 500
    # the next start replayed the log, and it had to: far more was missing than one interval's worth
    assert len(recorded) - delivered_before > 5 * in_last_interval
    assert stats["recovered"] >= len(recorded) - delivered_before - len(lost), stats
    assert len(lost) <= in_last_interval, (len(lost), in_last_interval, killed_at - min(t for t, _ in lost))
    # the log is removed once delivered
    segments = list((state / destination_key(dest) / "durable").glob("seg-*"))
    assert segments == [], segments


def test_durable_mode_delivers_and_removes_its_log(tmp_path: Path) -> None:
    db, state = tmp_path / "m.db", tmp_path / "state"
    dest = f"sqlite:///{db}"
    meterline.init(dest, spool_dir=state, durability="disk", fsync_interval_ms=20)
    ids = [meterline.record(provider="openai", model="gpt-4o-mini", input_tokens=i) for i in range(300)]
    assert meterline.flush(10)
    assert sorted(_stored(db)) == sorted(ids)
    log_dir = state / destination_key(dest) / "durable"
    assert list(log_dir.glob("seg-*"))  # the current segment stays open until rotated or shut down
    assert meterline.shutdown(10)
    assert list(log_dir.glob("seg-*")) == []


def test_a_torn_last_line_is_skipped_and_counted(tmp_path: Path) -> None:
    db, state = tmp_path / "m.db", tmp_path / "state"
    dest = f"sqlite:///{db}"
    log_dir = state / destination_key(dest) / "durable"
    log_dir.mkdir(parents=True)
    good = {
        "id": "5b0f2a50-6a3c-4f59-9a49-1c0c1c3a6c01",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "start_time": "2026-11-02T10:00:00Z",
    }
    dead_pid = 2**22 + 17  # above the default pid_max: no such process
    (log_dir / f"seg-00000000000000000001-{dead_pid}-000000.log").write_text(json.dumps(good) + '\n{"id": "5b0f')
    r = meterline.init(dest, spool_dir=state, durability="disk")
    assert meterline.shutdown(10)
    assert _stored(db) == [good["id"]]
    assert r.stats()["recovered"] == 1 and r.stats()["durable_errors"] == 1
    assert list(log_dir.glob("seg-*")) == []


def test_fsync_interval_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METERLINE_FSYNC_INTERVAL_MS", "20")
    assert fsync_interval_from_env() == 0.02
    monkeypatch.setenv("METERLINE_FSYNC_INTERVAL_MS", "soon")
    with pytest.raises(ValueError, match="METERLINE_FSYNC_INTERVAL_MS='soon'"):
        fsync_interval_from_env()
    monkeypatch.delenv("METERLINE_FSYNC_INTERVAL_MS")
    assert fsync_interval_from_env() == 0.05
    with pytest.raises(ValueError, match="durability='tape'"):
        meterline.init("sqlite:///unused.db", durability="tape")


# -- fork and multiprocessing ----------------------------------------------------------------------
CHILDREN_APP = textwrap.dedent(
    """
    import json, multiprocessing as mp, os, sys
    import meterline

    def work(who, n):
        for _ in range(n):
            meterline.record(provider="openai", model="gpt-4o-mini", attributes={"who": who})

    def task(i):
        meterline.record(provider="openai", model="gpt-4o-mini", attributes={"who": "pool"})
        return i

    if __name__ == "__main__":
        meterline.init(sys.argv[1], flush_interval=30)  # nothing is flushed on a timer during the run
        work("parent", 50)
        assert meterline.flush(30)  # the parent holds an open connection when the children fork
        for _ in range(2):  # os.fork children that end normally
            pid = os.fork()
            if pid == 0:
                work("os.fork", 50)
                sys.exit(0)
            os.waitpid(pid, 0)
        for method in ("fork", "spawn"):
            ctx = mp.get_context(method)
            procs = [ctx.Process(target=work, args=(method, 50)) for _ in range(2)]
            for p in procs:
                p.start()
            for p in procs:
                p.join()
                assert p.exitcode == 0
        pool = mp.get_context("fork").Pool(4)
        assert sorted(pool.map(task, range(100), chunksize=5)) == list(range(100))
        pool.close()
        pool.join()
        work("parent", 50)  # the parent's connection still works after its children came and went
        assert meterline.flush(30)
        print(json.dumps(meterline.stats()))
    """
)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_400_of_400_from_fork_and_multiprocessing_children(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    dest = f"sqlite:///{tmp_path / 'm.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    script = tmp_path / "app.py"
    script.write_text(CHILDREN_APP)
    proc = subprocess.run(
        [sys.executable, str(script), dest],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    store, reader = open_stores(dest, pool_size=1)
    if reader is not store:
        reader.close()
    try:
        who = [e.attributes["who"] for e in store.iter_events()]
    finally:
        store.close()
    counts = {w: who.count(w) for w in set(who)}
    assert counts == {"parent": 100, "os.fork": 100, "fork": 100, "spawn": 100, "pool": 100}, counts
    stats = json.loads(proc.stdout.strip().splitlines()[-1])
    # no child touched the parent's connection: its writes never failed
    assert stats["retries"] == 0 and stats["internal_errors"] == 0 and stats["written"] == 100, stats


OS_EXIT_APP = textwrap.dedent(
    """
    import os, sys, time
    import meterline

    meterline.init(sys.argv[1], durability=sys.argv[2], fsync_interval_ms=20, flush_interval=30)
    pid = os.fork()
    if pid == 0:
        for _ in range(50):
            meterline.record(provider="openai", model="gpt-4o-mini", attributes={"who": "child"})
        time.sleep(0.2)  # several fsync intervals
        os._exit(0)  # no atexit, no finalizer: only the durable log has the events
    os.waitpid(pid, 0)
    """
)


@pytest.mark.parametrize(("durability", "expected"), [("memory", 0), ("disk", 50)])
def test_os_exit_loses_the_unflushed_events_unless_durable(tmp_path: Path, durability: str, expected: int) -> None:
    db = tmp_path / "m.db"
    proc = subprocess.run(
        [sys.executable, "-c", OS_EXIT_APP, f"sqlite:///{db}", durability],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # with "disk", the parent's exit replays the log the dead child left
    assert len(_stored(db)) == expected
