"""Run an export: pending events (ledger) → encode → send in batches → record, with rate-limit waits.

``Exporter.run_once`` drains what is pending and returns a :class:`Report`; ``Exporter.follow`` keeps
doing that until stopped and never raises (every failure is logged and retried after a pause).

With a ``lease`` (``store.leases.Lease``, one per export cursor, in the database the collectors share), several
collectors follow one target and exactly one sends: ``follow`` passes only while it holds the lease (the others
stand by and try again every poll), every send is preceded by a renewal, and a failed renewal stops the pass
before anything more is sent. The holder releases the lease when it stops; a holder that dies loses it when it
expires, and the next standby to ask takes over (within the lease's TTL plus one poll).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from meterline.interop.export import ledger as export_ledger
from meterline.interop.export.base import ExportError, RetryLater, Sent, Target
from meterline.store.base import LedgerStore
from meterline.store.leases import Lease

logger = logging.getLogger("meterline.interop.export")


@dataclasses.dataclass
class Report:
    sent: int = 0
    waits: int = 0  # how often the target made us wait (429, 5xx, network)
    skipped: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    refused: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)

    def lines(self, fmt: str) -> list[str]:
        """One line per skip/refusal reason, with its count (what a user reads after a run)."""
        out = [f"{fmt} export: skipped {n} event{'s' * (n != 1)}: {why}" for why, n in self.skipped.items()]
        out += [
            f"{fmt} export: {n} event{'s' * (n != 1)} refused by the target: {why}" for why, n in self.refused.items()
        ]
        return out

    def add(self, other: Report) -> None:
        self.sent += other.sent
        self.waits += other.waits
        self.skipped.update(other.skipped)
        self.refused.update(other.refused)


class Exporter:
    def __init__(
        self,
        store: LedgerStore,
        target: Target,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        cursor: str | None = None,
        max_wait: float = 300.0,
        give_up_after: int = 30,
        wait: Callable[[float], bool] | None = None,
        lease: Lease | None = None,
    ) -> None:
        self.store = store
        self.target = target
        self.start, self.end = start, end
        self.cursor = cursor or target.name
        self.max_wait = max_wait
        self.give_up_after = give_up_after
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait  # returns True when stopped during the wait
        self._full_wanted = False
        self.recent = timedelta(days=1)
        self.lease = lease  # None: this exporter is the only one of its cursor (the CLI)

    def note_stored(self, events: Any) -> None:
        """Told about newly stored events (the collector's ingest hook): one that started before the recent
        window makes the next pass a full one, so it goes out now rather than at the next hourly full pass."""
        horizon = datetime.now(timezone.utc) - self.recent
        if any(e.start_time < horizon for e in events):
            self._full_wanted = True

    def stop(self) -> None:
        self._stop.set()

    def run_once(self, *, retry_forever: bool = False, since: datetime | None = None) -> Report:
        """Send everything pending now (started at or after ``since`` too, when given). Raises ExportError on
        configuration errors (or when the target stays unavailable for ``give_up_after`` tries, unless
        ``retry_forever``)."""
        report = Report()
        start = self.start if since is None or (self.start is not None and self.start > since) else since
        while not self._stop.is_set():
            events = export_ledger.pending(
                self.store, self.cursor, start=start, end=self.end, limit=self.target.batch_size
            )
            if not events:
                break
            items, skips = [], collections.defaultdict(list)
            for event in events:
                item = self.target.encode(event)
                if isinstance(item, str):
                    skips[item].append(event.id)
                else:
                    items.append((event.id, item))
            for reason, ids in skips.items():
                export_ledger.record(self.store, self.cursor, ids, "skipped", reason)
                report.skipped[reason] += len(ids)
            if items and not self._deliver(items, report, retry_forever):
                break
        return report

    def _deliver(self, items: list[tuple[str, dict[str, Any]]], report: Report, forever: bool) -> bool:
        tries = 0
        while items:
            if self.lease is not None and not self.lease.hold():  # renewed before each send, or no send
                logger.warning("%s export: lost the lease %s; another collector forwards", self.target.format,
                               self.lease.name)  # fmt: skip
                return False
            try:
                result = self.target.send(items)
            except RetryLater as exc:
                if exc.done is not None and (exc.done.sent or exc.done.refused):  # delivered before it stopped
                    self._record(exc.done, report)
                    settled = {*exc.done.sent, *exc.done.refused}
                    items = [(eid, item) for eid, item in items if eid not in settled]
                    tries = 0  # progress: the backoff starts over
                tries += 1
                report.waits += 1
                if not forever and tries >= self.give_up_after:
                    raise ExportError(f"{self.target.format}: gave up after {tries} tries: {exc.reason}") from None
                pause = exc.seconds if exc.seconds is not None else min(0.5 * 2 ** min(tries, 8), 30.0)
                pause = min(pause, self.max_wait)
                logger.info("%s export: %s; retrying the batch in %.1f s", self.target.format, exc.reason, pause)
                if self._wait(pause):
                    return False
                continue
            self._record(result, report)
            items = result.again
        return True

    def _record(self, result: Sent, report: Report) -> None:
        if result.sent:
            export_ledger.record(self.store, self.cursor, result.sent, "sent")
            report.sent += len(result.sent)
        for eid, why in result.refused.items():
            export_ledger.record(self.store, self.cursor, [eid], "refused", why)
            report.refused[why] += 1

    def follow(
        self,
        poll_seconds: float = 2.0,
        on_pass: Callable[[Report], None] | None = None,
        *,
        full_every: float = 3600.0,
    ) -> None:
        """Forward new events until :meth:`stop`; never raises. Most passes look only at events that started
        within ``self.recent`` (cheap on a large store); a full pass every ``full_every`` seconds (the first
        one too, and after :meth:`note_stored` saw an old event) picks up anything stored late with an older
        start time, so nothing is ever skipped. With a lease: passes only while holding it (see the module's
        docstring), and releases it when stopped."""
        try:
            self._follow(poll_seconds, on_pass, full_every)
        finally:
            if self.lease is not None:
                self.lease.release()

    def _follow(self, poll_seconds: float, on_pass: Callable[[Report], None] | None, full_every: float) -> None:
        failures = 0
        last_full = -math.inf
        while not self._stop.is_set():
            if self.lease is not None and not self.lease.hold():  # another collector forwards: stand by
                last_full = -math.inf  # a take-over starts with a full pass
                if self._stop.wait(poll_seconds):
                    return
                continue
            try:
                full = self._full_wanted or time.monotonic() - last_full >= full_every
                self._full_wanted = False
                since = None if full else datetime.now(timezone.utc) - self.recent
                report = self.run_once(retry_forever=True, since=since)
                if full and (self.lease is None or self.lease.held):  # a pass cut short by a lost lease is not one
                    last_full = time.monotonic()
                failures = 0
                for line in report.lines(self.target.format):
                    logger.warning("%s", line)
                if on_pass is not None:
                    on_pass(report)
                pause = poll_seconds
            except Exception as exc:  # noqa: BLE001 - a forwarder must outlive any bad answer or store hiccup
                failures += 1
                pause = min(poll_seconds * 2**failures, 60.0)
                logger.error("%s export: %s; trying again in %.0f s", self.target.format, exc, pause)
            if self._stop.wait(pause):
                return
