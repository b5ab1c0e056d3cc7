"""Stripe meter events export under rate limits (issue "Hardening", interop part): a 429, 5xx or dropped connection
in the middle of a batch costs exactly one request (what Stripe already took is in the ledger and never posted
again), requests are paced under Stripe's limits, and ``Retry-After`` is a capped minimum with a clamped backoff
when it is absent. Against tests/stripe_fake.py, which counts every request."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from meterline.core.event import UsageEvent
from meterline.interop.export import ChargeBy, Exporter, ExportError, make_target
from meterline.interop.export import ledger as export_ledger
from meterline.interop.export.stripe import LIVE_RATE, RATE_ENV, SANDBOX_RATE, StripeTarget
from meterline.pricing import get_pricer
from meterline.store.backend import open_stores
from stripe_fake import FakeStripe

NOW = datetime.now(timezone.utc).replace(microsecond=0)
MAPPING = {f"cust-{i}": f"cus_{i}" for i in range(5)}


def make_events(n: int) -> list[UsageEvent]:
    """``n`` priced events, one second apart (so the export sends them in this order), cust-0..cust-4."""
    t0 = NOW - timedelta(days=2)
    events = []
    for i in range(n):
        e = UsageEvent(
            start_time=t0 + timedelta(seconds=i),
            provider="openai",
            model="gpt-4o-mini",
            input_tokens=1000 + i,
            output_tokens=100,
            subscriber_id=f"cust-{i % 5}",
        )
        e.finalize_totals()
        get_pricer().price(e)
        events.append(e)
    return events


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Any]:
    writer, reader = open_stores(f"sqlite:///{tmp_path / 'm.db'}")
    if reader is not writer:
        reader.close()
    yield writer
    writer.close()


def stripe_target(fake: FakeStripe, rate: float | None = 0.0) -> StripeTarget:
    """rate 0: no pacing (the tests that count requests do not need to wait for it)."""
    return StripeTarget(fake.url, fake.api_key, ChargeBy("subscriber_id", MAPPING), rate=rate)


def test_one_429_at_request_51_costs_exactly_one_more_request(store: Any) -> None:
    events = make_events(100)
    store.insert(events)
    with FakeStripe(fail_at={51: (429, {"Retry-After": "0"})}) as stripe:
        target = stripe_target(stripe)
        seen: list[tuple[float, dict[str, int]]] = []

        def wait(seconds: float) -> bool:
            seen.append((seconds, export_ledger.counts(store, target.name)))
            return False

        report = Exporter(store, target, wait=wait).run_once()
    assert stripe.requests == 101  # was 150: the 50 already accepted were posted again
    assert report.sent == 100 and report.waits == 1
    assert seen == [(0.0, {"sent": 50})]  # while it waits, the 50 Stripe took are in the ledger already
    assert len(stripe.stored) == 100 and set(stripe.receipts.values()) == {1}
    assert stripe.posted[events[50].id] == 2  # the one that got the 429, and only it, went twice
    assert sum(stripe.posted.values()) == 101
    assert export_ledger.counts(store, target.name) == {"sent": 100}


def test_each_429_5xx_or_dropped_connection_costs_one_request_and_the_right_pause(store: Any) -> None:
    events = make_events(100)
    store.insert(events)
    fail_at = {
        10: (503, {}),
        30: (0, {}),  # connection drops before Stripe sees the request
        31: (-1, {}),  # Stripe stores it, the answer is lost: the re-send is "already exists", i.e. delivered
        51: (429, {"Retry-After": "7"}),
        52: (429, {}),
        53: (500, {}),
        80: (429, {"Retry-After": "soon"}),  # not a delay: treated as absent
        90: (429, {"Retry-After": "100000"}),  # capped by max_wait
    }
    with FakeStripe(fail_at=fail_at, refuse={events[99].id}) as stripe:
        target = stripe_target(stripe)
        pauses: list[float] = []

        def wait(seconds: float) -> bool:
            pauses.append(seconds)
            return False  # not stopped (and no real sleep)

        report = Exporter(store, target, max_wait=60.0, wait=wait).run_once()
    assert stripe.requests == 100 + len(fail_at)
    # backoff 1 s, doubling while no request gets through, starting over after one does; Retry-After as given
    assert pauses == [1.0, 1.0, 2.0, 7.0, 2.0, 4.0, 1.0, 60.0]
    assert report.sent == 99 and report.waits == len(fail_at)
    assert dict(report.refused) == {"Stripe: invalid_request_error: No such customer": 1}  # a 400: no wait
    assert len(stripe.stored) == 99 and set(stripe.receipts.values()) == {1}
    assert sorted(n for n in stripe.posted.values() if n > 1) == [2, 2, 2, 3, 4]  # only the events that failed
    assert export_ledger.counts(store, target.name) == {"sent": 99, "refused": 1}


def test_a_run_that_gives_up_keeps_what_stripe_took(store: Any) -> None:
    events = make_events(100)
    store.insert(events)
    with FakeStripe(fail_at={51: (503, {}), 52: (503, {})}) as stripe:
        target = stripe_target(stripe)
        with pytest.raises(ExportError, match="gave up after 2 tries"):
            Exporter(store, target, give_up_after=2, wait=lambda s: False).run_once()
        assert export_ledger.counts(store, target.name) == {"sent": 50}
        assert Exporter(store, target).run_once().sent == 50  # the next run sends only the other 50
    assert stripe.requests == 102 and set(stripe.receipts.values()) == {1}
    assert all(stripe.posted[e.id] == 1 for e in events[:50])


def test_default_pacing_stays_under_the_sandbox_limit(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RATE_ENV, raising=False)
    store.insert(make_events(60))
    with FakeStripe(api_key="sk_test_fake", limit=25) as stripe:  # a sandbox: 25 requests/s
        target = stripe_target(stripe, rate=None)
        assert target.pacer.rate == SANDBOX_RATE == 20.0
        started = time.monotonic()
        report = Exporter(store, target).run_once()
        elapsed = time.monotonic() - started
    assert report.sent == 60 and report.waits == 0
    assert stripe.requests == 60 and stripe.throttled == 0
    assert stripe.busiest_second() <= 21
    assert elapsed >= 59 / SANDBOX_RATE - 0.05


# The report: under a steady 20 requests/s limit only 20 of 250 events got through in 60 s, because
# every 429 sent the whole batch of 100 again and the re-sends used up the limit. The same with a steady limit of
# 40/s (under the batch size, as there) and 100 events, so that the tests take seconds, not a minute.
def test_a_steady_rate_limit_paced_below_it_costs_no_extra_request(store: Any) -> None:
    store.insert(make_events(100))
    with FakeStripe(limit=40) as stripe:
        report = Exporter(store, stripe_target(stripe, rate=32)).run_once()
    assert report.sent == 100 and report.waits == 0
    assert stripe.requests == 100 and stripe.throttled == 0
    assert stripe.busiest_second() <= 33
    assert len(stripe.stored) == 100 and set(stripe.receipts.values()) == {1}


def test_a_steady_rate_limit_unpaced_costs_one_request_per_429(store: Any) -> None:
    """Even with pacing off, each 429 costs one request and a 1 s backoff, and nothing is sent twice (before:
    40 events delivered, then the same 40 re-sent after every 429, for ever)."""
    store.insert(make_events(100))
    with FakeStripe(limit=40) as stripe:
        started = time.monotonic()
        report = Exporter(store, stripe_target(stripe, rate=0)).run_once()
        elapsed = time.monotonic() - started
    assert report.sent == 100 and len(stripe.stored) == 100 and set(stripe.receipts.values()) == {1}
    # 40 go in well under a second, so a 429 after 40 and after 80 (fewer only on a machine too slow to hit it)
    assert 1 <= stripe.throttled <= 2 and report.waits == stripe.throttled
    assert stripe.requests == 100 + stripe.throttled == sum(stripe.posted.values())
    assert elapsed < 10


def test_the_pacing_rate_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    charge = ChargeBy("subscriber_id", MAPPING)
    monkeypatch.delenv(RATE_ENV, raising=False)
    assert StripeTarget(None, "sk_live_x", charge).pacer.rate == LIVE_RATE == 900.0
    assert StripeTarget(None, "rk_live_x", charge).pacer.rate == LIVE_RATE
    assert StripeTarget(None, "sk_test_x", charge).pacer.rate == SANDBOX_RATE
    assert StripeTarget(None, None, charge).pacer.rate == SANDBOX_RATE
    monkeypatch.setenv(RATE_ENV, "250")
    assert make_target("stripe", None, "sk_live_x", charge).pacer.rate == 250.0  # type: ignore[attr-defined]
    assert StripeTarget(None, "sk_live_x", charge, rate=5).pacer.rate == 5.0  # the argument wins
    monkeypatch.setenv(RATE_ENV, "0")
    assert StripeTarget(None, "sk_live_x", charge).pacer.rate == 0.0  # no pacing
    for bad in ("fast", "-1", "inf"):
        monkeypatch.setenv(RATE_ENV, bad)
        with pytest.raises(ExportError, match=RATE_ENV):
            StripeTarget(None, "sk_live_x", charge)
