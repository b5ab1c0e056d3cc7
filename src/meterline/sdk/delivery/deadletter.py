"""Dead letters: events a destination will never take (an unstorable value, a 400/422 for that event
alone), kept with the reason so nothing is silently lost and an operator can fix and re-send them.

One JSON-lines file per destination (``<delivery dir>/<destination key>/deadletter.jsonl``), each line
``{"time": ..., "destination": <label without credentials>, "reason": ..., "event": <wire event>}``.
Appends are line-sized writes under a lock, flushed and fsynced: a dead letter is the last copy.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from meterline.core.event import UsageEvent

logger = logging.getLogger("meterline")


class DeadLetters:
    def __init__(self, path: str | os.PathLike[str], *, destination: str = "") -> None:
        self.path = Path(path)
        self.destination = destination
        self.errors = 0  # dead letters that could not be written (counted by the recorder as lost)
        self._lock = threading.Lock()

    def add(self, event: UsageEvent, reason: str) -> bool:
        """Append one event with its reason. False (and counted in ``errors``) when the file refuses."""
        try:
            wire = event.to_wire()
        except Exception as exc:  # noqa: BLE001 - an event that cannot even be serialised is still reported
            wire = {"id": getattr(event, "id", None), "unserialisable": str(exc)}
        doc = {
            "time": datetime.now(timezone.utc).isoformat(),
            "destination": self.destination,
            "reason": reason[:2000],
            "event": wire,
        }
        return self._append(doc, f"event {getattr(event, 'id', '?')}", reason)

    def _append(self, doc: dict[str, Any], what: str, reason: str) -> bool:
        # ensure_ascii: a lone surrogate or a NUL byte becomes an escape, so the file stays valid UTF-8 JSON
        line = (json.dumps(doc, separators=(",", ":"), default=str, ensure_ascii=True) + "\n").encode()
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                try:
                    os.write(fd, line)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                self.errors += 1
                logger.error("meterline: cannot write dead letter to %s: %s", self.path, exc)
                return False
        logger.error("meterline: %s dead-lettered to %s: %s", what, self.path, reason)
        return True

    def add_raw(self, raw: str, reason: str) -> bool:
        """Keep a line that no longer reads as an event (a spool or log line the validation refuses)."""
        doc = {
            "time": datetime.now(timezone.utc).isoformat(),
            "destination": self.destination,
            "reason": reason[:2000],
            "raw": raw[:1_000_000],
        }
        return self._append(doc, "a line that is not a valid event", reason)

    def read(self) -> Iterator[dict[str, Any]]:
        """The dead letters, oldest first (for tools and tests)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        for line in text.splitlines():
            if line.strip():
                yield json.loads(line)
