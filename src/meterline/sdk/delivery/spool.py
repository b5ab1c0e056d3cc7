"""Disk spool: batches that a sink could not take are kept as JSON-lines files and replayed later
with the same event ids (sinks are idempotent, so a replay never double-counts).

Files are written atomically (temp file + rename; the temp file is removed when the write fails, e.g. on a
full disk, and one left by a process that died mid-write is removed by the next replay pass). Several
processes may share one spool directory:
a replayer claims a file by renaming it, and claims left by a dead process are taken back.
The spool is bounded (``max_bytes``); a batch that does not fit is refused and counted by the caller.
Every error (a directory that cannot be made, a file that cannot be read, a corrupt line) is counted in
``errors`` and logged, never raised; an unreadable file is set aside (``*.bad``) so it never blocks newer ones.
The recorder keeps one spool per destination (see :func:`meterline.core.config.destination_key`).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Generator, Sequence
from pathlib import Path

from meterline.core.event import EventValidationError, UsageEvent

logger = logging.getLogger("meterline")

_SUFFIX = ".jsonl"
_CLAIM = ".claimed-"
_TMP = ".tmp"
_SPOOL_NAME = re.compile(r"\d{20}-\d+-\d{6}(?:-legacy)?\.jsonl")  # what append() names a file


class Spool:
    def __init__(self, directory: str | os.PathLike[str], *, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self.errors = 0
        # called with (line, reason) for a line that no longer reads as an event: the recorder dead-letters it
        self.on_invalid_line: Callable[[str, str], None] | None = None

    def _error(self, what: str, exc: BaseException) -> None:
        self.errors += 1
        if self.errors <= 20:  # a broken disk must not flood the logs
            logger.error("meterline: spool %s: %s: %s", self.directory, what, exc)

    def _files(self) -> list[Path]:
        try:
            return sorted(p for p in self.directory.iterdir() if p.name.endswith(_SUFFIX))
        except FileNotFoundError:
            return []
        except OSError as exc:  # not a directory, no permission
            self._error("cannot list", exc)
            return []

    def size_bytes(self) -> int:
        total = 0
        for p in self._files():
            try:
                total += p.stat().st_size
            except OSError:
                pass  # replayed meanwhile
        return total

    def pending_files(self) -> int:
        return len(self._files())

    def append(self, events: Sequence[UsageEvent]) -> bool:
        """Write one batch as a new file. False when the spool is full or the disk refuses."""
        lines = "".join(json.dumps(e.to_wire(), separators=(",", ":")) + "\n" for e in events)
        data = lines.encode()
        with self._lock:
            if self.size_bytes() + len(data) > self.max_bytes:
                return False
            name = f"{time.time_ns():020d}-{os.getpid()}-{next(self._seq):06d}{_SUFFIX}"
            tmp = self.directory / f".{name}{_TMP}"
            written = False
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                with open(tmp, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.directory / name)
                written = True
            except OSError as exc:
                # the caller counts the batch as lost (dropped_sink_failure), as it does for a full spool
                self._error("cannot write a spool file", exc)
                return False
            finally:
                if not written:  # a full disk (ENOSPC) fails the write after the file was made: remove it
                    _remove(tmp)
        return True

    def adopt(self, legacy: str | os.PathLike[str]) -> int:
        """Take in the spool files of the first release's layout, which had one spool for every destination:
        ``<legacy>/<time>-<pid>-<n>.jsonl`` (and such files claimed by a process that died). They are moved into
        this spool, oldest first by name as before, so the replay sends them with their ids and removes each
        once written. Returns how many were adopted; never raises.

        Decision: their destination was never recorded, so they are taken to be this destination's. The first
        release spooled for the destination it was configured with, and this is the spool that the same
        ``init()`` arguments (``spool_dir``, or none) lead to after the upgrade. Only names the spool itself
        writes are touched, never other files of a shared directory."""
        source = Path(legacy)
        try:
            if not source.is_dir() or source.resolve() == self.directory.resolve():
                return 0
            entries = sorted(source.iterdir())
        except OSError as exc:
            self._error(f"cannot list the first release's spool {source}", exc)
            return 0
        adopted = 0
        for path in entries:
            base, _, owner = path.name.partition(_CLAIM)
            if not _SPOOL_NAME.fullmatch(base) or (owner and (not owner.isdigit() or pid_alive(int(owner)))):
                continue  # not a spool file, or one that a running process of the old release is replaying
            target = self.directory / base
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                if target.exists():
                    target = self.directory / f"{base.removesuffix(_SUFFIX)}-legacy{_SUFFIX}"
                os.replace(path, target)
            except FileNotFoundError:
                continue  # another process adopted it first
            except OSError as exc:
                self._error(f"cannot adopt {path}", exc)
                continue
            adopted += 1
        if adopted:
            logger.info(
                "meterline: %d spool files of the first release (%s) adopted by %s: replayed, then removed",
                adopted,
                source,
                self.directory,
            )
            try:
                source.rmdir()  # the old default folder, once empty; a spool_dir that holds the new layout stays
            except OSError:
                pass
        return adopted

    def _reclaim_stale(self) -> None:
        try:
            entries = list(self.directory.iterdir())
        except OSError:
            return
        for p in entries:
            if p.name.endswith(_TMP):  # ``.<time>-<pid>-<n>.jsonl.tmp``: a write its dead process never finished
                writer = p.name.split("-")
                if len(writer) > 2 and writer[1].isdigit() and not pid_alive(int(writer[1])):
                    _remove(p)
                continue
            if _CLAIM not in p.name:
                continue
            base, _, pid = p.name.rpartition(_CLAIM)
            if pid.isdigit() and not pid_alive(int(pid)):
                try:
                    os.replace(p, self.directory / base)
                except OSError:
                    pass

    def claim_one(self) -> tuple[Path, list[UsageEvent]] | None:
        """The oldest spool file, claimed, with its events; None when the spool is empty."""
        claims = self.claim()
        try:
            return next(claims, None)
        finally:
            claims.close()

    def claim(self) -> Generator[tuple[Path, list[UsageEvent]], None, None]:
        """Yield (claimed file, its events), oldest first. Call :meth:`done` after a successful write,
        :meth:`release` to put the file back. Unreadable lines are logged and skipped."""
        self._reclaim_stale()
        for path in self._files():
            claimed = path.with_name(f"{path.name}{_CLAIM}{os.getpid()}")
            try:
                os.replace(path, claimed)
            except OSError:
                continue  # another process took it
            events: list[UsageEvent] = []
            try:
                text = claimed.read_bytes().decode("utf-8", errors="replace")
            except OSError as exc:
                self._error(f"cannot read {path.name} (set aside as .bad)", exc)
                self._set_aside(claimed, path)
                continue
            for n, line in enumerate(text.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    events.append(UsageEvent.from_wire(json.loads(line)))
                except (ValueError, TypeError, RecursionError, EventValidationError) as exc:
                    self._error(f"{path.name} line {n} set aside", exc)
                    if self.on_invalid_line is not None:
                        self.on_invalid_line(line, f"spool line no longer valid: {exc}")
            yield claimed, events

    def _set_aside(self, claimed: Path, path: Path) -> None:
        try:
            os.replace(claimed, path.with_name(path.name + ".bad"))
        except OSError:
            pass

    @staticmethod
    def done(claimed: Path) -> None:
        try:
            claimed.unlink()
        except FileNotFoundError:
            pass

    @staticmethod
    def release(claimed: Path) -> None:
        base = claimed.name.rpartition(_CLAIM)[0]
        try:
            os.replace(claimed, claimed.with_name(base))
        except OSError:
            pass


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (one that exists but is not ours counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
