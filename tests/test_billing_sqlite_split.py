"""SQLite's hourly billing rollup keeps each cost as two sums (micro-dollars and the pico remainder), so an
invoice far past 2^63 pico-dollars (~$9.22M) per customer, hour and model is exact to the pico-dollar; a
database with the rollup of before (one INTEGER per cost, whose upsert turned a sum past 2^63 into a float)
is converted when the store opens, keeping the hours whose events were pruned. Every expected number is
worked out here by hand."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from meterline.billing import service as svc
from meterline.billing import store as billing_store
from meterline.billing.model import parse_customer
from meterline.core.event import UsageEvent
from meterline.store import billing_rollup
from meterline.store.sqlite import SQLiteStore

NOV = datetime(2026, 11, 1, tzinfo=timezone.utc)
OCT = datetime(2026, 10, 1, tzinfo=timezone.utc)
SIX = Decimal("6000000.123456789012")  # $6M a call: two in one hour pass 2^63 pico-dollars
HOUR_US = 3_600_000_000

# the rollup of before, as the previous release created it: one INTEGER per cost
_OLD_SUMS = ("requests", "input_tokens", "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens",
             "output_tokens", "reasoning_tokens", "input_cost", "cache_read_cost", "cache_write_cost", "output_cost",
             "total_cost", "unpriced")  # fmt: skip
OLD_TABLE = (
    "CREATE TABLE billing_usage_hourly (customer TEXT NOT NULL, hour INTEGER NOT NULL, provider TEXT NOT NULL, "
    f"model TEXT NOT NULL, {', '.join(f'{c} INTEGER NOT NULL' for c in _OLD_SUMS)}, "
    "PRIMARY KEY (customer, hour, provider, model))"
)
_OLD_VALUES = ", ".join(
    "1" if c == "requests" else "CASE WHEN NEW.total_cost IS NULL THEN 1 ELSE 0 END" if c == "unpriced"
    else f"COALESCE(NEW.{c}, 0)" for c in _OLD_SUMS
)  # fmt: skip
OLD_TRIGGER = (
    "CREATE TRIGGER billing_usage_hourly_ins AFTER INSERT ON events WHEN NEW.subscriber_id IS NOT NULL BEGIN "
    f"INSERT INTO billing_usage_hourly (customer, hour, provider, model, {', '.join(_OLD_SUMS)}) VALUES "
    f"(NEW.subscriber_id, NEW.start_time / {HOUR_US}, NEW.provider, NEW.model, {_OLD_VALUES}) "
    "ON CONFLICT (customer, hour, provider, model) DO UPDATE SET "
    f"{', '.join(f'{c} = {c} + excluded.{c}' for c in _OLD_SUMS)}; END"
)


def ev(at: datetime, who: str, cost: Decimal, model: str = "gpt-4o") -> UsageEvent:
    return UsageEvent(provider="openai", model=model, start_time=at, subscriber_id=who, input_cost=cost,
                      total_cost=cost)  # fmt: skip


def bill(store: Any, *customers: tuple[str, str]) -> None:
    for cid, tz in customers:
        billing_store.save_customer(store, parse_customer({"id": cid, "name": cid.title(), "timezone": tz}))
        svc.subscribe(store, cid, "at-cost", "2026-01-01")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "meterline.db")
    billing_store.add_plan_version(s, {"id": "at-cost", "rules": [{"model": "*", "markup_percent": "0"}]})
    yield s
    s.close()


def test_two_six_million_dollar_calls_in_one_hour_are_invoiced_to_the_pico(store: SQLiteStore) -> None:
    """Two calls of $6,000,000.123456789012 in one hour for one customer: $12,000,000.246913578024, which as
    pico-dollars (12,000,000,246,913,578,024) is past 2^63 (9,223,372,036,854,775,807). Billed from the
    hourly rollup (a UTC customer) and from the events themselves (Asia/Kolkata: its month starts at
    18:30 UTC, so the half hour up to 19:00 is summed from ``events``)."""
    bill(store, ("whale", "UTC"), ("orca", "Asia/Kolkata"))
    nov_ist = datetime(2026, 10, 31, 18, 30, tzinfo=timezone.utc)  # 2026-11-01 00:00 in Asia/Kolkata
    events = [ev(NOV + timedelta(hours=5, minutes=m), "whale", SIX) for m in (1, 59)]
    events += [ev(nov_ist + timedelta(minutes=m), "orca", SIX) for m in (0, 29)]
    assert store.insert(events) == 4
    total = SIX + SIX
    assert str(total) == "12000000.246913578024" and total * 10**12 > 2**63 - 1
    # the rollup row holds the sum in two exact halves: 12000000246912 micro-dollars + 1578024 pico
    rows = store.fetch(f"SELECT total_cost_hi, total_cost_lo, input_cost_hi, input_cost_lo, requests "
                       f"FROM {billing_rollup.ROLLUP} WHERE customer = 'whale'")  # fmt: skip
    assert rows == [(12_000_000_246_912, 1_578_024, 12_000_000_246_912, 1_578_024, 2)]
    for cid in ("whale", "orca"):
        inv = svc.preview(store, cid, "2026-11")
        assert [(ln["token_class"], ln["quantity"]) for ln in inv["lines"]] == [("input", "12000000.246913578024")]
        assert inv["provider_cost_usd"] == "12000000.246913578024", cid
        assert Decimal(inv["subtotal_usd"]) == total and inv["total_usd"] == "12000000.25"
        assert inv["requests"] == 2
    done = svc.finalize(store, "2026-11", now=datetime(2026, 12, 1, tzinfo=timezone.utc))
    assert sorted((i.customer.id, i.subtotal) for i in done) == [("orca", total), ("whale", total)]


def test_a_month_of_calls_on_the_raw_path_never_raises_integer_overflow(store: SQLiteStore) -> None:
    """The customer dimension changed to ``organization_id``; a period not made of whole UTC hours is summed
    from events with split sums (SQLite's SUM() of pico-dollars would raise "integer overflow")."""
    events = [
        UsageEvent(provider="openai", model="gpt-4o", start_time=NOV + timedelta(minutes=10 + i),
                   organization_id="org-1", input_cost=SIX, total_cost=SIX)
        for i in range(3)
    ]  # fmt: skip
    assert store.insert(events) == 3
    start, end = NOV + timedelta(minutes=5), NOV + timedelta(minutes=50)  # inside one hour: raw events only
    [u] = billing_store.usage(store, "organization_id", "org-1", start, end)
    assert (u.requests, u.input_cost, u.provider_cost) == (3, 3 * SIX, Decimal("18000000.370370367036"))


def _make_old_shape(store: SQLiteStore) -> None:
    store.execute(f"DROP TRIGGER {billing_rollup.TRIGGER}")
    store.execute(f"DROP TABLE {billing_rollup.ROLLUP}")
    store.execute(OLD_TABLE)
    store.execute(OLD_TRIGGER)


def _old_row(customer: str, at: datetime, cost: Any) -> tuple[Any, ...]:
    return (customer, int(at.timestamp()) * 1_000_000 // HOUR_US, "openai", "gpt-4o", 1, 0, 0, 0, 0, 0, 0,
            cost, 0, 0, 0, cost, 0)  # fmt: skip


def test_an_old_sqlite_billing_rollup_is_converted_on_open_and_bills_exactly(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    store = SQLiteStore(path)
    billing_store.add_plan_version(store, {"id": "at-cost", "rules": [{"model": "*", "markup_percent": "0"}]})
    bill(store, ("whale", "UTC"))
    _make_old_shape(store)
    # the old trigger's upsert: the second $6M call turns the sum into a float (the defect)
    small = Decimal("0.000000000007")
    assert store.insert([ev(NOV + timedelta(hours=3, minutes=m), "whale", SIX) for m in (0, 30)]) == 2
    assert store.insert([ev(NOV + timedelta(hours=7), "whale", small)]) == 1
    got = store.fetch(f"SELECT typeof(total_cost), total_cost FROM {billing_rollup.ROLLUP} ORDER BY hour")
    exact = 12_000_000_246_913_578_024
    assert got[0][0] == "real" and got[0][1] == float(exact) and int(got[0][1]) != exact
    assert got[1] == ("integer", 7)
    # October's events were pruned: only the rollup remembers them (an exact row and an overflowed one)
    oct_exact, oct_float = 1_234_567_890_123_456_789, 1.2e19  # $1,234,567.890123456789; $12M as a float
    marks = ", ".join("?" * 17)
    store.execute(
        f"INSERT INTO {billing_rollup.ROLLUP} VALUES ({marks})", _old_row("whale", OCT + timedelta(hours=1), oct_exact)
    )
    store.execute(
        f"INSERT INTO {billing_rollup.ROLLUP} VALUES ({marks})", _old_row("whale", OCT + timedelta(hours=2), oct_float)
    )
    store.close()

    store = SQLiteStore(path)  # opening converts the table in place
    try:
        columns = [r[1] for r in store.fetch(f"PRAGMA table_info({billing_rollup.ROLLUP})")]
        assert columns == ["customer", "hour", "provider", "model", *billing_rollup.SPLIT_SUMS]
        tables = {r[0] for r in store.fetch("SELECT name FROM sqlite_master WHERE type IN ('table', 'trigger')")}
        assert billing_rollup.TRIGGER in tables and f"{billing_rollup.ROLLUP}_old" not in tables
        assert billing_rollup.rollup_dimension(store) == "subscriber_id"
        # November: the overflowed hour recomputed from its events, the exact one split as it was
        nov = svc.preview(store, "whale", "2026-11")
        assert nov["provider_cost_usd"] == "12000000.246913578031" and nov["requests"] == 3
        # October: both pruned hours kept; the float is as inexact as before (what the old reads showed)
        octo = svc.preview(store, "whale", "2026-10")
        assert octo["provider_cost_usd"] == str(Decimal(oct_exact) / 10**12 + 12_000_000) == "13234567.890123456789"
        assert octo["requests"] == 2
        # the new trigger keeps the split sums from here on
        assert store.insert([ev(NOV + timedelta(hours=3, minutes=45), "whale", SIX)]) == 1
        nov = svc.preview(store, "whale", "2026-11")
        assert nov["provider_cost_usd"] == "18000000.370370367043" and nov["requests"] == 4
    finally:
        store.close()
    store = SQLiteStore(path)  # converted once: opening again changes nothing
    try:
        assert svc.preview(store, "whale", "2026-11")["provider_cost_usd"] == "18000000.370370367043"
    finally:
        store.close()


def test_an_old_rollup_of_a_database_without_billing_is_replaced(tmp_path: Path) -> None:
    """Billing never used: the old (empty) table gets the split columns and no trigger is created."""
    path = tmp_path / "meter.db"
    store = SQLiteStore(path)
    store.execute(f"DROP TABLE {billing_rollup.ROLLUP}")
    store.execute(OLD_TABLE)
    store.close()
    store = SQLiteStore(path)
    try:
        assert [r[1] for r in store.fetch(f"PRAGMA table_info({billing_rollup.ROLLUP})")][4:] == list(
            billing_rollup.SPLIT_SUMS
        )
        assert not store.fetch("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        assert billing_rollup.rollup_dimension(store) is None
        assert store.insert([ev(NOV, "whale", SIX), ev(NOV, "whale", SIX)]) == 2
        billing_store.add_plan_version(store, {"id": "at-cost", "rules": [{"model": "*", "markup_percent": "0"}]})
        bill(store, ("whale", "UTC"))  # billing starts: the rollup is built from the events
        assert svc.preview(store, "whale", "2026-11")["provider_cost_usd"] == "12000000.246913578024"
    finally:
        store.close()
