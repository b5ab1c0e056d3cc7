"""Exports to Lago, OpenMeter, Stripe (against a local server implementing their published request schemas)
and FOCUS 1.2 CSV. Every event is delivered exactly once through an exporter restart and a 429 storm."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from billing_targets import BillingTarget
from meterline.core.event import UsageEvent
from meterline.interop.export import ChargeBy, Exporter, ExportError, make_target
from meterline.interop.export import ledger as export_ledger
from meterline.interop.export.focus import COLUMNS, MANDATORY, write_csv
from meterline.interop.export.stripe import form_encode
from meterline.pricing import get_pricer
from meterline.store.backend import open_stores


@pytest.fixture
def database(any_database: str) -> str:
    """Every event store, ClickHouse included: what this module checks, all of them must do."""
    return any_database


SRC = str(Path(__file__).resolve().parents[1] / "src")
NOW = datetime.now(timezone.utc).replace(microsecond=0)


def make_events(n: int, *, missing: int = 0, start: datetime | None = None) -> list[UsageEvent]:
    """``n`` priced events for subscribers cust-0..cust-4; the first ``missing`` have no subscriber."""
    t0 = start or NOW - timedelta(days=2)
    events = []
    for i in range(n):
        e = UsageEvent(
            start_time=t0 + timedelta(seconds=i),
            provider="openai",
            model="gpt-4o-mini",
            input_tokens=1000 + i,
            cache_read_tokens=200,
            output_tokens=100,
            reasoning_tokens=20,
            subscriber_id=None if i < missing else f"cust-{i % 5}",
            organization_id="acme",
        )
        e.finalize_totals()
        get_pricer().price(e)
        events.append(e)
    return events


@pytest.fixture
def store(database: str) -> Iterator[Any]:
    writer, reader = open_stores(database, pool_size=2)
    if reader is not writer:
        reader.close()
    yield writer
    writer.close()


# -- Lago ------------------------------------------------------------------------------------------------
def test_lago_batches_of_100_idempotent_ids_and_a_one_line_skip_report(store: Any) -> None:
    events = make_events(253, missing=3)
    store.insert(events)
    with BillingTarget() as lago:
        target = make_target("lago", lago.url, "target-key", ChargeBy("subscriber_id"), code="llm_usage")
        report = Exporter(store, target).run_once()
        assert report.sent == 250 and lago.invalid == []
        assert report.lines("lago") == ["lago export: skipped 3 events: no subscriber_id: the --charge-by dimension"]
        assert max(lago.batches) == 100 and sum(lago.batches) == 250
        assert set(lago.stored) == {e.id for e in events[3:]}  # transaction_id = event id
        assert set(lago.receipts.values()) == {1}
        item = lago.stored[events[10].id]
        assert item["external_subscription_id"] == "cust-0" and item["code"] == "llm_usage"
        assert float(item["timestamp"]) == events[10].start_time.timestamp()
        props = item["properties"]
        assert (props["input_tokens"], props["cache_read_tokens"], props["output_tokens"]) == (1010, 200, 100)
        assert props["reasoning_tokens"] == 20 and Decimal(props["total_cost"]) == events[10].total_cost
        assert Decimal(item["precise_total_amount_cents"]) == events[10].total_cost * 100  # type: ignore[operator]
        # a second run (or a restart) sends nothing again; a new event is sent alone
        assert Exporter(store, target).run_once().sent == 0
        store.insert(make_events(1, start=NOW - timedelta(days=30)))  # stored late, with an older start time
        assert Exporter(store, target).run_once().sent == 1
        assert len(lago.stored) == 251 and set(lago.receipts.values()) == {1} and lago.repeats == 0
        assert export_ledger.counts(store, target.name) == {"sent": 251, "skipped": 3}
        # the skipped events, once they have their dimension, go after --retry-skipped (forget "skipped")
        assert export_ledger.forget(store, target.name, "skipped") == 3
        assert Exporter(store, target).run_once().skipped["no subscriber_id: the --charge-by dimension"] == 3


def test_lago_429_storm_and_an_already_stored_transaction(store: Any) -> None:
    events = make_events(300)
    store.insert(events)
    with BillingTarget(rate_limit=0.6) as lago:
        lago.stored[events[5].id] = {"from": "an earlier send"}  # Lago already has this one
        target = make_target("lago", lago.url, "target-key", ChargeBy("subscriber_id"))
        report = Exporter(store, target).run_once(retry_forever=True)
        assert lago.throttled > 3 and report.waits == lago.throttled
        assert report.sent == 300 and len(lago.stored) == 300
        assert set(lago.receipts.values()) == {1} and events[5].id not in lago.receipts
        assert lago.repeats == 1  # only the one Lago had before us


def test_lago_bad_key_is_a_named_error_and_nothing_is_marked_sent(store: Any) -> None:
    store.insert(make_events(5))
    with BillingTarget() as lago:
        target = make_target("lago", lago.url, "wrong", ChargeBy("subscriber_id"))
        with pytest.raises(ExportError, match="refused the API key"):
            Exporter(store, target).run_once()
        assert export_ledger.counts(store, target.name) == {}


def test_charge_by_must_be_an_event_dimension() -> None:
    with pytest.raises(ExportError, match="--charge-by: 'customer' is not an event field"):
        ChargeBy("customer")


# -- the CLI, restarted mid-way through a 429 storm ---------------------------------------------------------
def _follow(db: str, url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": SRC, "LAGO_API_KEY": "target-key"}
    cmd = [sys.executable, "-m", "meterline", "export", "--database", db, "--format", "lago", "--url", url]
    cmd += ["--charge-by", "organization_id", "--follow", "--poll-seconds", "0.1"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=open(log, "ab"))


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_follow_restart_in_a_429_storm_delivers_every_event_once(tmp_path: Path, stop: int) -> None:
    db = f"sqlite:///{tmp_path / 'm.db'}"
    writer, reader = open_stores(db)
    reader.close()
    writer.insert(make_events(1000))
    log = tmp_path / "export.log"
    with BillingTarget(rate_limit=0.5, retry_after="0.02") as lago:
        proc = _follow(db, lago.url, log)
        lago.wait_for(300)
        proc.send_signal(stop)
        proc.wait(20)
        assert 0 < len(lago.stored) < 1000
        writer.insert(make_events(200, start=NOW - timedelta(days=1)))  # new events while it is down
        proc = _follow(db, lago.url, log)
        try:
            lago.wait_for(1200)
            time.sleep(0.5)
        finally:
            proc.terminate()
            proc.wait(20)
        writer.close()
        assert len(lago.stored) == 1200, log.read_text()[-2000:]
        assert lago.invalid == [] and lago.throttled > 10
        assert set(lago.receipts.values()) == {1}
        if stop == signal.SIGTERM:  # a clean stop: not one event is sent twice
            assert lago.repeats == 0
        else:  # killed between a send and its ledger row at worst: one batch again, refused as already stored
            assert lago.repeats <= 100


def test_cli_one_shot_prints_items_without_url_and_reports_skips(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'm.db'}"
    writer, reader = open_stores(db)
    reader.close()
    writer.insert(make_events(4, missing=1))
    writer.close()
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.run(
        [sys.executable, "-m", "meterline", "export", "--database", db, "--format", "openmeter"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    items = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(items) == 3 and {i["subject"] for i in items} == {"cust-1", "cust-2", "cust-3"}
    assert "openmeter export: skipped 1 event: no subscriber_id: the --charge-by dimension" in proc.stderr


# -- OpenMeter ---------------------------------------------------------------------------------------------
def test_openmeter_cloudevents(store: Any) -> None:
    events = make_events(150)
    store.insert(events)
    with BillingTarget(rate_limit=0.3) as om:
        target = make_target("openmeter", om.url, "target-key", ChargeBy("organization_id"), event_type="llm")
        report = Exporter(store, target).run_once(retry_forever=True)
        assert report.sent == 150 and om.invalid == [] and max(om.batches) <= 100
        ev = om.stored[f"meterline|{events[0].id}"]
        assert (ev["id"], ev["subject"], ev["type"], ev["specversion"]) == (events[0].id, "acme", "llm", "1.0")
        assert ev["data"]["input_tokens"] == 1000 and Decimal(ev["data"]["total_cost"]) == events[0].total_cost
        assert datetime.fromisoformat(ev["time"].replace("Z", "+00:00")) == events[0].start_time


# -- Stripe ------------------------------------------------------------------------------------------------
def test_stripe_meter_events_mapping_window_and_the_stripe_package_encoding(store: Any, tmp_path: Path) -> None:
    import stripe

    recent = make_events(5)
    old = make_events(2, start=NOW - timedelta(days=40))
    store.insert(recent + old)
    mapping = {"cust-0": "cus_A", "cust-1": "cus_B", "cust-2": "cus_C", "cust-3": "cus_D"}  # no cust-4
    with BillingTarget(api_key="sk_test_123", rate_limit=0.3) as target_server:
        target = make_target(
            "stripe", target_server.url, "sk_test_123", ChargeBy("subscriber_id", mapping), event_name="tokens"
        )
        report = Exporter(store, target).run_once(retry_forever=True)
        assert report.sent == 4 and target_server.invalid == []
        assert sorted(report.lines("stripe")) == [
            "stripe export: skipped 1 event: no stripe_customer_id in --map for its subscriber_id",
            "stripe export: skipped 2 events: older than Stripe's 35-day meter event window",
        ]
        form = target_server.stored[recent[1].id]
        assert form["payload[stripe_customer_id]"] == "cus_B" and form["event_name"] == "tokens"
        assert form["payload[value]"] == str(recent[1].total_tokens) and form["identifier"] == recent[1].id
        assert int(form["timestamp"]) == int(recent[1].start_time.timestamp())
        # the same parameters sent by the stripe package itself encode to the same form
        target_server.rate_limit = 0
        params = {
            "event_name": "tokens",
            "payload": {"stripe_customer_id": "cus_Z", "value": "42"},
            "identifier": "id-1",
            "timestamp": int(NOW.timestamp()),
        }
        client = stripe.StripeClient("sk_test_123", base_addresses={"api": target_server.url}, max_network_retries=0)
        client.v1.billing.meter_events.create(params=params)  # type: ignore[arg-type]
        theirs = sorted(__import__("urllib.parse").parse.parse_qsl(target_server.bodies[-1].decode()))
        ours = sorted(__import__("urllib.parse").parse.parse_qsl(form_encode(params)))
        assert ours == theirs


def test_stripe_needs_a_customer_mapping() -> None:
    with pytest.raises(ExportError, match="stripe needs --map"):
        make_target("stripe", None, None, ChargeBy("subscriber_id"))


# -- FOCUS 1.2 ---------------------------------------------------------------------------------------------
FOCUS_12_MANDATORY = {
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ContractedCost",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "ServiceCategory",
    "ServiceName",
}


def test_focus_csv_has_every_mandatory_column_and_one_row_per_token_class() -> None:
    assert FOCUS_12_MANDATORY <= set(MANDATORY) <= set(COLUMNS)
    e = UsageEvent(
        start_time=datetime(2026, 10, 31, 23, 59, 30, tzinfo=timezone.utc),
        provider="bedrock",
        model="us.anthropic.claude-3-5-haiku-20241022-v1:0",
        input_tokens=1000,
        cache_read_tokens=5000,
        cache_write_tokens=300,
        output_tokens=200,
        reasoning_tokens=50,
        subscriber_id="cust-1",
        team_id="t-9",
        region="us-east-1",
    )
    e.finalize_totals()
    get_pricer().price(e)
    unpriced = UsageEvent(start_time=e.start_time, provider="acme", model="in-house-1", input_tokens=10)
    unpriced.pricing_source = "unpriced"
    out = io.StringIO()
    assert write_csv([e, unpriced], out) == (5, 1)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    header = out.getvalue().splitlines()[0].split(",")
    assert set(FOCUS_12_MANDATORY) <= set(header) and len(header) == len(set(header))
    assert all(c.startswith("x_") for c in header if c not in MANDATORY and c not in COLUMNS[: len(MANDATORY) + 20])
    mine = rows[:4]
    assert [r["SkuMeter"] for r in mine] == ["Input Tokens", "Cache Read Tokens", "Cache Write Tokens", "Output Tokens"]
    assert [int(r["ConsumedQuantity"]) for r in mine] == [1000, 5000, 300, 200]
    assert sum(Decimal(r["BilledCost"]) for r in mine) == e.total_cost
    for r in mine:
        assert r["ChargeCategory"] == "Usage" and r["ServiceCategory"] == "AI and Machine Learning"
        assert (r["ProviderName"], r["PublisherName"], r["ServiceName"]) == (
            "Amazon Web Services",
            "Anthropic",
            "Amazon Bedrock",
        )
        assert r["BilledCost"] == r["EffectiveCost"] == r["ListCost"] == r["ContractedCost"]
        assert (r["ChargePeriodStart"], r["ChargePeriodEnd"]) == ("2026-10-31T23:00:00Z", "2026-11-01T00:00:00Z")
        assert (r["BillingPeriodStart"], r["BillingPeriodEnd"]) == ("2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z")
        assert r["BillingCurrency"] == "USD" and r["PricingUnit"] == "1000000 Tokens"
        assert Decimal(r["PricingQuantity"]) * 1_000_000 == int(r["ConsumedQuantity"])
        assert (r["x_SubscriberId"], r["x_TeamId"], r["x_EventId"], r["RegionId"]) == (
            "cust-1",
            "t-9",
            e.id,
            "us-east-1",
        )
        for column in FOCUS_12_MANDATORY - {"ChargeClass"}:  # ChargeClass is null except for corrections
            assert r[column] != "", column
    assert mine[3]["x_ReasoningTokens"] == "50"
    assert rows[4]["x_PricingSource"] == "unpriced" and rows[4]["BilledCost"] == "0"


# -- the collector's continuous forwarding ------------------------------------------------------------------
def test_collector_forwards_new_events_and_resumes_after_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from collector_support import ThreadCollector, request, wire_event

    db = f"sqlite:///{tmp_path / 'c.db'}"
    with BillingTarget(rate_limit=0.3) as lago:
        monkeypatch.setenv("METERLINE_FORWARD", f"lago+{lago.url}?charge_by=subscriber_id&poll_seconds=0.05")
        monkeypatch.setenv("LAGO_API_KEY", "target-key")
        with ThreadCollector(database=db, auth=False) as c:
            first = [wire_event(subscriber_id=f"c{i}") for i in range(120)] + [wire_event()]  # one without
            assert request(f"{c.url}/v1/events", "POST", {"events": first})[0] == 200
            lago.wait_for(120)
            exports = request(f"{c.url}/v1/exports")[1]
        assert exports[0]["ledger"] == {"sent": 120, "skipped": 1}
        with ThreadCollector(database=db, auth=False) as c:  # restarted: only the new events go
            more = [wire_event(subscriber_id="c-new") for _ in range(30)]
            assert request(f"{c.url}/v1/events", "POST", {"events": more})[0] == 200
            lago.wait_for(150)
            time.sleep(0.5)
        assert len(lago.stored) == 150 and set(lago.receipts.values()) == {1}
        assert {e["id"] for e in first[:120] + more} == set(lago.stored)


def test_a_bad_forward_spec_is_logged_and_the_collector_still_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from collector_support import ThreadCollector, request

    monkeypatch.setenv("METERLINE_FORWARD", "lago+ftp://x")
    with ThreadCollector(database=f"sqlite:///{tmp_path / 'c.db'}", auth=False) as c:
        assert request(f"{c.url}/healthz")[0] == 200
    assert "must be http(s)://host" in caplog.text


def test_follow_reads_recent_events_cheaply_and_late_ones_on_a_full_pass(store: Any) -> None:
    import threading

    with BillingTarget() as lago:
        target = make_target("lago", lago.url, "target-key", ChargeBy("subscriber_id"))
        exporter = Exporter(store, target)
        thread = threading.Thread(target=exporter.follow, args=(0.05,), kwargs={"full_every": 3600.0})
        thread.start()
        try:
            store.insert(make_events(5, start=NOW))
            lago.wait_for(5, timeout=10)
            late = make_events(1, start=NOW - timedelta(days=20))  # e.g. replayed from a spool after an outage
            store.insert(late)
            time.sleep(0.5)
            assert late[0].id not in lago.stored  # recent passes do not scan the whole store
            exporter.note_stored(late)  # what the collector's ingest hook does
            lago.wait_for(6, timeout=10)
            assert late[0].id in lago.stored
        finally:
            exporter.stop()
            thread.join(10)
        assert set(lago.receipts.values()) == {1}
