"""Durable mode (``init(durability="disk")``): every recorded event is in an append-only local log before
it is delivered, so a process killed with SIGKILL (or ending with ``os._exit``) loses no event whose
``record()`` returned, and a machine crash loses at most the events of the last fsync interval.

- Write-through on the caller's thread: ``append`` prepares (redacts) and serialises the event and writes
  its line to the current segment with one ``write`` (to the OS page cache, which a process kill keeps)
  before it returns. (Until 2026-12-05 the caller only appended to a list and a log-writer thread wrote
  twice per interval; under CPU load that thread ran late, and a SIGKILL lost events recorded up to
  120 ms before it, more than the promised interval.)
- A log-writer thread, twice per ``fsync_interval`` (``METERLINE_FSYNC_INTERVAL_MS``, default 50 ms), runs
  one ``fsync`` for everything written since its last turn (group commit; outside the lock the callers
  write under, so a slow disk never holds them), hands the events to the recorder's queue and rotates
  segments. A machine crash (power loss, kernel panic) loses what was not yet fsynced: the last interval,
  plus however late that thread runs.
- Segments (``seg-<time>-<pid>-<n>.log`` in ``<delivery dir>/<destination key>/durable``) rotate every ten
  seconds or 8 MB; a closed segment is deleted once the recorder has written (or spooled, or dead-lettered)
  every event in it. A segment whose writer process is dead is replayed by the next process that starts
  on the same destination (at ``init()``, and every few seconds after), with the same event ids, so a
  replay of events that were delivered before the kill never double-counts.
- Nothing reaches a segment before redaction: ``append`` (on the caller's thread) runs ``prepare`` (the
  recorder passes the content preparation of :mod:`meterline.sdk.content`: the user's hook, the redaction
  presets, credential headers masked, the size cap) on each event just before serialising it, and
  remembers its id so the recorder does not prepare it a second time (:meth:`DurableLog.prepared`). Events
  read back from a dead process's segment are prepared again by the recorder (redaction is idempotent; the
  log of a version before this rule may hold content that was never redacted).
"""

from __future__ import annotations

import collections
import itertools
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from meterline.core.event import EventValidationError, UsageEvent
from meterline.sdk.delivery.spool import pid_alive

logger = logging.getLogger("meterline")

_SUFFIX = ".log"
_CLAIM = ".claimed-"
DEFAULT_FSYNC_INTERVAL = 0.05

# (events committed, a segment closed by this commit or None)
Handoff = Callable[[list[UsageEvent], "Path | None"], None]


def fsync_interval_from_env(default: float = DEFAULT_FSYNC_INTERVAL) -> float:
    raw = os.environ.get("METERLINE_FSYNC_INTERVAL_MS")
    if not raw or not raw.strip():
        return default
    try:
        value = float(raw) / 1000
    except ValueError:
        raise ValueError(f"METERLINE_FSYNC_INTERVAL_MS={raw!r}: expected a number of milliseconds") from None
    if not 0 < value <= 60:
        raise ValueError(f"METERLINE_FSYNC_INTERVAL_MS={raw!r}: expected 1 to 60000 milliseconds")
    return value


class DurableLog:
    def __init__(
        self,
        directory: str | os.PathLike[str],
        handoff: Handoff,
        *,
        fsync_interval: float = DEFAULT_FSYNC_INTERVAL,
        segment_max_bytes: int = 8 * 1024 * 1024,
        segment_max_age: float = 10.0,
        prepare: Callable[[UsageEvent], None] | None = None,
    ) -> None:
        if fsync_interval <= 0:
            raise ValueError("fsync_interval must be > 0")
        self.directory = Path(directory)
        self.handoff = handoff
        self.fsync_interval = fsync_interval
        self.segment_max_bytes = segment_max_bytes
        self.segment_max_age = segment_max_age
        self.prepare = prepare  # redaction before any byte of an event is written (writer thread)
        self.errors = 0
        # called with (line, reason) for a complete line the validation refuses: the recorder dead-letters it
        self.on_invalid_line: Callable[[str, str], None] | None = None
        self._seq = itertools.count()
        self._init_runtime()

    def _init_runtime(self) -> None:
        self._buf: collections.deque[UsageEvent] = collections.deque()
        self._prepared: set[str] = set()  # ids of events ``prepare`` handled, until the recorder takes them
        self._commit_lock = threading.Lock()  # the current segment: writes, rotation, handoff
        self._fsync_lock = threading.Lock()  # held during an fsync: a segment is closed only outside one
        self._dirty = False  # written since the last fsync
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stop = False
        self._fd: int | None = None
        self._seg_path: Path | None = None
        self._seg_bytes = 0
        self._seg_opened = 0.0

    def after_fork_in_child(self) -> None:
        fd = self._fd
        self._init_runtime()
        if fd is not None:
            try:
                os.close(fd)  # the child's copy only; the parent keeps writing its own segment
            except OSError:
                pass

    def _error(self, what: str, exc: BaseException) -> None:
        self.errors += 1
        if self.errors <= 20:
            logger.error("meterline: durable log %s: %s: %s", self.directory, what, exc)

    # -- caller side ----------------------------------------------------------------------------
    def append(self, event: UsageEvent) -> None:
        """Write the event's line to the segment (write-through: in the OS page cache, which survives a
        SIGKILL, when this returns), then queue it for the writer thread's fsync and handoff."""
        line = self._line(event)
        if line is not None:
            data = line.encode("utf-8", errors="backslashreplace")
            with self._commit_lock:
                self._write(data)
                self._buf.append(event)  # taken by the next commit, under the same lock: in file order
        else:
            self._buf.append(event)  # not logged (counted): it still goes on to delivery
        if self._thread is None:
            self._start()

    def pending(self) -> int:
        return len(self._buf)

    def prepared(self, event: UsageEvent) -> bool:
        """Whether this log already ran ``prepare`` on ``event`` (asked once per event, by the recorder)."""
        try:
            self._prepared.remove(event.id)
        except KeyError:
            return False
        return True

    def _start(self) -> None:
        with self._commit_lock:
            if self._thread is not None or self._stop:
                return
            self._thread = threading.Thread(target=self._run, name="meterline-durable-log", daemon=True)
            self._thread.start()

    def sync(self) -> None:
        """Commit now (flush() and shutdown call it): everything appended so far is fsynced and handed over."""
        self._fsync()
        self._commit()

    def close(self) -> None:
        """Commit, close the current segment (handed over for deletion once delivered) and stop the writer."""
        self._stop = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)
        self._fsync()
        self._commit(rotate=True)

    # -- writer side ----------------------------------------------------------------------------
    def _run(self) -> None:
        # Commits start on a fixed cadence of half the interval (not "sleep, then commit", which drifts by
        # the commit's own duration), so a thread woken late by the scheduler or the GIL still commits
        # within the promised interval.
        period = self.fsync_interval / 2
        next_at = time.monotonic() + period
        while not self._stop:
            self._wake.wait(max(next_at - time.monotonic(), 0.0))
            self._wake.clear()
            next_at = max(next_at + period, time.monotonic())
            try:
                self._fsync()
                self._commit()
            except Exception as exc:  # noqa: BLE001 - the writer must survive anything
                self._error("commit failed", exc)

    def _commit(self, *, rotate: bool = False) -> None:
        """Hand the written events over to the recorder; rotate the segment when it is due."""
        # lock order everywhere: _fsync_lock, then _commit_lock (append takes only the latter)
        with self._fsync_lock:
            with self._commit_lock:
                buf = self._buf
                events = [buf.popleft() for _ in range(len(buf))]
                fd, path, dirty = self._fd, self._seg_path, self._dirty
                if fd is not None and (
                    rotate
                    or self._seg_bytes >= self.segment_max_bytes
                    or time.monotonic() - self._seg_opened >= self.segment_max_age
                ):
                    self._fd = self._seg_path = None  # the next append opens a new segment
                    self._dirty = False
                else:
                    if events:
                        self.handoff(events, None)
                    return
            if dirty:
                self._fsync_fd(fd)  # the closed segment's last lines, outside the callers' lock
            self._close_fd(fd)
            with self._commit_lock:  # in order with the handoffs of later commits
                self.handoff(events, path)

    def _fsync(self) -> None:
        """One fsync for every line written since the last one (group commit), outside the writers' lock."""
        with self._fsync_lock:
            with self._commit_lock:
                fd, dirty = self._fd, self._dirty
                self._dirty = False
            if fd is not None and dirty:
                self._fsync_fd(fd)  # the segment cannot be closed meanwhile: closing takes _fsync_lock

    def _fsync_fd(self, fd: int) -> None:
        try:
            os.fsync(fd)
        except OSError as exc:
            self._error("cannot fsync the log", exc)

    def _line(self, event: UsageEvent) -> str | None:
        try:
            if self.prepare is not None:
                self.prepare(event)  # never a byte of unredacted content in a segment
                self._prepared.add(event.id)
            return json.dumps(event.to_wire(compact=True), separators=(",", ":"), default=str) + "\n"
        except Exception as exc:  # noqa: BLE001 - one odd event must not stop the log
            self._error(f"event {getattr(event, 'id', '?')} not logged", exc)
            return None

    def _write(self, data: bytes) -> None:
        """Under ``_commit_lock``: one ``write`` of whole lines (O_APPEND) to the current segment."""
        try:
            fd = self._segment()
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            self._seg_bytes += len(data)
            self._dirty = True
        except OSError as exc:  # the events still go on to delivery: only the SIGKILL protection is lost
            self._error("cannot write the log", exc)

    def _segment(self) -> int:
        if self._fd is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            name = f"seg-{time.time_ns():020d}-{os.getpid()}-{next(self._seq):06d}{_SUFFIX}"
            path = self.directory / name
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._seg_path = path
            self._seg_bytes = 0
            self._seg_opened = time.monotonic()
            _fsync_dir(self.directory)  # the new file's name survives a machine crash too
        return self._fd

    def _close_fd(self, fd: int) -> None:
        try:
            os.close(fd)
        except OSError as exc:
            self._error("cannot close a segment", exc)

    # -- after delivery, and at the next start ----------------------------------------------------
    def delivered(self, segment: Path, complete: bool) -> None:
        """Every event of ``segment`` was written, spooled or dead-lettered: delete it. When some were lost
        (no spool), keep it for the next start to replay."""
        if not complete:
            _unclaim(segment)
            return
        try:
            segment.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            self._error(f"cannot delete {segment.name}", exc)

    def recover(self) -> list[tuple[Path, list[UsageEvent]]]:
        """Claim the segments of dead processes (and claims of dead replayers) with their events."""
        try:
            entries = sorted(self.directory.iterdir())
        except FileNotFoundError:
            return []
        except OSError as exc:
            self._error("cannot list", exc)
            return []
        out: list[tuple[Path, list[UsageEvent]]] = []
        me = os.getpid()
        for path in entries:
            name = path.name
            if _CLAIM in name:
                owner = name.rpartition(_CLAIM)[2]
                if not owner.isdigit() or int(owner) == me or pid_alive(int(owner)):
                    continue
            elif not name.endswith(_SUFFIX):
                continue
            else:
                writer = name[: -len(_SUFFIX)].split("-")
                if len(writer) < 3 or not writer[2].isdigit() or int(writer[2]) == me or pid_alive(int(writer[2])):
                    continue
            base = name.rpartition(_CLAIM)[0] if _CLAIM in name else name
            claimed = path.with_name(f"{base}{_CLAIM}{me}")
            try:
                os.replace(path, claimed)
                data = claimed.read_bytes()
            except OSError:
                continue  # another process took it
            out.append((claimed, self._parse(claimed, data)))
        return out

    def _parse(self, path: Path, data: bytes) -> list[UsageEvent]:
        events: list[UsageEvent] = []
        for n, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except (ValueError, RecursionError) as exc:  # a line torn by the kill (the last one), a damaged disk
                self._error(f"{path.name} line {n} skipped", exc)
                continue
            try:
                events.append(UsageEvent.from_wire(doc))
            except (ValueError, TypeError, EventValidationError) as exc:
                self._error(f"{path.name} line {n} set aside", exc)
                if self.on_invalid_line is not None:
                    self.on_invalid_line(line, f"durable log line no longer valid: {exc}")
        return events


def _unclaim(segment: Path) -> None:
    if _CLAIM in segment.name:
        try:
            os.replace(segment, segment.with_name(segment.name.rpartition(_CLAIM)[0]))
        except OSError:
            pass


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
