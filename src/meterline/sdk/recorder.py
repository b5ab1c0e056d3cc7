"""The recorder: the caller hands over an event in ~1 µs; a daemon thread prices, batches and writes.

Shape (after sentry-python's worker and OpenTelemetry's BatchSpanProcessor):
- ``submit`` never blocks and never raises: a bounded deque; when full it returns False and counts
  the drop (``stats()["dropped_queue_full"]``). In durable mode (``durable=``) the event goes through the
  append-only local log first, written through on the caller's thread (see
  :mod:`meterline.sdk.delivery.durable`), its content redacted before it is written there.
- one daemon thread wakes every ``flush_interval`` seconds, or as soon as a batch is full or a flush is
  asked for, prices the events (off the caller's thread), applies the environment fallbacks and writes
  batches of ``batch_size`` (see :mod:`meterline.sdk.delivery.deliverer`: retries, splitting a refused batch to find the
  culprit, dead letters).
- a batch the destination cannot take while it is down goes to the disk spool (one per destination). The
  spool is replayed, with the same ids, at start and continuously at full speed while the destination is
  up, interleaved with fresh events; a destination that is down is probed again within ~2 s.
- ``flush(timeout)`` waits until everything submitted before it is written, spooled or dead-lettered, and
  is False when some of it was lost; ``shutdown`` flushes, then replays the spool, within one deadline and
  stops the thread. :mod:`meterline.sdk.lifecycle` runs it at interpreter exit and at the end of
  ``multiprocessing`` children, and resets the recorder in a forked child.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from meterline.core import errors as _errors
from meterline.core.event import UsageEvent
from meterline.core.metadata import environment_fallbacks
from meterline.pricing import Pricer, get_pricer
from meterline.sdk import content as _content
from meterline.sdk import lifecycle
from meterline.sdk.delivery.deadletter import DeadLetters
from meterline.sdk.delivery.deliverer import Deliverer
from meterline.sdk.delivery.durable import DurableLog
from meterline.sdk.delivery.spool import Spool
from meterline.sdk.sinks.base import Sink

logger = logging.getLogger("meterline")

COUNTERS = (
    "submitted",  # accepted by submit() (computed: taken by the worker + still queued)
    "written",  # stored by the sink (including replays)
    "rejected",  # refused by the sink as invalid (logged with the reason, dead-lettered)
    "dead_lettered",  # events the destination will never take, kept in the dead-letter file with the reason
    "dropped_queue_full",
    "dropped_oversize",
    "dropped_sink_failure",  # could not be written, spooled nor dead-lettered: lost
    "spooled",
    "replayed",
    "retries",
    "unpriced",
    "recovered",  # events read back from the durable log of a dead process
    "dropped_internal_error",  # a deferred event whose building failed on the worker (a meterline bug): lost
)
LOSS_COUNTERS = ("dropped_sink_failure", "dropped_internal_error")

DURABLE_RESCAN = 2.0  # seconds between two looks for durable logs left by dead processes
SHUTDOWN_GRACE = 0.25  # seconds shutdown waits past its deadline for the worker's current step to end


class Deferred:
    """An event whose building is left to the recorder's thread (see :func:`meterline.sdk.api.emit_later`):
    the caller's thread keeps only references and timings, and :meth:`build` makes the event (None: no
    event after all, such as a call a meterline gateway already metered). Queued like an event."""

    __slots__ = ()

    def build(self) -> UsageEvent | None:
        raise NotImplementedError


class Recorder:
    def __init__(
        self,
        sink: Sink,
        *,
        pricer: Pricer | None = None,
        spool: Spool | None = None,
        dead_letters: DeadLetters | None = None,
        durable_dir: str | os.PathLike[str] | None = None,
        fsync_interval: float = 0.05,
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
        self.max_event_bytes = max_event_bytes
        self.exit_timeout = exit_timeout
        self.before_write = before_write
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._delivery = Deliverer(
            sink,
            self._counts,
            dead_letters=dead_letters,
            max_retries=max_retries,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
        )
        self.durable = (
            DurableLog(durable_dir, self._from_log, fsync_interval=fsync_interval, prepare=_content.prepare)
            if durable_dir is not None
            else None
        )
        if spool is not None:
            spool.on_invalid_line = self._delivery.dead_letter_raw
        if self.durable is not None:
            self.durable.on_invalid_line = self._delivery.dead_letter_raw
        self._closed = False
        self._init_runtime()
        self._atexit = lifecycle.track(self)
        if self._has_backlog():  # replay at start: a spool or a dead process's log waits for this destination
            self._wakeup.set()
            self._ensure_thread()

    @property
    def dead_letters(self) -> DeadLetters | None:
        return self._delivery.dead_letters

    # -- runtime state, rebuilt after fork -------------------------------------------------------
    def _init_runtime(self) -> None:
        # events, and markers that flush() or the durable log append: a marker is reached only after
        # everything queued before it has been written, spooled or dead-lettered
        self._queue: collections.deque[UsageEvent | Deferred | _Marker] = collections.deque()
        self._lock = threading.Lock()
        self._wakeup = threading.Event()
        self._stop = False
        self._busy = False  # the worker holds a batch it has not finished with
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._taken = 0  # events the worker took off the queue (submitted = taken + queued)
        self._spool_maybe = True  # the spool may hold files (cleared by a replay pass that finds none)
        self._next_rescan = 0.0
        self._segment_losses = 0  # losses when the previous durable segment marker was reached
        self._strikes: dict[str, int] = {}  # spool file -> times it failed while later files went through

    def _after_fork_in_child(self) -> None:
        reset_sink = getattr(self.sink, "after_fork_in_child", None)
        if reset_sink is not None and self._pid != os.getpid():
            try:
                reset_sink()
            except Exception as exc:  # noqa: BLE001 - a fork must never fail because of meterline
                _errors.report("sink after fork", exc, reraise=False)
        self._init_runtime()
        self._counts.clear()
        self._counts.update(dict.fromkeys(COUNTERS, 0))
        if self.durable is not None:
            self.durable.after_fork_in_child()

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            if self._closed:
                return
            lifecycle.register_child_exit(self)
            self._thread = threading.Thread(target=self._run, name="meterline-recorder", daemon=True)
            self._thread.start()

    def _has_backlog(self) -> bool:
        try:
            if self.spool is not None and self.spool.pending_files():
                return True
            return self.durable is not None and self.durable.directory.is_dir()
        except OSError:
            return False

    # -- caller side ----------------------------------------------------------------------------
    def submit(self, event: UsageEvent | Deferred) -> bool:
        """Queue an event (or a :class:`Deferred` one) for writing. Never blocks; False (and counted) when
        the queue is full."""
        if self._closed:
            self._counts["dropped_sink_failure"] += 1
            return False
        if self._pid != os.getpid():
            self._after_fork_in_child()
        q = self._queue
        durable = self.durable
        if durable is not None:
            if len(q) + durable.pending() >= self.queue_size:
                with self._lock:
                    self._counts["dropped_queue_full"] += 1
                return False
            if isinstance(event, Deferred):  # the log must hold the event itself before the call returns
                built = event.build()
                if built is None:
                    return True
                event = built
            durable.append(event)  # written to the log now; the log's thread fsyncs and hands it on to the queue
            if self._thread is None:
                self._ensure_thread()
            return True
        if len(q) >= self.queue_size:
            with self._lock:  # rare path; the count must be exact across threads
                self._counts["dropped_queue_full"] += 1
            return False
        q.append(event)
        if self._thread is None:
            self._ensure_thread()
        elif len(q) >= self.batch_size and not self._wakeup.is_set():
            # once per batch: while the worker writes, the queue stays above batch_size, and Event.set()
            # takes the Condition's lock on every call (~1 µs, and a GIL hand-off to a waiting worker)
            self._wakeup.set()
        return True

    def _from_log(self, events: list[UsageEvent], closed: Path | None) -> None:
        """The durable log committed ``events`` (and maybe closed a segment): queue them for delivery."""
        self._queue.extend(events)
        if closed is not None:
            self._queue.append(_SegmentMarker(closed))
        if len(self._queue) >= self.batch_size or closed is not None:
            self._wakeup.set()

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Wait until every event submitted so far is written, spooled or dead-lettered. True when done in
        time and nothing of it was lost."""
        if self._pid != os.getpid():
            self._after_fork_in_child()
        if self.durable is not None:
            self.durable.sync()
        if not self._queue and not self._busy:
            return True
        marker = _FlushMarker(self._lost())
        self._queue.append(marker)  # markers bypass the size bound: they carry no data
        self._ensure_thread()
        self._wakeup.set()
        return marker.done.wait(timeout) and marker.lost_after == marker.lost_before

    def shutdown(self, timeout: float | None = 5.0) -> bool:
        """Flush, then replay the spool, within ``timeout``; stop the thread and close the sink. Events
        still queued after the deadline are spooled when a spool is configured, else counted as lost.
        Idempotent."""
        if self._closed:
            return True
        if self._pid != os.getpid():
            self._after_fork_in_child()
        deadline = None if timeout is None else time.monotonic() + timeout
        self._delivery.deadline = deadline
        if self.durable is not None:
            try:
                self.durable.close()
            except Exception as exc:  # noqa: BLE001 - meterline must never raise into the caller
                _errors.report("durable log close", exc, reraise=False)
        if self._spool_maybe and self.spool is not None:
            self._ensure_thread()  # the final replay runs on the worker
        ok = self.flush(timeout)
        self._closed = True
        self._stop = True
        self._wakeup.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            # a short grace past the deadline: a replay step that began just before it (claim, a failing
            # write, release) ends before shutdown returns, so nothing touches the spool afterwards
            thread.join(None if remaining is None else remaining + SHUTDOWN_GRACE)
        if not ok:
            self._abandon_queue()
        try:
            self.sink.close()
        except Exception as exc:  # noqa: BLE001 - meterline must never raise into the caller or kill its worker
            _errors.report("sink.close", exc, reraise=False)
        lifecycle.untrack(self, self._atexit)
        return ok

    def _lost(self) -> int:
        counts = self._counts
        return sum(counts[name] for name in LOSS_COUNTERS)

    def _abandon_queue(self) -> None:
        leftover: list[UsageEvent | Deferred] = []
        while True:
            try:
                item = self._queue.popleft()
            except IndexError:
                break
            if isinstance(item, _Marker):
                item.reached(self)
            else:
                leftover.append(item)
        if leftover:
            self._spool_or_drop(self._prepare(leftover))

    def stats(self) -> dict[str, int]:
        """Counters; never raises (a broken spool directory shows up as ``spool_errors``)."""
        out = dict(self._counts)
        try:
            queued = sum(1 for item in list(self._queue) if not isinstance(item, _Marker))
            if self.durable is not None:
                queued += self.durable.pending()
        except Exception:  # noqa: BLE001 - stats() must never raise
            queued = 0
        out["submitted"] = self._taken + queued
        out["queued"] = queued
        out["spool_files"] = 0
        out["spool_errors"] = 0
        if self.spool is not None:
            try:
                out["spool_files"] = self.spool.pending_files()
            except Exception:  # noqa: BLE001 - stats() must never raise
                self.spool.errors += 1
            out["spool_errors"] = self.spool.errors
        out["durable_errors"] = self.durable.errors if self.durable is not None else 0
        dl = self.dead_letters
        out["dead_letter_errors"] = dl.errors if dl is not None else 0
        return out

    # -- worker side ----------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            timeout = self.flush_interval
            down_for = self._delivery.down_until - time.monotonic()
            if self._spool_maybe and self.spool is not None and down_for > 0:
                timeout = min(timeout, down_for + 0.01)  # probe the destination again when the delay is over
            self._wakeup.wait(timeout)
            self._wakeup.clear()
            try:
                self._drain()
                self._recover_durable()
                self._replay()
            except Exception as exc:  # noqa: BLE001 - meterline must never raise into the caller or kill its worker
                _errors.report("recorder worker", exc, reraise=False)
            if self._stop and not self._queue:
                try:
                    self._recover_durable(force=True)  # logs of processes that died meanwhile (pool workers)
                    self._drain()
                    self._final_replay()
                except Exception as exc:  # noqa: BLE001
                    _errors.report("recorder worker", exc, reraise=False)
                return

    def _final_replay(self) -> None:
        """At shutdown: replay the spool, and while the destination is down keep probing it until the
        exit deadline (a collector restarting as the app ends still gets every event)."""
        deadline = self._delivery.deadline
        while True:
            self._replay(final=True)
            if not self._spool_maybe or deadline is None:
                return
            # the last probe starts a little before the deadline, so it ends within shutdown's grace
            last_start = deadline - SHUTDOWN_GRACE / 5
            now = time.monotonic()
            if now >= last_start:
                return
            wait = self._delivery.down_until - now if self._delivery.is_down() else 0.05
            time.sleep(min(max(wait, 0.01), last_start - now))

    def _take(self) -> tuple[list[UsageEvent | Deferred], _Marker | None]:
        """Up to batch_size events, stopping early at a marker (returned, to be reached after the write)."""
        batch: list[UsageEvent | Deferred] = []
        q = self._queue
        try:
            while len(batch) < self.batch_size:
                item = q.popleft()
                if isinstance(item, _Marker):
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
                        self._write(batch)
                finally:
                    if marker is not None:
                        marker.reached(self)
            finally:
                self._busy = False
            if self._queue and self._spool_maybe:
                self._replay(one_file=True)  # a queue that never empties must not starve the spool

    def _prepare(self, batch: Sequence[UsageEvent | Deferred]) -> list[UsageEvent]:
        """Build deferred events; price, apply environment fallbacks and the user's hook; drop oversize
        events (counted)."""
        fallbacks = environment_fallbacks()
        out: list[UsageEvent] = []
        for item in batch:
            if isinstance(item, UsageEvent):
                event = item
            else:
                try:
                    built = item.build()
                except Exception as exc:  # noqa: BLE001 - a meterline bug: count the loss, keep the worker
                    self._counts["dropped_internal_error"] += 1
                    _errors.report("building event", exc, reraise=False)
                    continue
                if built is None:
                    continue
                event = built
            try:
                for field, value in fallbacks.items():
                    if getattr(event, field) is None:
                        setattr(event, field, value)
                event.finalize_totals()
                self.pricer.price(event)
                if event.pricing_source == "unpriced":
                    self._counts["unpriced"] += 1
                if self.durable is None or not self.durable.prepared(event):
                    _content.prepare(event)  # redaction: here, or in the durable log's append (caller's thread)
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

    def _write(self, batch: Sequence[UsageEvent]) -> None:
        if self.spool is not None and self._delivery.is_down() and not self._stop:
            self._spool_or_drop(batch)  # the destination just failed: do not stall every batch on it
            return
        leftover = self._delivery.deliver(batch)
        if leftover:
            self._spool_or_drop(leftover)

    def _spool_or_drop(self, batch: Sequence[UsageEvent]) -> None:
        if self.spool is not None and self.spool.append(batch):
            self._counts["spooled"] += len(batch)
            self._spool_maybe = True
            return
        self._counts["dropped_sink_failure"] += len(batch)
        logger.error("meterline: %d events lost: the sink failed and the spool is full, broken or off", len(batch))

    def _replay(self, *, final: bool = False, one_file: bool = False) -> None:
        """Replay spool files, oldest first, while the destination takes them; yield to fresh events.

        A file's culprit events are dead-lettered by the delivery, so one bad file never blocks the others.
        A file the destination failed as a whole is put back: when the destination failed (connection
        refused, a bad key) the pass ends; when the failure is unclear (a 5xx) the pass goes on with the
        next files, and a file that failed while later ones went through is blamed on its second such
        failure (its events dead-lettered)."""
        spool = self.spool
        if spool is None or not self._spool_maybe:
            return
        if self._delivery.is_down() and not final:
            return
        found = False
        unclear_in_a_row = 0
        failed_this_pass: list[str] = []
        claims = spool.claim()
        try:
            for path, events in claims:
                found = True
                name = _spool_name(path)
                blame = self._strikes.get(name, 0) >= 2
                leftover = self._delivery.deliver(events, retries=False, blame=blame)
                if events and len(leftover) == len(events):
                    spool.release(path)
                    if self._delivery.destination_failed or unclear_in_a_row >= 2:
                        return  # the destination is down: try again after the probe delay
                    unclear_in_a_row += 1
                    failed_this_pass.append(name)
                    continue
                if leftover and not spool.append(leftover):
                    spool.release(path)  # keep the whole file; a replay is idempotent
                    return
                spool.done(path)
                self._strikes.pop(name, None)
                self._counts["replayed"] += len(events) - len(leftover)
                unclear_in_a_row = 0
                for failed in failed_this_pass:  # they failed, this one went through: a witness against them
                    self._strikes[failed] = self._strikes.get(failed, 0) + 1
                failed_this_pass.clear()
                if leftover:
                    return
                if self._delivery.deadline is not None and time.monotonic() > self._delivery.deadline:
                    return
                if (self._queue and not final) or one_file:
                    self._wakeup.set()  # fresh events first, then on with the spool at once
                    return
        finally:
            claims.close()
        if found:
            self._wakeup.set()  # files may have arrived meanwhile: look again at once
        else:
            self._spool_maybe = False

    def _recover_durable(self, *, force: bool = False) -> None:
        """Queue the events of durable logs whose writer process died (at start, then every few seconds)."""
        if self.durable is None or (time.monotonic() < self._next_rescan and not force):
            return
        self._next_rescan = time.monotonic() + DURABLE_RESCAN
        for path, events in self.durable.recover():
            self._counts["recovered"] += len(events)
            self._queue.extend(events)
            self._queue.append(_SegmentMarker(path))
        if self._queue:
            self._wakeup.set()


def _spool_name(claimed: Path) -> str:
    return claimed.name.partition(".claimed-")[0]


class _Marker:
    __slots__ = ()

    def reached(self, recorder: Recorder) -> None:
        raise NotImplementedError


class _FlushMarker(_Marker):
    __slots__ = ("done", "lost_after", "lost_before")

    def __init__(self, lost_before: int) -> None:
        self.done = threading.Event()
        self.lost_before = lost_before
        self.lost_after = lost_before

    def reached(self, recorder: Recorder) -> None:
        self.lost_after = recorder._lost()
        self.done.set()


class _SegmentMarker(_Marker):
    """Everything of one durable-log segment queued before this marker has been handled: delete it."""

    __slots__ = ("path",)

    def __init__(self, path: Path) -> None:
        self.path = path

    def reached(self, recorder: Recorder) -> None:
        lost = recorder._lost()
        complete = lost == recorder._segment_losses
        recorder._segment_losses = lost
        if recorder.durable is not None:
            recorder.durable.delivered(self.path, complete)


def _large(event: UsageEvent) -> bool:
    return _content.has_content(event) or len(event.attributes) > 16


def _wire_size(event: UsageEvent) -> int:
    import json

    return len(json.dumps(event.to_wire(), default=str))
