"""Shared set-up for the LiteLLM tests: a metered SQLite file with FIXED prices (so every expected cost is
computed here, independently of meterline's pricer data), and LiteLLM instrumented for the test only."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

import meterline
from conftest import MeterDB
from meterline.core.event import UsageEvent

M = Decimal(1_000_000)
# USD per million tokens, used both as meterline's price table and to compute expected costs.
PRICES = {
    "gpt-4o-mini": {"input_mtok": "0.15", "cache_read_mtok": "0.075", "output_mtok": "0.60"},
    "gpt-3.5-turbo-instruct": {"input_mtok": "1.50", "output_mtok": "2.00"},
    "text-embedding-3-small": {"input_mtok": "0.02"},
    "claude-3-5-sonnet-20240620": {
        "input_mtok": "3",
        "cache_read_mtok": "0.30",
        "cache_write_mtok": "3.75",
        "output_mtok": "15",
    },
}
PRICE_TABLE = [{"model": model, **prices} for model, prices in PRICES.items()]


def rate(model: str, kind: str) -> Decimal:
    return Decimal(PRICES[model].get(f"{kind}_mtok", "0"))


def expected_cost(model: str, input: int = 0, output: int = 0, cache_read: int = 0, cache_write: int = 0) -> Decimal:
    return (
        input * rate(model, "input")
        + cache_read * rate(model, "cache_read")
        + cache_write * rate(model, "cache_write")
        + output * rate(model, "output")
    ) / M


USER = [{"role": "user", "content": "What is the status of order 42?"}]


@pytest.fixture(name="metered")
def metered_fixture(tmp_path: Path) -> Iterator[MeterDB]:
    """meterline writing to a temp SQLite file with PRICE_TABLE, LiteLLM instrumented."""
    db = MeterDB(tmp_path)
    db.init(prices=PRICE_TABLE)
    meterline.instrument_litellm()
    try:
        yield db
    finally:
        meterline.uninstrument("litellm")
        meterline.shutdown(5.0)


def wait_for_events(db: MeterDB, n: int, timeout: float = 10.0) -> list[UsageEvent]:
    """Events once at least ``n`` are stored (a dropped stream is metered when the garbage collector
    takes it, which LiteLLM's logging threads may delay a little)."""
    deadline = time.monotonic() + timeout
    while True:
        gc.collect()
        events = db.events()
        if len(events) >= n or time.monotonic() > deadline:
            return events
        time.sleep(0.05)
