"""Delivery hardening: spool files of the first release's layout are replayed after an upgrade, a full disk
leaves no temp file behind, and the durable log redacts before it writes (the user's hook runs once)."""

from __future__ import annotations

import builtins
import errno
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

import meterline
from meterline.core.config import destination_key
from meterline.core.event import UsageEvent
from meterline.sdk.delivery import spool as spool_module
from meterline.sdk.delivery.deadletter import DeadLetters
from meterline.sdk.delivery.spool import Spool
from meterline.store import SQLiteStore

DEAD_PID = 2**22 + 17  # above the default pid_max: no such process
SECRET = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789"


def _stored(db: Path) -> list[str]:
    if not db.exists():
        return []
    store = SQLiteStore(db)
    try:
        return sorted(e.id for e in store.iter_events())
    finally:
        store.close()


def _event(i: int) -> UsageEvent:
    return UsageEvent.from_wire(
        {"provider": "openai", "model": "gpt-4o-mini", "start_time": "2026-11-02T10:00:00Z", "input_tokens": i}
    )


def _legacy_file(directory: Path, name: str, events: list[UsageEvent]) -> Path:
    """A spool file as the first release wrote it (``<time>-<pid>-<n>.jsonl``, one wire event per line)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("".join(json.dumps(e.to_wire(), separators=(",", ":")) + "\n" for e in events))
    return path


def _legacy_spool(directory: Path) -> tuple[list[str], list[Path]]:
    """Two adoptable files (one claimed by a dead replayer), one claimed by a running process, one foreign."""
    old = [_event(i) for i in range(5)]
    now = time.time_ns() - 10**12
    _legacy_file(directory, f"{now:020d}-{DEAD_PID}-000000.jsonl", old[:3])
    _legacy_file(directory, f"{now + 1:020d}-{DEAD_PID}-000001.jsonl.claimed-{DEAD_PID}", old[3:])
    running = _legacy_file(directory, f"{now + 2:020d}-{DEAD_PID}-000002.jsonl.claimed-{os.getppid()}", [_event(9)])
    foreign = _legacy_file(directory, "notes.jsonl", [_event(10)])
    return sorted(e.id for e in old), [running, foreign]


@pytest.mark.parametrize("layout", ["default data dir", "spool_dir"])
def test_spool_files_of_the_first_release_are_replayed_with_their_ids_then_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str
) -> None:
    home, db = tmp_path / "home", tmp_path / "m.db"
    dest = f"sqlite:///{db}"
    monkeypatch.setenv("METERLINE_HOME", str(home))
    if layout == "spool_dir":  # the first release spooled directly in init(spool_dir=...)
        root: Path | None = tmp_path / "state"
        legacy = tmp_path / "state"
    else:  # ... else in <data dir>/spool
        root, legacy = None, home / "spool"
    ids, untouched = _legacy_spool(legacy)
    r = meterline.init(dest, spool_dir=root)
    assert meterline.shutdown(10)
    assert _stored(db) == ids  # replayed at init, with their own ids, without any new event
    assert r.stats()["replayed"] == 5 and r.stats()["spool_files"] == 0
    left = sorted(p for p in legacy.iterdir() if p.is_file())
    assert left == sorted(untouched)  # a running old process's claim and a foreign file stay where they are
    spool = (root or home / "delivery") / destination_key(dest) / "spool"
    assert list(spool.iterdir()) == []  # removed once written
    # a second start finds nothing more to adopt and writes nothing twice
    meterline.init(dest, spool_dir=root)
    assert meterline.shutdown(10)
    assert _stored(db) == ids


def test_a_legacy_spool_is_adopted_into_the_current_destination_even_while_it_is_down(tmp_path: Path) -> None:
    state = tmp_path / "state"
    ids, _ = _legacy_spool(state)
    dest = "http://127.0.0.1:9/"
    meterline.init(dest, spool_dir=state, max_retries=0)
    meterline.shutdown(0.2)
    spool = Spool(state / destination_key(dest) / "spool")
    claims = spool.claim()
    try:
        adopted = sorted(e.id for _, events in claims for e in events)
    finally:
        claims.close()
    assert adopted == ids  # kept for that destination's next replay, nothing lost


class _FullDisk:
    """A file opened for writing on a full disk: made, but every write fails with ENOSPC."""

    def __init__(self, f: Any) -> None:
        self.f = f

    def __enter__(self) -> _FullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.f.close()

    def write(self, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_spool_disk_leaves_no_temp_file_and_the_loss_is_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = builtins.open

    def full_disk_open(path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        f = real_open(path, mode, *args, **kwargs)
        return _FullDisk(f) if "w" in mode else f

    state = tmp_path / "state"
    dest = "http://127.0.0.1:9/"  # down: every batch goes to the spool
    monkeypatch.setattr(spool_module, "open", full_disk_open, raising=False)
    meterline.init(dest, spool_dir=state, max_retries=0)
    try:
        meterline.record(provider="openai", model="gpt-4o-mini", input_tokens=1)
        assert meterline.flush(10) is False  # flush says something was lost
        s = meterline.stats()
        assert (s["dropped_sink_failure"], s["spooled"], s["spool_errors"], s["spool_files"]) == (1, 0, 1, 0), s
        spool = state / destination_key(dest) / "spool"
        assert [p.name for p in spool.iterdir()] == []  # no empty .jsonl.tmp left behind
        monkeypatch.undo()  # room again: the next batch is spooled as usual
        meterline.record(provider="openai", model="gpt-4o-mini", input_tokens=2)
        assert meterline.flush(10)
        assert meterline.stats()["spooled"] == 1
    finally:
        meterline.shutdown(0.2)
    assert [p.suffix for p in spool.iterdir()] == [".jsonl"]


def test_a_temp_file_of_a_process_that_died_mid_write_is_removed(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    assert spool.append([_event(1)])
    dead = tmp_path / "spool" / f".{time.time_ns():020d}-{DEAD_PID}-000000.jsonl.tmp"
    mine = tmp_path / "spool" / f".{time.time_ns():020d}-{os.getpid()}-000001.jsonl.tmp"  # being written now
    dead.write_bytes(b"")
    mine.write_bytes(b"")
    claims = spool.claim()
    try:
        [(claimed, events)] = list(claims)
    finally:
        claims.close()
    spool.done(claimed)
    assert len(events) == 1
    assert not dead.exists() and mine.exists()


def test_the_durable_log_runs_the_redaction_hook_once_before_it_writes(tmp_path: Path) -> None:
    seen: list[Any] = []

    def hook(messages: Any, text: str | None) -> tuple[Any, str | None]:
        seen.append(messages)
        return [*messages, {"content": "noted by the hook"}], text

    db, state = tmp_path / "m.db", tmp_path / "state"
    dest = f"sqlite:///{db}"
    meterline.init(dest, spool_dir=state, durability="disk", capture_content=True, redact=hook)
    try:
        meterline.record(provider="openai", model="m", input_messages=[{"content": f"key {SECRET}"}], output_text="ok")
        assert meterline.flush(10)
        log = b"".join(p.read_bytes() for p in (state / destination_key(dest) / "durable").glob("seg-*"))
    finally:
        meterline.shutdown(10)
    assert b"[REDACTED:secret]" in log and SECRET.encode() not in log
    store = SQLiteStore(db)
    try:
        [e] = list(store.iter_events())
    finally:
        store.close()
    assert len(seen) == 1  # prepared by the log, not a second time by the recorder
    assert e.input_messages == [{"content": "key [REDACTED:secret]"}, {"content": "noted by the hook"}]


def test_a_log_line_of_an_older_version_is_dead_lettered_redacted(tmp_path: Path) -> None:
    db, state = tmp_path / "m.db", tmp_path / "state"
    dest = f"sqlite:///{db}"
    log_dir = state / destination_key(dest) / "durable"
    log_dir.mkdir(parents=True)
    # written unredacted by a version before the durable log redacted, and no longer a valid event
    line = json.dumps({"id": "x", "provider": "openai", "model": "m", "input_messages": [{"content": SECRET}]})
    (log_dir / f"seg-00000000000000000001-{DEAD_PID}-000000.log").write_text(line + "\n")
    meterline.init(dest, spool_dir=state, durability="disk")
    assert meterline.shutdown(10)
    [letter] = list(DeadLetters(state / destination_key(dest) / "deadletter.jsonl").read())
    assert "[REDACTED:secret]" in letter["raw"] and SECRET not in letter["raw"]
    assert SECRET.encode() not in b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
