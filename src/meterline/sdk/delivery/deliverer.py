"""Writing one batch to a sink: retries, per-event isolation and dead letters (the recorder's worker side).

- A transient failure (network, 5xx other than 500, 408/429, a locked database) is retried with clamped,
  jittered exponential backoff; after ``max_retries`` (or past the exit deadline) the batch is handed back
  to be spooled, and the destination is marked down for a short, growing probe delay (capped at 2 s, so a
  restarted collector is found again within about two seconds).
- A failure the sink blames on the data (``SinkError.data_fault``: an unstorable value, a 400/422 answer)
  never blocks the rest: the batch is split in halves, recursively, until the culprit events are alone;
  each culprit goes to the dead-letter file with its reason, every other event is written. An unclear
  failure (an HTTP 5xx) is retried first, then split the same way, but an event is blamed only if the
  destination accepted another part of the split; otherwise the destination is the problem and the batch
  is spooled. (The spool replay adds a second witness: a file that failed while later files went through
  is blamed on its second such failure, see ``blame``.)
- Events a sink rejects inside a successful write (a collector's 207 ``rejected`` list) are dead-lettered too.
"""

from __future__ import annotations

import collections
import logging
import random
import time
from collections.abc import Sequence
from typing import Any

from meterline.core import errors as _errors
from meterline.core.event import UsageEvent
from meterline.sdk import content as _content
from meterline.sdk.delivery.deadletter import DeadLetters
from meterline.sdk.sinks.base import Sink, SinkError

logger = logging.getLogger("meterline")

PROBE_MAX = 2.0  # longest wait between two attempts on a destination that is down


class Deliverer:
    def __init__(
        self,
        sink: Sink,
        counts: dict[str, int],
        *,
        dead_letters: DeadLetters | None = None,
        max_retries: int = 4,
        backoff_base: float = 0.25,
        backoff_max: float = 30.0,
    ) -> None:
        self.sink = sink
        self.counts = counts
        self.dead_letters = dead_letters
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.deadline: float | None = None  # set at shutdown: no retry may outlive it
        self.down_until = 0.0
        self._down_streak = 0
        self.ok_writes = 0  # successful writes so far: a witness that the destination works
        self.destination_failed = False  # the last deliver() handed events back because the destination failed

    # -- destination state ---------------------------------------------------------------------
    def is_down(self) -> bool:
        return time.monotonic() < self.down_until

    def _mark_down(self) -> None:
        delay = min(self.backoff_base * (2**self._down_streak), PROBE_MAX, self.backoff_max)
        self._down_streak = min(self._down_streak + 1, 30)
        self.down_until = time.monotonic() + delay * (0.5 + random.random() / 2)

    def _past_deadline(self, extra: float = 0.0) -> bool:
        return self.deadline is not None and time.monotonic() + extra > self.deadline

    def backoff(self, attempt: int, hint: float | None) -> float:
        delay: float = min(self.backoff_base * (2**attempt), self.backoff_max)
        delay *= 0.5 + random.random() / 2  # jitter: replicas must not retry in lockstep
        if hint is not None:
            delay = max(delay, min(hint, self.backoff_max))
        return delay

    # -- writing -------------------------------------------------------------------------------
    def deliver(self, batch: Sequence[UsageEvent], *, retries: bool = True, blame: bool = False) -> list[UsageEvent]:
        """Write ``batch``; return the events that could not be delivered because the destination failed
        (the caller spools them). Culprit events are dead-lettered, not returned. ``blame``: an unclear
        failure of a lone event is the event's fault (the caller has another witness)."""
        self.destination_failed = False
        if not batch:
            return []
        attempt = 0
        while True:
            try:
                rejected = self.sink.write(batch)
            except SinkError as exc:
                if exc.data_fault is True:
                    return self._isolate(batch, exc, blame)
                if exc.retryable and retries and attempt < self.max_retries:
                    delay = self.backoff(attempt, exc.retry_after)
                    if not self._past_deadline(delay):
                        attempt += 1
                        self.counts["retries"] += 1
                        logger.warning(
                            "meterline: write to %s failed (%s); retry in %.2fs", _desc(self.sink), exc, delay
                        )
                        time.sleep(delay)
                        continue
                if exc.data_fault is None:  # retried in vain: is it one event, or the destination?
                    return self._isolate(batch, exc, blame)
                logger.error("meterline: write to %s failed: %s", _desc(self.sink), exc)
                self._mark_down()
                self.destination_failed = True
                return list(batch)
            except Exception as exc:  # noqa: BLE001 - a sink bug must not lose the batch nor kill the worker
                _errors.report(f"sink {_desc(self.sink)}", exc, reraise=False)
                self._mark_down()
                self.destination_failed = True
                return list(batch)
            self._delivered(batch, rejected)
            return []

    def _delivered(self, batch: Sequence[UsageEvent], rejected: int) -> None:
        self.down_until = 0.0
        self._down_streak = 0
        self.ok_writes += 1
        self.counts["written"] += len(batch) - rejected
        self.counts["rejected"] += rejected
        if rejected:
            details: list[Any] = list(getattr(self.sink, "last_rejections", None) or [])
            by_id = {e.id: e for e in batch}
            for r in details:
                event = by_id.get(str(r.get("id")))
                if event is None and isinstance(r.get("index"), int) and 0 <= r["index"] < len(batch):
                    event = batch[r["index"]]
                if event is not None:
                    self.dead_letter(event, f"rejected by {_desc(self.sink)}: {r.get('field')}: {r.get('reason')}")

    def dead_letter(self, event: UsageEvent, reason: str) -> None:
        if self.dead_letters is not None and self.dead_letters.add(event, reason):
            self.counts["dead_lettered"] += 1
            return
        self.counts["dropped_sink_failure"] += 1
        logger.error("meterline: event %s lost: %s (no dead-letter file)", event.id, reason)

    def dead_letter_raw(self, line: str, reason: str) -> None:
        line = _content.redact_line(line)  # an old version's durable log may hold content not yet redacted
        if self.dead_letters is not None and self.dead_letters.add_raw(line, reason):
            self.counts["dead_lettered"] += 1
            return
        self.counts["dropped_sink_failure"] += 1

    def _keep_for_later(
        self,
        part: Sequence[UsageEvent],
        work: collections.deque[Sequence[UsageEvent]],
        leftover: list[UsageEvent],
    ) -> None:
        """The destination failed while a batch was being split: this part and every part still to try are
        kept (spooled by the caller) and the destination is marked down."""
        leftover.extend(part)
        for rest in work:
            leftover.extend(rest)
        work.clear()
        self._mark_down()
        self.destination_failed = True

    def _isolate(self, batch: Sequence[UsageEvent], first: SinkError, blame: bool) -> list[UsageEvent]:
        """Split a batch the sink refused until each culprit is alone; write the rest."""
        ok_before = self.ok_writes
        singles: list[tuple[UsageEvent, SinkError]] = []
        work: collections.deque[Sequence[UsageEvent]] = collections.deque()
        if len(batch) == 1:
            singles.append((batch[0], first))
        else:
            work.extend(_halves(batch))
        leftover: list[UsageEvent] = []
        while work:
            part = work.popleft()
            if self._past_deadline():
                leftover.extend(part)
                continue
            try:
                rejected = self.sink.write(part)
            except SinkError as exc:
                if exc.data_fault is False:  # the destination itself failed meanwhile: keep the rest for later
                    self._keep_for_later(part, work, leftover)
                    break
                if len(part) == 1:
                    singles.append((part[0], exc))
                else:
                    work.extend(_halves(part))
                continue
            except Exception as exc:  # noqa: BLE001 - a sink bug must not lose the batch nor kill the worker
                _errors.report(f"sink {_desc(self.sink)}", exc, reraise=False)
                self._keep_for_later(part, work, leftover)
                break
            self._delivered(part, rejected)
        # the destination took other parts of this very batch: the culprits are the data
        witnessed = self.ok_writes > ok_before or blame
        for event, error in singles:
            if error.data_fault is True or witnessed:
                self.dead_letter(event, str(error))
            else:
                leftover.append(event)
        if leftover and not witnessed:
            self._mark_down()
        return leftover


def _halves(batch: Sequence[UsageEvent]) -> tuple[Sequence[UsageEvent], Sequence[UsageEvent]]:
    half = len(batch) // 2
    return batch[:half], batch[half:]


def _desc(sink: Sink) -> str:
    return getattr(sink, "description", type(sink).__name__)
