"""Concurrent finalize: the process that loses the race skips the customers finalized meanwhile (like a
sequential re-finalize), on every store, instead of crashing on the unique (customer, period) key."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from meterline.billing import invoice_store
from meterline.billing import service as svc
from meterline.billing import store as billing_store
from meterline.billing.model import parse_customer
from meterline.core.event import UsageEvent
from meterline.store.backend import open_stores

AFTER = datetime(2026, 11, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def store(any_database: str) -> Iterator[Any]:
    writer, reader = open_stores(any_database, pool_size=2)
    yield writer
    writer.close()
    if reader is not writer:
        reader.close()


def _setup(store: Any, n: int) -> None:
    billing_store.add_plan_version(store, {"id": "flat", "rules": [{"model": "*", "prices": {"input": "1"}}]})
    events = []
    for i in range(n):
        cid = f"c{i:02d}"
        billing_store.save_customer(store, parse_customer({"id": cid, "name": cid}))
        svc.subscribe(store, cid, "flat", "2026-01-01")
        events.append(
            UsageEvent(
                provider="openai",
                model="gpt-4o-mini",
                start_time=datetime(2026, 10, 10, tzinfo=timezone.utc),
                subscriber_id=cid,
                input_tokens=1_000_000,
            )
        )
    store.insert(events)


def test_a_finalize_that_read_stale_state_skips_the_customers_finalized_meanwhile(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The losing side of the race, made deterministic: its read of the finalized customers predates the
    winner's commit (reproduction: UniqueViolation billing_invoices_customer_id_period_key, exit 1)."""
    _setup(store, 3)
    first = svc.finalize(store, "2026-10", customers=["c01"], now=AFTER)
    assert [i.customer.id for i in first] == ["c01"]
    real = invoice_store.finalized_customers
    calls = []

    def stale(s: Any, period: str) -> set[str]:
        calls.append(period)
        return set() if len(calls) == 1 else real(s, period)

    monkeypatch.setattr(invoice_store, "finalized_customers", stale)
    second = svc.finalize(store, "2026-10", now=AFTER)
    assert [i.customer.id for i in second] == ["c00", "c02"]  # c01 skipped, no traceback
    assert all(i.number and i.status == "finalized" for i in second)
    rows = invoice_store.list_invoices(store, period="2026-10")
    assert sorted(r["customer"] for r in rows) == ["c00", "c01", "c02"]
    assert len({r["number"] for r in rows}) == 3


def test_two_finalize_racing_bill_each_customer_once(any_database: str) -> None:
    writer, reader = open_stores(any_database, pool_size=2)
    try:
        _setup(writer, 8)
    finally:
        writer.close()
        if reader is not writer:
            reader.close()
    barrier = threading.Barrier(2)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        w, r = open_stores(any_database, pool_size=2)
        try:
            barrier.wait()
            results.append([i.customer.id for i in svc.finalize(w, "2026-10", now=AFTER)])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            w.close()
            if r is not w:
                r.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    billed = sorted(c for got in results for c in got)
    assert billed == [f"c{i:02d}" for i in range(8)]  # each customer once, whoever won


def test_billing_help_says_what_database_it_accepts(capsys: pytest.CaptureFixture[str]) -> None:
    """Reproduction: `--help` offered http(s)://collector for --database, then refused it."""
    from meterline.cli import main

    with pytest.raises(SystemExit):
        main(["invoices", "finalize", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "http(s)://collector" not in out and "not a collector URL" in out
    assert "--force" in out and "--allow-unpriced" in out


def test_a_grant_made_after_the_month_ended_pays_that_months_invoice(store: Any) -> None:
    """Reproduction: grant $5 on Dec 5, preview or finalize November: credits 0 while the wallet showed 5."""
    _setup(store, 1)  # c00: 1M input tokens x 1 = 1.00 in October
    svc.grant(store, "c00", "5", granted_at=datetime(2026, 11, 5, tzinfo=timezone.utc))
    at = datetime(2026, 11, 6, tzinfo=timezone.utc)
    assert svc.draft(store, "c00", "2026-10", now=at).credits == 1  # finalized after the grant: paid by it
    before = datetime(2026, 11, 4, tzinfo=timezone.utc)
    assert svc.draft(store, "c00", "2026-10", now=before).credits == 0  # not made yet
    (inv,) = svc.finalize(store, "2026-10", now=at)
    assert (str(inv.subtotal), str(inv.credits), str(inv.total)) == ("1", "1", "0.00")
    w = svc.wallet(store, "c00", now=at)
    assert (w["balance_usd"], w["overspend_usd"]) == ("4", "0")  # counted once


def test_the_dashboard_rows_mark_unpriced_usage() -> None:
    from meterline.billing.overview import _row

    inv = {"customer": "u1", "period": "2026-11", "subtotal_usd": "0", "credits_usd": "0", "total_usd": "0.00",
           "requests": 1, "lines": [], "unpriced_billed_events": 1, "unpriced_models": ["openai/x"]}  # fmt: skip
    row = _row(inv)
    assert (row["unpriced_billed_events"], row["unpriced_models"]) == (1, ["openai/x"])
