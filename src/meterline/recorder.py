"""The recorder: the caller hands over an event in ~1 µs; a daemon thread prices, batches and writes.

Shape (after sentry-python's worker and OpenTelemetry's BatchSpanProcessor):
- ``submit`` never blocks and never raises: a bounded deque; when full it returns False and counts
  the drop (``stats()["dropped_queue_full"]``).
- one daemon thread wakes every ``flush_interval`` seconds, or as soon as a batch is full or a flush is
  asked for, prices the events (off the caller's thread), applies the environment fallbacks and writes
  batches of ``batch_size``.
- a failed write is retried with clamped exponential backoff (a sink's Retry-After is a minimum, capped
  at ``backoff_max``); after ``max_retries`` the batch goes to the disk spool and is replayed, with the
  same ids, once the sink takes writes again.
- ``flush(timeout)`` waits until everything submitted before it is written or spooled; ``shutdown``
  flushes with a deadline and stops the thread; an ``atexit`` hook does the same at interpreter exit.
- after ``os.fork()`` the child starts with an empty queue and a new thread (the parent still owns the
  events it had accepted, so nothing is sent twice).
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from meterline import _errors
from meterline import content as _content
from meterline.event import UsageEvent
from meterline.fields import environment_fallbacks
from meterline.pricing import Pricer, get_pricer
from meterline.sinks.base import Sink, SinkError
from meterline.spool import Spool

logger = logging.getLogger("meterline")

COUNTERS = (
    "submitted",  # accepted by submit() (computed: taken by the worker + still queued)
    "written",  # stored by the sink (including replays)
    "rejected",  # refused by the sink as invalid (logged with the reason)
    "dropped_queue_full",
    "dropped_oversize",
    "dropped_sink_failure",  # could not be written nor spooled
    "spooled",
    "replayed",
    "retries",
    "unpriced",
)


class Recorder:
    def __init__(
        self,
        sink: Sink,
        *,
        pricer: Pricer | None = None,
        spool: Spool | None = None,
        queue_size: int = 100_000,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        max_retries: int = 4,
        backoff_base: float = 0.25,
        backoff_max: float = 30.0,
        max_event_bytes: int = 1_000_000,
        exit_timeout: float = 5.0,
        before_write: Callable[[UsageEvent], UsageEvent | None] | None = None,
    ) -> None:
        if queue_size < 1 or batch_size < 1 or flush_interval <= 0:
            raise ValueError("queue_size and batch_size must be >= 1 and flush_interval > 0")
        self.sink = sink
        self.pricer = pricer or get_pricer()
        self.spool = spool
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_event_bytes = max_event_bytes
        self.exit_timeout = exit_timeout
        self.before_write = before_write
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._closed = False
        self._init_runtime()
        self._atexit = _register_exit(self)
        _live.add(self)

    # -- runtime state, rebuilt after fork -------------------------------------------------------
    def _init_runtime(self) -> None:
        # events, and _FlushMarker objects that flush() appends: a marker is reached only after everything
        # submitted before it has been written or spooled, with no shared counter to race on
        self._queue: collections.deque[UsageEvent | _FlushMarker] = collections.deque()
        self._lock = threading.Lock()
        self._wakeup = threading.Event()
        self._stop = False
        self._busy = False  # the worker holds a batch it has not finished with
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._taken = 0  # events the worker took off the queue (submitted = taken + queued)
        self._deadline: float | None = None  # set by shutdown: retries must not outlive it
        self._sink_down_until = 0.0

    def _after_fork_in_child(self) -> None:
        self._init_runtime()
        self._counts = dict.fromkeys(COUNTERS, 0)

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            if self._closed:
                return
            self._thread = threading.Thread(target=self._run, name="meterline-recorder", daemon=True)
            self._thread.start()

    # -- caller side ----------------------------------------------------------------------------
    def submit(self, event: UsageEvent) -> bool:
        """Queue an event for writing. Never blocks; False (and counted) when the queue is full."""
        if self._closed:
            self._counts["dropped_sink_failure"] += 1
            return False
        if self._pid != os.getpid():
            self._after_fork_in_child()
        q = self._queue
        if len(q) >= self.queue_size:
            with self._lock:  # rare path; the count must be exact across threads
                self._counts["dropped_queue_full"] += 1
            return False
        q.append(event)
        if self._thread is None:
            self._ensure_thread()
        elif len(q) >= self.batch_size:
            self._wakeup.set()
        return True

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Wait until every event submitted so far is written (or spooled). True when done in time."""
        if self._pid != os.getpid():
            self._after_fork_in_child()
        if not self._queue and not self._busy:
            return True
        marker = _FlushMarker()
        self._queue.append(marker)  # markers bypass the size bound: they carry no data
        self._ensure_thread()
        self._wakeup.set()
        return marker.done.wait(timeout)

    def shutdown(self, timeout: float | None = 5.0) -> bool:
        """Flush within ``timeout``, stop the thread and close the sink. Events still queued after the
        deadline are spooled when a spool is configured, else counted as lost. Idempotent."""
        if self._closed:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        self._deadline = deadline
        ok = self.flush(timeout)
        self._closed = True
        self._stop = True
        self._wakeup.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            thread.join(remaining)
        if not ok:
            self._abandon_queue()
        try:
            self.sink.close()
        except Exception as exc:  # noqa: BLE001 - meterline must never raise into the caller or kill its worker
            _errors.report("sink.close", exc, reraise=False)
        _unregister_exit(self._atexit)
        _live.discard(self)
        return ok

    def _abandon_queue(self) -> None:
        leftover: list[UsageEvent] = []
        while True:
            try:
                item = self._queue.popleft()
            except IndexError:
                break
            if isinstance(item, _FlushMarker):
                item.done.set()
            else:
                leftover.append(item)
        if leftover:
            self._prepare(leftover)
            self._spool_or_drop(leftover)

    def stats(self) -> dict[str, int]:
        out = dict(self._counts)
        queued = sum(1 for item in list(self._queue) if not isinstance(item, _FlushMarker))
        out["submitted"] = self._taken + queued
        out["queued"] = queued
        out["spool_files"] = self.spool.pending_files() if self.spool else 0
        return out

    # -- worker side ----------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wakeup.wait(self.flush_interval)
            self._wakeup.clear()
            try:
                self._drain()
                if self.spool is not None and time.monotonic() >= self._sink_down_until:
                    self._replay_one()
            except Exception as exc:  # noqa: BLE001 - meterline must never raise into the caller or kill its worker
                _errors.report("recorder worker", exc, reraise=False)
            if self._stop and not self._queue:
                return

    def _take(self) -> tuple[list[UsageEvent], _FlushMarker | None]:
        """Up to batch_size events, stopping early at a flush marker (returned to be set after the write)."""
        batch: list[UsageEvent] = []
        q = self._queue
        try:
            while len(batch) < self.batch_size:
                item = q.popleft()
                if isinstance(item, _FlushMarker):
                    return batch, item
                batch.append(item)
        except IndexError:
            pass
        return batch, None

    def _drain(self) -> None:
        while True:
            self._busy = True
            try:
                taken, marker = self._take()
                if not taken and marker is None:
                    return
                self._taken += len(taken)
                try:
                    batch = self._prepare(taken)
                    if batch:
                        self._write_with_retry(batch)
                finally:
                    if marker is not None:
                        marker.done.set()
            finally:
                self._busy = False

    def _prepare(self, batch: list[UsageEvent]) -> list[UsageEvent]:
        """Price, apply environment fallbacks and the user's hook; drop oversize events (counted)."""
        fallbacks = environment_fallbacks()
        out: list[UsageEvent] = []
        for event in batch:
            try:
                for field, value in fallbacks.items():
                    if getattr(event, field) is None:
                        setattr(event, field, value)
                event.finalize_totals()
                self.pricer.price(event)
                if event.pricing_source == "unpriced":
                    self._counts["unpriced"] += 1
                _content.prepare(event)  # redaction: here, never on the caller's thread
                if self.before_write is not None:
                    hooked = self.before_write(event)
                    if hooked is None:
                        continue
                    event = hooked
                if self.max_event_bytes and _large(event) and _wire_size(event) > self.max_event_bytes:
                    self._counts["dropped_oversize"] += 1
                    logger.warning(
                        "meterline: event %s dropped: larger than %d bytes (captured content?)",
                        event.id,
                        self.max_event_bytes,
                    )
                    continue
            except Exception as exc:  # noqa: BLE001 - meterline must never raise into the caller or kill its worker
                _errors.report("preparing event", exc, reraise=False)
            out.append(event)
        return out

    def _backoff(self, attempt: int, hint: float | None) -> float:
        delay: float = min(self.backoff_base * (2**attempt), self.backoff_max)
        delay *= 0.5 + random.random() / 2  # jitter: replicas must not retry in lockstep
        if hint is not None:
            delay = max(delay, min(hint, self.backoff_max))
        return delay

    def _write_with_retry(self, batch: Sequence[UsageEvent]) -> None:
        if time.monotonic() < self._sink_down_until and self.spool is not None:
            self._spool_or_drop(batch)  # the sink just failed hard: do not stall every batch on it
            return
        attempt = 0
        while True:
            try:
                rejected = self.sink.write(batch)
            except SinkError as exc:
                if exc.retryable and attempt < self.max_retries:
                    delay = self._backoff(attempt, exc.retry_after)
                    if self._deadline is not None and time.monotonic() + delay > self._deadline:
                        self._spool_or_drop(batch)
                        return
                    attempt += 1
                    self._counts["retries"] += 1
                    logger.warning("meterline: write to %s failed (%s); retry in %.2fs", _desc(self.sink), exc, delay)
                    time.sleep(delay)
                    continue
                logger.error("meterline: write to %s failed: %s", _desc(self.sink), exc)
                self._sink_down_until = time.monotonic() + self.backoff_max
                self._spool_or_drop(batch)
                return
            except Exception as exc:  # noqa: BLE001 - meterline must never raise into the caller or kill its worker
                _errors.report(f"sink {_desc(self.sink)}", exc, reraise=False)
                self._spool_or_drop(batch)
                return
            self._sink_down_until = 0.0
            self._counts["written"] += len(batch) - rejected
            self._counts["rejected"] += rejected
            return

    def _spool_or_drop(self, batch: Sequence[UsageEvent]) -> None:
        if self.spool is not None and self.spool.append(batch):
            self._counts["spooled"] += len(batch)
            return
        self._counts["dropped_sink_failure"] += len(batch)
        logger.error("meterline: %d events lost: the sink failed and the spool is full or off", len(batch))

    def _replay_one(self) -> None:
        """Replay one spool file per wake-up, so fresh events are never held up for long."""
        assert self.spool is not None
        item = self.spool.claim_one()
        if item is None:
            return
        path, events = item
        if not events:
            self.spool.done(path)
            return
        try:
            rejected = self.sink.write(events)
        except Exception as exc:  # noqa: BLE001 - meterline must never raise into the caller or kill its worker
            self.spool.release(path)
            self._sink_down_until = time.monotonic() + self.backoff_max
            if not isinstance(exc, SinkError):
                _errors.report("spool replay", exc, reraise=False)
            return
        self.spool.done(path)
        self._counts["replayed"] += len(events)
        self._counts["written"] += len(events) - rejected
        self._counts["rejected"] += rejected
        self._wakeup.set()  # more files may wait


class _FlushMarker:
    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


def _desc(sink: Sink) -> str:
    return getattr(sink, "description", type(sink).__name__)


def _large(event: UsageEvent) -> bool:
    return _content.has_content(event) or len(event.attributes) > 16


def _wire_size(event: UsageEvent) -> int:
    import json

    return len(json.dumps(event.to_wire(), default=str))


# -- process-wide hooks: atexit and fork -----------------------------------------------------------
_live: weakref.WeakSet[Recorder] = weakref.WeakSet()


def _register_exit(recorder: Recorder) -> Any:
    ref = weakref.ref(recorder)

    def _at_exit() -> None:
        r = ref()
        if r is not None:
            r.shutdown(r.exit_timeout)

    atexit.register(_at_exit)
    return _at_exit


def _unregister_exit(hook: Any) -> None:
    atexit.unregister(hook)


def _after_fork() -> None:
    for r in list(_live):
        r._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
