"""Billing: invoices computed by hand and compared exactly (SQLite and PostgreSQL), wallets, re-pricing.

Every expected number below is worked out in the test from the prices and token counts, never copied
from the code's output.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest

from meterline.billing import invoice_store
from meterline.billing import service as svc
from meterline.billing import store as billing_store
from meterline.billing.model import BillingError, parse_customer, parse_plan
from meterline.billing.reprice import reprice
from meterline.core.event import UsageEvent
from meterline.pricing import PriceOverride, Pricer
from meterline.store.backend import open_stores
from meterline.store.query import UsageQuery


@pytest.fixture
def database(any_database: str) -> str:
    """Every event store, ClickHouse included: what this module checks, all of them must do."""
    return any_database


M = Decimal(1_000_000)


@pytest.fixture
def store(database: str) -> Iterator[Any]:
    writer, reader = open_stores(database, pool_size=2)
    yield writer
    writer.close()
    if reader is not writer:
        reader.close()


def ev(when: str, model: str = "gpt-4o-mini", who: str = "acme", provider: str = "openai", **kw: Any) -> UsageEvent:
    return UsageEvent(provider=provider, model=model, start_time=datetime.fromisoformat(when), subscriber_id=who, **kw)


def customer(store: Any, cid: str = "acme", **kw: Any) -> None:
    billing_store.save_customer(store, parse_customer({"id": cid, "name": cid.title(), **kw}))


def plan(store: Any, pid: str, rules: list[dict[str, Any]], **kw: Any) -> None:
    billing_store.add_plan_version(store, {"id": pid, "rules": rules, **kw})


def amounts(inv: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(ln["description"], ln["quantity"], ln["amount"]) for ln in inv["lines"]]


def cents(d: Decimal) -> str:
    return str(d.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def test_markup_percent_plus_fixed_fee_per_request(store: Any) -> None:
    customer(store)
    plan(store, "resell", [{"model": "*", "markup_percent": "20", "fixed_per_request": "0.002"}])
    svc.subscribe(store, "acme", "resell", "2026-01-01")
    costs = [("0.0123", "0.0456"), ("0.0001", "0.0002"), ("0.5", "0.25")]
    store.insert([
        ev(f"2026-11-0{i + 1}T10:00:00+00:00", "claude-3-5-haiku", provider="anthropic", input_tokens=10,
           output_tokens=5, input_cost=Decimal(a), output_cost=Decimal(b), total_cost=Decimal(a) + Decimal(b))
        for i, (a, b) in enumerate(costs)
    ])  # fmt: skip
    inv = svc.preview(store, "acme", "2026-11")
    cost_in, cost_out = Decimal("0.5124"), Decimal("0.2958")  # 0.0123 + 0.0001 + 0.5 ; 0.0456 + 0.0002 + 0.25
    line_in, line_out, fees = cost_in * Decimal("1.2"), cost_out * Decimal("1.2"), 3 * Decimal("0.002")
    assert (line_in, line_out, fees) == (Decimal("0.61488"), Decimal("0.35496"), Decimal("0.006"))
    assert amounts(inv) == [
        ("anthropic/claude-3-5-haiku input at provider cost + 20%", "0.5124", "0.61488"),
        ("anthropic/claude-3-5-haiku output at provider cost + 20%", "0.2958", "0.35496"),
        ("anthropic/claude-3-5-haiku per-request fee", "3", "0.006"),
    ]
    subtotal = line_in + line_out + fees
    assert inv["subtotal_usd"] == "0.97584" == str(subtotal)
    assert inv["provider_cost_usd"] == "0.8082"
    assert inv["margin_usd"] == str(subtotal - Decimal("0.8082")) == "0.16764"
    assert inv["credits_usd"] == "0"
    assert inv["total_usd"] == "0.98" == cents(subtotal)
    assert inv["status"] == "draft" and inv["number"] is None and inv["requests"] == 3


def test_per_model_prices_with_customer_override_and_default_rate_card(store: Any) -> None:
    customer(store, overrides=[{"model": "claude-*", "prices": {"input": "2.5", "output": "12"}}])
    plan(store, "default", [{"model": "*", "markup_percent": "10"}])
    plan(store, "std", [
        {"model": "gpt-4o-mini", "prices": {"input": "0.30", "output": "1.20", "cache_read": "0.03"}},
        {"model": "claude-*", "prices": {"input": "3", "output": "15"}},
    ])  # fmt: skip
    svc.subscribe(store, "acme", "std", "2026-11-01")
    store.insert([
        ev("2026-11-03T00:00:00+00:00", input_tokens=1_234_567, cache_read_tokens=100_000, output_tokens=54_321,
           reasoning_tokens=1_000),
        ev("2026-11-04T00:00:00+00:00", "claude-3-5-haiku", provider="anthropic", input_tokens=200_000,
           output_tokens=10_000),
        ev("2026-11-05T00:00:00+00:00", "mistral-large", provider="mistral", input_tokens=1, output_tokens=1,
           input_cost=Decimal("0.1"), output_cost=Decimal(0), total_cost=Decimal("0.1")),
    ])  # fmt: skip
    inv = svc.preview(store, "acme", "2026-11")
    gpt_in = Decimal("1.234567") * Decimal("0.30")  # 0.3703701
    gpt_cache = Decimal("0.1") * Decimal("0.03")  # 0.003
    gpt_out = Decimal("0.054321") * Decimal("1.20")  # reasoning has no price of its own: billed as output
    claude_in, claude_out = Decimal("0.2") * Decimal("2.5"), Decimal("0.01") * 12  # the override, not the plan
    mistral = Decimal("0.1") * Decimal("1.1")  # no rule in override or plan: default rate card, cost + 10 %
    assert [(d, a) for d, _, a in amounts(inv)] == [
        ("anthropic/claude-3-5-haiku input", "0.5"),
        ("anthropic/claude-3-5-haiku output", "0.12"),
        ("mistral/mistral-large input at provider cost + 10%", "0.11"),
        ("openai/gpt-4o-mini input", "0.3703701"),
        ("openai/gpt-4o-mini cache_read", "0.003"),
        ("openai/gpt-4o-mini output", "0.0651852"),
    ]
    subtotal = gpt_in + gpt_cache + gpt_out + claude_in + claude_out + mistral
    assert Decimal(inv["subtotal_usd"]) == subtotal == Decimal("1.1685553")
    assert inv["total_usd"] == "1.17"
    gpt_line = next(ln for ln in inv["lines"] if ln["description"] == "openai/gpt-4o-mini input")
    assert (gpt_line["tokens"], gpt_line["unit"], gpt_line["unit_price"]) == (1_234_567, "1M tokens", "0.3")


def test_free_allowance_crossing_mid_month(store: Any) -> None:
    customer(store)
    plan(store, "free-tier", [{"model": "gpt-4o-mini", "prices": {"input": "0.30", "output": "1.20"},
                               "free_tokens": {"input": 1_000_000}}])  # fmt: skip
    svc.subscribe(store, "acme", "free-tier", "2026-11-01")
    store.insert([ev("2026-11-05T12:00:00+00:00", input_tokens=600_000)])
    early = svc.preview(store, "acme", "2026-11")
    assert amounts(early) == [("openai/gpt-4o-mini input (free allowance (1,000,000 tokens))", "0.6", "0")]
    assert early["total_usd"] == "0.00"
    store.insert([ev("2026-11-20T12:00:00+00:00", input_tokens=600_000, output_tokens=50_000)])
    inv = svc.preview(store, "acme", "2026-11")
    # 1,200,000 input tokens: the first 1,000,000 free, 200,000 at 0.30/M = 0.06; 50,000 output at 1.20/M = 0.06
    assert amounts(inv) == [
        ("openai/gpt-4o-mini input (free allowance (1,000,000 tokens))", "1", "0"),
        ("openai/gpt-4o-mini input (tokens above 1,000,000)", "0.2", "0.06"),
        ("openai/gpt-4o-mini output", "0.05", "0.06"),
    ]
    assert inv["subtotal_usd"] == "0.12" and inv["total_usd"] == "0.12"


@pytest.mark.parametrize(("mode", "expected"), [("graduated", "2.05"), ("volume", "1.5")])
def test_graduated_and_volume_tiers(store: Any, mode: str, expected: str) -> None:
    customer(store)
    tiers = [{"up_to": 100_000, "mtok": "2.00"}, {"up_to": 1_000_000, "mtok": "1.50"}, {"up_to": None, "mtok": "1"}]
    plan(store, "tiered", [{"model": "*", "prices": {"output": {"mode": mode, "tiers": tiers}, "input": "0"}}])
    svc.subscribe(store, "acme", "tiered", "2026-11-01")
    store.insert([ev(f"2026-11-{d:02d}T00:00:00+00:00", output_tokens=500_000) for d in (2, 12, 22)])
    inv = svc.preview(store, "acme", "2026-11")
    if mode == "graduated":  # 100,000 x 2.00 + 900,000 x 1.50 + 500,000 x 1.00 (per million)
        assert [a for _, _, a in amounts(inv)] == ["0.2", "1.35", "0.5"]
        assert Decimal("0.1") * 2 + Decimal("0.9") * Decimal("1.5") + Decimal("0.5") == Decimal(expected)
    else:  # 1,500,000 reaches the last tier: all of it at 1.00
        assert amounts(inv) == [("openai/gpt-4o-mini output (volume tier, top)", "1.5", "1.5")]
    assert inv["subtotal_usd"] == expected


def test_plan_change_mid_period_splits_lines_in_the_customer_time_zone(store: Any) -> None:
    customer(store, timezone="America/New_York")
    plan(store, "basic", [{"model": "gpt-4o-mini", "prices": {"input": "0.30", "output": "1.20"}}])
    plan(store, "pro", [{"model": "gpt-4o-mini", "prices": {"input": "0.20", "output": "0.80"}}], minimum_usd="5")
    svc.subscribe(store, "acme", "basic", "2026-10-01")
    svc.subscribe(store, "acme", "pro", "2026-11-16")  # from midnight New York time (05:00 UTC)
    store.insert([
        ev("2026-11-10T12:00:00+00:00", input_tokens=1_000_000, output_tokens=100_000),  # basic
        ev("2026-11-16T03:00:00+00:00", input_tokens=500_000),  # Nov 15, 22:00 in New York: still basic
        ev("2026-11-20T12:00:00+00:00", input_tokens=2_000_000, output_tokens=100_000),  # pro
        ev("2026-12-01T03:00:00+00:00", output_tokens=50_000),  # Nov 30, 22:00 in New York: November, pro
        ev("2026-11-01T03:00:00+00:00", input_tokens=999),  # Oct 31, 23:00 in New York: not November
    ])  # fmt: skip
    inv = svc.preview(store, "acme", "2026-11")
    assert (inv["period_start"], inv["period_end"]) == ("2026-11-01T04:00:00Z", "2026-12-01T05:00:00Z")
    basic = "2026-11-01..2026-11-15 plan basic v1"
    pro = "2026-11-16..2026-11-30 plan pro v1"
    assert [(ln["segment"], ln["quantity"], ln["amount"]) for ln in inv["lines"][:4]] == [
        (basic, "1.5", "0.45"),  # 1,500,000 input x 0.30
        (basic, "0.1", "0.12"),  # 100,000 output x 1.20
        (pro, "2", "0.4"),  # 2,000,000 input x 0.20
        (pro, "0.15", "0.12"),  # 150,000 output x 0.80
    ]
    # usage 1.09 < the minimum commitment of the plan in force at the end of the period (pro, 5 USD)
    assert amounts(inv)[4] == ("minimum monthly commitment of plan pro (5 USD)", "1", "3.91")
    assert inv["subtotal_usd"] == "5" and inv["total_usd"] == "5.00"


def test_finalize_numbers_snapshot_and_a_late_event_becomes_an_adjustment(store: Any) -> None:
    customer(store)
    customer(store, "beta")
    plan(store, "flat", [{"model": "*", "prices": {"input": "1", "output": "2"}}])
    for c in ("acme", "beta"):
        svc.subscribe(store, c, "flat", "2026-01-01")
    store.insert([ev("2026-10-10T00:00:00+00:00", input_tokens=1_000_000, output_tokens=250_000),
                  ev("2026-10-11T00:00:00+00:00", who="beta", input_tokens=10)])  # fmt: skip
    invoices = svc.finalize(store, "2026-10", now=datetime(2026, 11, 1, 1, tzinfo=timezone.utc))
    assert [(i.number, i.customer.id, str(i.total)) for i in invoices] == [
        ("INV-000001", "acme", "1.50"),  # 1 x 1 + 0.25 x 2
        ("INV-000002", "beta", "0.00"),  # 10 tokens x 1 / 1M = 0.00001 -> 0.00 (half-up on cents)
    ]
    before = invoice_store.get_invoice(store, "INV-000001")
    assert before is not None and before["subtotal_usd"] == "1.5" and before["status"] == "finalized"
    assert svc.finalize(store, "2026-10") == []  # already finalized: nothing new, same numbers

    store.insert([ev("2026-10-30T00:00:00+00:00", input_tokens=100_000)])  # arrives after finalize
    store.insert([ev("2026-11-02T00:00:00+00:00", output_tokens=500_000)])
    assert svc.preview(store, "acme", "2026-10") == before  # a finalized invoice never changes
    nov = svc.preview(store, "acme", "2026-11")
    assert amounts(nov)[-1] == (
        "adjustment for 2026-10 (invoice INV-000001): usage recorded or re-priced after it was finalized",
        "1",
        "0.1",
    )
    assert nov["subtotal_usd"] == "1.1"  # 0.5 x 2 this month + 0.1 x 1 for October's late event
    (fin,) = svc.finalize(store, "2026-11", customers=["acme"])
    assert (fin.number, str(fin.total)) == ("INV-000003", "1.10")
    dec = svc.preview(store, "acme", "2026-12")
    assert dec["lines"] == [] and dec["total_usd"] == "0.00"  # the adjustment is not billed twice
    assert invoice_store.get_invoice(store, "INV-000001") == before
    csv_text = svc_render(fin.to_dict(), "csv")
    assert csv_text.splitlines()[1].startswith("INV-000003,acme,2026-11,usage,openai/gpt-4o-mini output,")
    assert "Total due" in svc_render(fin.to_dict(), "html")


def svc_render(inv: dict[str, Any], fmt: str) -> str:
    from meterline.billing.render import render

    return render(inv, fmt)


def test_wallet_balance_credits_expiry_and_credit_notes(store: Any) -> None:
    customer(store)
    plan(store, "flat", [{"model": "*", "prices": {"input": "1", "output": "0"}}])
    svc.subscribe(store, "acme", "flat", "2026-01-01")
    t = datetime.fromisoformat
    svc.grant(store, "acme", "3.00", granted_at=t("2026-09-01T00:00:00+00:00"),
              expires_at=t("2026-10-15T00:00:00+00:00"))  # fmt: skip
    svc.grant(store, "acme", "10", granted_at=t("2026-09-01T00:00:00+00:00"))
    store.insert([ev("2026-09-10T00:00:00+00:00", input_tokens=2_000_000),
                  ev("2026-10-10T00:00:00+00:00", input_tokens=4_000_000)])  # fmt: skip
    sept = svc.finalize(store, "2026-09", now=t("2026-10-01T00:00:00+00:00"))[0]
    assert (str(sept.subtotal), str(sept.credits), str(sept.total)) == ("2", "2", "0.00")  # paid from the wallet
    # September used 2.00 of the expiring grant first; its last 1.00 expires Oct 15 unused
    oct_ = svc.finalize(store, "2026-10", now=t("2026-11-01T00:00:00+00:00"))[0]
    assert (str(oct_.credits), str(oct_.total)) == ("4", "0.00")  # 4.00 from the 10.00 grant
    w = svc.wallet(store, "acme", now=t("2026-11-20T00:00:00+00:00"))
    assert (w["balance_usd"], w["granted_usd"], w["unbilled_usage_usd"]) == ("6", "10", "0")
    store.insert([ev("2026-11-05T00:00:00+00:00", input_tokens=7_500_000)])  # more than the wallet holds
    w = svc.wallet(store, "acme", now=t("2026-11-20T00:00:00+00:00"))
    # never negative: the overspend is reported apart, once (it was -1.5 and 1.5 at once)
    assert (w["balance_usd"], w["overspend_usd"], w["unbilled_usage_usd"]) == ("0", "1.5", "7.5")
    nov = svc.finalize(store, "2026-11", now=t("2026-12-01T00:00:00+00:00"))[0]
    assert (str(nov.subtotal), str(nov.credits), str(nov.total)) == ("7.5", "6", "1.50")  # the wallet ran dry
    note = svc.credit_note(store, oct_.number or "", "2.5", "service outage")
    assert (note["number"], note["amount_usd"]) == ("CN-000001", "2.5")
    assert svc.wallet(store, "acme")["balance_usd"] == "2.5"  # the credit note is new wallet credit
    with pytest.raises(BillingError, match="exceed its subtotal 4"):
        svc.credit_note(store, oct_.number or "", "1.51", "again")  # 2.5 + 1.51 > 4


def test_repricing_a_previously_unpriced_model(store: Any, tmp_path: Path, database: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    customer(store)
    plan(store, "resell", [{"model": "*", "markup_percent": "50"}])
    svc.subscribe(store, "acme", "resell", "2026-01-01")
    events = [ev("2026-10-20T00:00:00+00:00", "acme-llm", input_tokens=1_000_000, output_tokens=100_000),
              ev("2026-11-02T00:00:00+00:00", "acme-llm", input_tokens=500_000)]  # fmt: skip
    for e in events:
        Pricer().price(e)
        assert e.pricing_source == "unpriced" and e.total_cost is None
    store.insert(events)
    with pytest.raises(BillingError, match=r"acme: 1 call\(s\) of openai/acme-llm"):  # not silently 0
        svc.finalize(store, "2026-10", now=datetime(2026, 11, 1, tzinfo=timezone.utc))
    oct_ = svc.finalize(store, "2026-10", now=datetime(2026, 11, 1, tzinfo=timezone.utc), allow_unpriced=True)[0]
    assert (oct_.unpriced_events, str(oct_.subtotal)) == (1, "0")
    frozen = invoice_store.get_invoice(store, oct_.number or "")
    assert frozen is not None and frozen["unpriced_models"] == ["openai/acme-llm"]
    from meterline.billing import render
    from meterline.cli.invoices import text

    warning = "1 call(s) without a provider price billed as 0 (openai/acme-llm)"
    for shown in (render.to_csv(frozen), render.to_html(frozen), text(frozen)):
        assert warning in shown  # every format says so

    priced = Pricer([PriceOverride(model="acme-llm", input_mtok=Decimal("1"), output_mtok=Decimal("4"))])
    dry = reprice(store, datetime(2026, 10, 1, tzinfo=timezone.utc), model="acme-llm", pricer=priced, dry_run=True)
    # 1.0M x 1 + 0.1M x 4 = 1.4 ; 0.5M x 1 = 0.5
    assert [(c.events, c.changed, c.old_unpriced, c.new_unpriced, c.new_cost) for c in dry] == [
        (2, 2, 2, 0, Decimal("1.9"))
    ]
    assert all(e.total_cost is None for e in store.iter_events())  # dry run: nothing written

    prices = tmp_path / "prices.toml"
    prices.write_text('[[model]]\nmodel = "acme-llm"\ninput_mtok = "1"\noutput_mtok = "4"\n')
    from meterline.cli import main

    assert main(["reprice", "--since", "2026-10-01", "--model", "acme-llm", "--prices", str(prices),
                 "--database", database]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "openai/acme-llm" in out and "2->0" in out and "changed 2 event(s)" in out
    stored = sorted(store.iter_events(), key=lambda e: e.start_time)
    assert [(e.total_cost, e.pricing_source) for e in stored] == [(Decimal("1.4"), "override"),
                                                                  (Decimal("0.5"), "override")]  # fmt: skip
    rolled = store.usage(UsageQuery(group_by=("model",)))
    assert Decimal(str(rolled[0]["total_cost"])) == Decimal("1.9") and rolled[0].get("unpriced", 0) == 0
    assert invoice_store.get_invoice(store, oct_.number or "") == frozen  # the finalized invoice is untouched
    nov = svc.preview(store, "acme", "2026-11")
    # November: 0.5 x 1.5 = 0.75 ; October re-priced: 1.4 x 1.5 = 2.1 as an adjustment
    assert [a for _, _, a in amounts(nov)] == ["0.75", "2.1"]
    assert nov["lines"][-1]["kind"] == "adjustment" and nov["total_usd"] == "2.85"


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"id": "p", "rules": []}, "rules"),
        ({"id": "p", "rules": [{"model": "x"}]}, "rules[0]"),
        ({"id": "p", "rules": [{"prices": {"input": 0.3}}]}, "rules[0].prices.input"),
        ({"id": "p", "rules": [{"prices": {"inputs": "1"}}]}, "rules[0].prices.inputs"),
        ({"id": "p", "rules": [{"markup_percent": "-5"}]}, "rules[0].markup_percent"),
        ({"id": "p", "rules": [{"prices": {"input": {"tiers": [{"up_to": None, "mtok": "1"},
                                                               {"up_to": 5, "mtok": "1"}]}}}]},
         "rules[0].prices.input.tiers"),
        ({"id": "p", "rules": [{"prices": {"output": "1"}, "free_tokens": {"input": 5}}]},
         "rules[0].free_tokens.input"),
        ({"id": "", "rules": [{"markup_percent": "1"}]}, "id"),
        ({"id": "p", "effective_from": "soon", "rules": [{"markup_percent": "1"}]}, "effective_from"),
    ],
)  # fmt: skip
def test_bad_plans_name_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(BillingError) as err:
        parse_plan(spec)
    assert err.value.field == field


def test_bad_customer_and_period_inputs(store: Any) -> None:
    with pytest.raises(BillingError, match="timezone: unknown time zone 'Mars/Olympus'"):
        parse_customer({"id": "x", "timezone": "Mars/Olympus"})
    with pytest.raises(BillingError, match="no customer 'ghost'"):
        svc.preview(store, "ghost", "2026-11")
    customer(store)
    with pytest.raises(BillingError, match="period: expected YYYY-MM"):
        svc.preview(store, "acme", "2026-13")
    with pytest.raises(BillingError, match="amount_usd"):
        svc.grant(store, "acme", 1.5)
    with pytest.raises(BillingError, match="no plan 'nope'"):
        svc.subscribe(store, "acme", "nope", "2026-11-01")


def test_billing_cli_end_to_end(database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from meterline.cli import main

    db = ["--database", database]
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps({"id": "pro", "rules": [{"model": "*", "prices": {"input": "2", "output": "4"}}]}))
    assert main(["customers", "create", "acme", "--name", "Acme Inc", "--email", "billing@acme.test", *db]) == 0
    assert main(["plans", "create", str(plan_file), *db]) == 0
    assert main(["customers", "subscribe", "acme", "--plan", "pro", "--from", "2020-01-01", *db]) == 0
    assert main(["wallets", "grant", "acme", "--amount", "1.00", *db]) == 0
    writer, reader = open_stores(database, pool_size=1)
    now = datetime.now(timezone.utc)
    period = f"{now.year:04d}-{now.month:02d}"
    writer.insert([ev(now.isoformat(), input_tokens=250_000, output_tokens=25_000)])
    writer.close()
    if reader is not writer:
        reader.close()
    capsys.readouterr()
    assert main(["invoices", "preview", "--customer", "acme", "--period", period, "--json", *db]) == 0
    inv = json.loads(capsys.readouterr().out)
    # 0.25M x 2 + 0.025M x 4 = 0.6, paid from the 1.00 wallet grant
    assert (inv["subtotal_usd"], inv["credits_usd"], inv["total_usd"]) == ("0.6", "0.6", "0.00")
    assert main(["wallets", "show", "acme", "--json", *db]) == 0
    assert json.loads(capsys.readouterr().out)["balance_usd"] == "0.4"
    assert main(["invoices", "finalize", "--period", period, *db]) == 2  # the month is still running
    assert "has not ended yet for acme" in capsys.readouterr().err
    assert main(["invoices", "finalize", "--period", period, "--force", *db]) == 0
    assert "INV-000001" in capsys.readouterr().out
    assert main(["invoices", "show", "INV-000001", "--format", "html", *db]) == 0
    assert "Acme Inc" in capsys.readouterr().out
    assert main(["customers", "create", "acme", *db]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["customers", "create", "bad", "--timezone", "Nowhere/City", *db]) == 2
    assert "unknown time zone" in capsys.readouterr().err


def test_usage_rollup_is_exact_for_half_hour_zones_and_a_changed_dimension(store: Any) -> None:
    """Hours at the period edges of Asia/Kolkata (UTC+5:30) come from the events; the rest from the hourly
    rollup. Changing the customer dimension rebuilds the rollup for the new field."""
    customer(store, timezone="Asia/Kolkata")
    plan(store, "flat", [{"model": "*", "prices": {"input": "1", "output": "1"}}])
    svc.subscribe(store, "acme", "flat", "2026-01-01")
    store.insert([
        ev("2026-10-31T18:20:00+00:00", input_tokens=1),  # Oct 31, 23:50 in Kolkata: October
        ev("2026-10-31T18:40:00+00:00", input_tokens=10, team_id="t1"),  # Nov 1, 00:10: November, first half hour
        ev("2026-11-15T12:00:00+00:00", input_tokens=100, team_id="t1"),
        ev("2026-11-30T18:20:00+00:00", input_tokens=1_000),  # Nov 30, 23:50: November, last half hour
        ev("2026-11-30T18:40:00+00:00", input_tokens=10_000),  # Dec 1, 00:10: December
    ])  # fmt: skip
    inv = svc.preview(store, "acme", "2026-11")
    assert inv["lines"][0]["tokens"] == 1_110 and inv["requests"] == 3
    assert (inv["period_start"], inv["period_end"]) == ("2026-10-31T18:30:00Z", "2026-11-30T18:30:00Z")
    billing_store.set_customer_dimension(store, "team_id")
    customer(store, "t1", timezone="Asia/Kolkata")
    svc.subscribe(store, "t1", "flat", "2026-01-01")
    assert svc.preview(store, "t1", "2026-11")["lines"][0]["tokens"] == 110
    assert svc.preview(store, "acme", "2026-11")["lines"] == []  # no events carry team_id = acme


def test_docs_billing_worked_example(store: Any) -> None:
    """The worked example of docs/guides/billing.md, number for number."""
    customer(store, timezone="Europe/Paris", email="billing@acme.example")
    plan(store, "pro", [
        {"model": "gpt-4o-mini", "prices": {"input": "0.30", "cache_read": "0.03", "output": "1.20"},
         "free_tokens": {"input": 1_000_000}},
        {"model": "claude-*", "markup_percent": "25", "fixed_per_request": "0.002"},
    ], effective_from="2026-01-01", minimum_usd="2")  # fmt: skip
    svc.subscribe(store, "acme", "pro", "2026-11-01")
    svc.grant(store, "acme", "1.50", granted_at=datetime(2026, 11, 1, tzinfo=timezone.utc))
    d = Decimal
    store.insert([
        ev("2026-11-03T09:00:00+00:00", input_tokens=800_000, cache_read_tokens=200_000, output_tokens=40_000,
           input_cost=d("0.12"), cache_read_cost=d("0.015"), output_cost=d("0.024"), total_cost=d("0.159")),
        ev("2026-11-18T09:00:00+00:00", input_tokens=700_000, output_tokens=60_000,
           input_cost=d("0.105"), output_cost=d("0.036"), total_cost=d("0.141")),
        ev("2026-11-20T09:00:00+00:00", "claude-haiku-4-5", provider="anthropic", input_tokens=400_000,
           output_tokens=200_000, input_cost=d("0.40"), output_cost=d("1.00"), total_cost=d("1.40")),
        ev("2026-11-30T23:30:00+00:00", output_tokens=5_000),  # 00:30 on Dec 1 in Paris: December
    ])  # fmt: skip
    (nov,) = svc.finalize(store, "2026-11", now=datetime(2026, 12, 1, 8, tzinfo=timezone.utc))
    inv = nov.to_dict()
    assert [(ln["description"], ln["quantity"], ln["unit_price"], ln["amount"]) for ln in inv["lines"]] == [
        ("anthropic/claude-haiku-4-5 input at provider cost + 25%", "0.4", "1.25", "0.5"),
        ("anthropic/claude-haiku-4-5 output at provider cost + 25%", "1", "1.25", "1.25"),
        ("anthropic/claude-haiku-4-5 per-request fee", "1", "0.002", "0.002"),
        ("openai/gpt-4o-mini input (free allowance (1,000,000 tokens))", "1", "0", "0"),
        ("openai/gpt-4o-mini input (tokens above 1,000,000)", "0.5", "0.3", "0.15"),
        ("openai/gpt-4o-mini cache_read", "0.2", "0.03", "0.006"),
        ("openai/gpt-4o-mini output", "0.1", "1.2", "0.12"),
    ]
    assert {k: inv[k] for k in ("number", "provider_cost_usd", "margin_usd", "subtotal_usd", "credits_usd",
                                "total_usd", "period_start", "period_end")} == {
        "number": "INV-000001", "provider_cost_usd": "1.7", "margin_usd": "0.328", "subtotal_usd": "2.028",
        "credits_usd": "1.5", "total_usd": "0.53", "period_start": "2026-10-31T23:00:00Z",
        "period_end": "2026-11-30T23:00:00Z",
    }  # fmt: skip
    store.insert([ev("2026-11-29T09:00:00+00:00", output_tokens=10_000)])  # late: November is finalized
    dec = svc.preview(store, "acme", "2026-12")
    assert [(ln["kind"], ln["amount"]) for ln in dec["lines"]] == [
        ("usage", "0.006"),  # the 5,000 output tokens of Dec 1, 00:30 Paris time
        ("minimum", "1.994"),  # December's own usage is below the 2.00 minimum
        ("adjustment", "0.012"),  # November re-rated: 110,000 output tokens x 1.20 = 0.132, invoiced 0.12
    ]
    assert (dec["subtotal_usd"], dec["credits_usd"], dec["total_usd"]) == ("2.012", "0", "2.01")


def test_auto_created_customers_from_event_values(store: Any) -> None:
    """With auto-creation on, finalize bills every customer value seen in the month's events, whatever
    characters it holds; customers without usage or plan get no invoice."""
    billing_store.set_setting(store, "auto_create_customers", "true")
    customer(store, "idle")
    store.insert([ev("2026-11-03T00:00:00+00:00", who="Jane Doe <jane@x.test>", input_tokens=5,
                     input_cost=Decimal("0.01"), total_cost=Decimal("0.01"))])  # fmt: skip
    (inv,) = svc.finalize(store, "2026-11")
    jane = "Jane Doe <jane@x.test>"
    assert (inv.customer.id, inv.number, inv.to_dict()["subtotal_usd"]) == (jane, "INV-000001", "0.01")
    assert [c.id for c in billing_store.list_customers(store)] == ["Jane Doe <jane@x.test>", "idle"]
    with pytest.raises(BillingError, match="id: required"):
        parse_customer({"id": "bad\nid"})
