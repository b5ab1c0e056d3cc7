"""Disk spool: batches that a sink could not take are kept as JSON-lines files and replayed later
with the same event ids (sinks are idempotent, so a replay never double-counts).

Files are written atomically (temp file + rename). Several processes may share one spool directory:
a replayer claims a file by renaming it, and claims left by a dead process are taken back.
The spool is bounded (``max_bytes``); a batch that does not fit is refused and counted by the caller.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import threading
import time
from collections.abc import Generator, Sequence
from pathlib import Path

from meterline.event import EventValidationError, UsageEvent

logger = logging.getLogger("meterline")

_SUFFIX = ".jsonl"
_CLAIM = ".claimed-"


class Spool:
    def __init__(self, directory: str | os.PathLike[str], *, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self._seq = itertools.count()
        self._lock = threading.Lock()

    def _files(self) -> list[Path]:
        try:
            return sorted(p for p in self.directory.iterdir() if p.name.endswith(_SUFFIX))
        except FileNotFoundError:
            return []

    def size_bytes(self) -> int:
        total = 0
        for p in self._files():
            try:
                total += p.stat().st_size
            except FileNotFoundError:
                pass
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
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                tmp = self.directory / f".{name}.tmp"
                with open(tmp, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.directory / name)
            except OSError as exc:
                logger.error("meterline: cannot write spool file in %s: %s", self.directory, exc)
                return False
        return True

    def _reclaim_stale(self) -> None:
        try:
            entries = list(self.directory.iterdir())
        except FileNotFoundError:
            return
        for p in entries:
            if _CLAIM not in p.name:
                continue
            base, _, pid = p.name.rpartition(_CLAIM)
            if pid.isdigit() and not _alive(int(pid)):
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
                text = claimed.read_text(encoding="utf-8")
            except OSError:
                continue
            for n, line in enumerate(text.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    events.append(UsageEvent.from_wire(json.loads(line)))
                except (ValueError, EventValidationError) as exc:
                    logger.error("meterline: spool file %s line %d skipped: %s", path.name, n, exc)
            yield claimed, events

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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
