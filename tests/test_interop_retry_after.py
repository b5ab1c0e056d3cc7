"""``Retry-After`` as every exporter reads it (issue "Hardening", interop part): a value that is not a delay
(``soon``) no longer crashes an export with a traceback but counts as absent (backoff); each RFC 9110 form of an
HTTP-date is parsed; ``X-RateLimit-Reset`` is the fallback."""

from __future__ import annotations

import email.utils
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from billing_targets import BillingTarget
from meterline.core.event import UsageEvent
from meterline.interop.export import ChargeBy, Exporter, make_target
from meterline.interop.export.base import retry_after
from meterline.interop.export.stripe import RATE_ENV
from meterline.pricing import get_pricer
from meterline.store.backend import open_stores
from stripe_fake import FakeStripe

SRC = str(Path(__file__).resolve().parents[1] / "src")
NOW = datetime(2026, 11, 20, 12, 0, 0, tzinfo=timezone.utc).timestamp()  # a Friday


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("0", 0.0),
        ("120", 120.0),
        (" 5 ", 5.0),
        ("0.25", 0.25),  # not RFC delay-seconds, but common (and harmless)
        ("Fri, 20 Nov 2026 12:00:30 GMT", 30.0),  # IMF-fixdate
        ("Friday, 20-Nov-26 12:00:30 GMT", 30.0),  # obsolete RFC 850 form
        ("Fri Nov 20 12:00:30 2026", 30.0),  # obsolete asctime form (no zone: GMT)
        ("Fri, 20 Nov 2026 11:00:00 GMT", 0.0),  # already past
        ("soon", None),
        ("", None),
        ("-3", None),
        ("+3", None),
        ("inf", None),
        ("nan", None),
        ("1e3", None),
        ("1_000", None),
        ("5 seconds", None),
        ("Fri, 32 Nov 2026 12:00:30 GMT", None),
        ("Fri, 20 Nov 2026 25:00:30 GMT", None),
        ("Fri, 20 Nov 99999 12:00:30 GMT", None),
    ],
)
def test_retry_after_forms(value: str, seconds: float | None) -> None:
    assert retry_after({"Retry-After": value}, now=NOW) == seconds


def test_x_ratelimit_reset_is_the_fallback() -> None:
    assert retry_after({"Retry-After": "soon", "X-RateLimit-Reset": "3"}, now=NOW) == 3.0  # seconds left
    assert retry_after({"X-RateLimit-Reset": str(int(NOW) + 10)}, now=NOW) == 10.0  # epoch seconds
    assert retry_after({"X-RateLimit-Reset": "tomorrow"}, now=NOW) is None
    assert retry_after({"Retry-After": "2", "X-RateLimit-Reset": "3"}, now=NOW) == 2.0
    assert retry_after({}, now=NOW) is None and retry_after(None) is None


def _events(n: int) -> list[UsageEvent]:
    t0 = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=2)
    events = []
    for i in range(n):
        e = UsageEvent(
            start_time=t0 + timedelta(seconds=i),
            provider="openai",
            model="gpt-4o-mini",
            input_tokens=100 + i,
            output_tokens=10,
            subscriber_id=f"cust-{i % 3}",
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


BACKOFF = {1.0, 2.0, 4.0, 8.0, 16.0, 30.0}


@pytest.mark.parametrize("fmt", ["lago", "openmeter", "stripe"])
@pytest.mark.parametrize("form", ["soon", "http-date"])
def test_every_exporter_survives_any_retry_after(
    store: Any, fmt: str, form: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(RATE_ENV, "0")  # the Stripe export unpaced: this test is about the 429s
    store.insert(_events(40))
    header = "soon" if form == "soon" else email.utils.formatdate(time.time() + 120, usegmt=True)
    with BillingTarget(rate_limit=0.5, retry_after=header) as server:  # seeded: the first request is a 429
        mapping = {f"cust-{i}": f"cus_{i}" for i in range(3)} if fmt == "stripe" else None
        target = make_target(fmt, server.url, "target-key", ChargeBy("subscriber_id", mapping))
        pauses: list[float] = []

        def wait(seconds: float) -> bool:
            pauses.append(seconds)
            return False

        report = Exporter(store, target, wait=wait).run_once()
        assert report.sent == 40 and len(server.stored) == 40 and set(server.receipts.values()) == {1}
        assert server.throttled > 0 and len(pauses) == server.throttled
    if form == "soon":
        assert set(pauses) <= BACKOFF  # treated as absent: the exporter's own backoff
    else:
        assert all(110 < p <= 120 for p in pauses), pauses  # the date, honoured


def test_cli_one_shot_with_a_non_numeric_retry_after_finishes_without_a_traceback(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'm.db'}"
    writer, reader = open_stores(db)
    if reader is not writer:
        reader.close()
    writer.insert(_events(3))
    writer.close()
    mapping = tmp_path / "customers.json"
    mapping.write_text(json.dumps({f"cust-{i}": f"cus_{i}" for i in range(3)}))
    with FakeStripe(fail_at={2: (429, {"Retry-After": "soon"})}) as stripe:
        env = {**os.environ, "PYTHONPATH": SRC, "STRIPE_API_KEY": stripe.api_key, RATE_ENV: "0"}
        cmd = [sys.executable, "-m", "meterline", "export", "--database", db, "--format", "stripe"]
        cmd += ["--url", stripe.url, "--map", str(mapping)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"stripe export: sent 3 events to {stripe.url}" in proc.stderr
    assert stripe.requests == 4 and len(stripe.stored) == 3
