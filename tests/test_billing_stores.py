"""Billing, re-pricing, exports and the dashboard's reads give the same exact answers on every event store
(SQLite, PostgreSQL, ClickHouse through the embedded engine): hostile amounts, a re-price done twice, the
export ledger's paging, the dashboard's top lists. Every expected number is worked out here by hand."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from meterline.billing import service as svc
from meterline.billing import store as billing_store
from meterline.billing.model import parse_customer
from meterline.billing.reprice import reprice
from meterline.core.event import MAX_COST, UsageEvent
from meterline.interop.export import ledger as export_ledger
from meterline.pricing import PriceOverride, Pricer
from meterline.store import listings
from meterline.store.backend import open_stores
from meterline.store.query import UsageQuery

M = Decimal(1_000_000)
PICO = Decimal("0.000000000001")
NOV = datetime(2026, 11, 1, tzinfo=timezone.utc)


@pytest.fixture
def store(any_database: str) -> Iterator[Any]:
    writer, reader = open_stores(any_database, pool_size=2)
    yield writer
    writer.close()
    if reader is not writer:
        reader.close()


def ev(at: datetime, who: str = "whale", model: str = "gpt-4o-mini", **kw: Any) -> UsageEvent:
    return UsageEvent(provider="openai", model=model, start_time=at, subscriber_id=who, **kw)


def test_an_invoice_over_twelve_million_dollars_of_usage_is_exact(store: Any) -> None:
    """$12M of provider cost in one month: past what int64 pico-dollars hold (~$9.22M), on every store."""
    billing_store.save_customer(store, parse_customer({"id": "whale", "name": "Whale"}))
    billing_store.add_plan_version(store, {"id": "resell", "rules": [{"model": "*", "markup_percent": "10"}]})
    svc.subscribe(store, "whale", "resell", "2026-01-01")
    inp, out = Decimal("3500000.000000000001"), Decimal("500000.000000000003")  # $4M a call, 3 calls
    events = [ev(NOV + timedelta(days=3, minutes=17 * i), input_cost=inp, output_cost=out, total_cost=inp + out)
              for i in range(3)]  # fmt: skip
    big = MAX_COST - PICO  # October, a microsecond before the period: not on this invoice
    events.append(ev(NOV - timedelta(microseconds=1), input_cost=big, total_cost=big))
    assert store.insert(events) == 4
    inv = svc.preview(store, "whale", "2026-11")
    cost_in, cost_out = 3 * inp, 3 * out
    assert (str(cost_in), str(cost_out)) == ("10500000.000000000003", "1500000.000000000009")
    assert [(ln["quantity"], ln["amount"]) for ln in inv["lines"]] == [
        ("10500000.000000000003", "11550000.0000000000033"),  # x 1.1
        ("1500000.000000000009", "1650000.0000000000099"),
    ]
    assert inv["provider_cost_usd"] == "12000000.000000000012"
    assert inv["subtotal_usd"] == "13200000.0000000000132" and inv["total_usd"] == "13200000.00"
    assert inv["requests"] == 3
    done = svc.finalize(store, "2026-11", now=datetime(2026, 12, 1, tzinfo=timezone.utc))
    assert [(i.customer.id, str(i.subtotal)) for i in done] == [("whale", "13200000.0000000000132")]


def _unpriced(n: int) -> list[UsageEvent]:
    events = []
    for i in range(n):
        e = ev(NOV + timedelta(days=1 + i % 20, hours=i % 24), who=("acme", "globex")[i % 2], model="acme-llm",
               input_tokens=1_000_000, output_tokens=250_000)  # fmt: skip
        Pricer().price(e)
        assert e.total_cost is None
        events.append(e)
    return events


def _totals(store: Any) -> list[tuple[Any, ...]]:
    """What every read shows for the month: rollup-answered and event-answered usage, the top list, the
    events, an invoice preview."""
    month = {"start": NOV, "end": datetime(2026, 12, 1, tzinfo=timezone.utc)}
    by_model = store.usage(UsageQuery(group_by=("model",), **month))  # the daily rollup answers
    # the events answer (on ClickHouse: the hourly rollup, and a scan since status is not one of its dimensions)
    by_hour = store.usage(UsageQuery(group_by=("subscriber_id",), bucket="hour", **month))
    scanned = store.usage(UsageQuery(group_by=("subscriber_id", "status"), bucket="hour", **month))
    hourly: dict[str, list[Decimal]] = {}
    for r in by_hour:
        agg = hourly.setdefault(r["subscriber_id"], [Decimal(0), Decimal(0)])
        agg[0] += r["requests"]
        agg[1] += Decimal(str(r["total_cost"]))
    for r in scanned:
        agg = hourly.setdefault("scan:" + r["subscriber_id"], [Decimal(0), Decimal(0)])
        agg[0] += r["requests"]
        agg[1] += Decimal(str(r["total_cost"]))
    top = listings.top_groups(store, UsageQuery(group_by=("subscriber_id",), **month), 5)
    events = list(store.iter_events())
    inv = svc.preview(store, "acme", "2026-11")
    return [
        (by_model[0]["requests"], Decimal(str(by_model[0]["total_cost"])), by_model[0].get("unpriced", 0)),
        sorted((k, int(v[0]), v[1]) for k, v in hourly.items()),
        [(t["subscriber_id"], t["requests"], t["total_cost"]) for t in top or []],
        (len(events), sum((e.total_cost or Decimal(0) for e in events), Decimal(0))),
        (inv["requests"], inv["provider_cost_usd"], inv["subtotal_usd"]),
    ]


def test_repricing_twice_never_counts_an_event_twice(store: Any) -> None:
    """Re-pricing rewrites stored costs (on ClickHouse: a newer version of each event): every read after it,
    rollup or events, shows each event once with its latest cost, also after ClickHouse merges its parts."""
    billing_store.save_customer(store, parse_customer({"id": "acme"}))
    billing_store.add_plan_version(store, {"id": "list", "rules": [{"model": "*", "markup_percent": "0"}]})
    svc.subscribe(store, "acme", "list", "2026-01-01")
    assert store.insert(_unpriced(40)) == 40

    first = Pricer([PriceOverride(model="acme-llm", input_mtok=Decimal("1"), output_mtok=Decimal("4"))])
    reprice(store, NOV, model="acme-llm", pricer=first)
    per_event = Decimal(1) + Decimal("0.25") * 4  # 1M input x $1 + 0.25M output x $4 = $2 per call
    assert _totals(store) == [
        (40, 40 * per_event, 0),
        [(c, 20, 20 * per_event) for c in ("acme", "globex", "scan:acme", "scan:globex")],
        [("acme", 20, 20 * per_event), ("globex", 20, 20 * per_event)],
        (40, 40 * per_event),
        (20, "40", "40"),
    ]
    second = Pricer([PriceOverride(model="acme-llm", input_mtok=Decimal("0.3"), output_mtok=Decimal("1.2"))])
    changes = reprice(store, NOV, model="acme-llm", pricer=second)
    assert [(c.events, c.changed, c.old_cost, c.new_cost) for c in changes] == [(40, 40, 40 * per_event, Decimal("24"))]
    per_event = Decimal("0.3") + Decimal("0.25") * Decimal("1.2")  # $0.6 per call
    expected = [
        (40, 40 * per_event, 0),
        [(c, 20, 20 * per_event) for c in ("acme", "globex", "scan:acme", "scan:globex")],
        [("acme", 20, 20 * per_event), ("globex", 20, 20 * per_event)],
        (40, 40 * per_event),
        (20, "12", "12"),
    ]
    assert _totals(store) == expected
    if hasattr(store, "optimize"):  # ClickHouse: merge the parts, old versions go away physically
        store.optimize()
        assert store.fetch_clickhouse("SELECT count() FROM events")[0][0] == 40
        assert _totals(store) == expected
        store.rebuild_rollup()  # the rollup the delta rows corrected equals one rebuilt from the events
        assert _totals(store) == expected
    assert reprice(store, NOV, model="acme-llm", pricer=second)[0].changed == 0  # nothing left to change


def test_export_ledger_pages_through_events_in_order(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pending events come oldest first, without the ones the ledger holds, however they fall across pages
    (ClickHouse walks its events in pages and checks each page against the ledger in the metadata database)."""
    monkeypatch.setattr(export_ledger, "_PAGE", 7)
    monkeypatch.setattr(export_ledger, "_IN", 3)
    same = NOV + timedelta(hours=5)
    events = [ev(NOV + timedelta(minutes=i), input_tokens=i) for i in range(30)]
    events += [ev(same, id=f"00000000-0000-4000-8000-{i:012d}", input_tokens=100 + i) for i in range(9)]  # one time
    store.insert(events)
    order = sorted(events, key=lambda e: (e.start_time, e.id))
    export_ledger.record(store, "t", [e.id for e in order[::2]], "sent")
    export_ledger.record(store, "t", [order[1].id], "skipped")
    want = [e.id for i, e in enumerate(order) if i % 2 and i != 1]
    assert [e.id for e in export_ledger.pending(store, "t", start=None, end=None, limit=100)] == want
    assert [e.id for e in export_ledger.pending(store, "t", start=None, end=None, limit=5)] == want[:5]
    window = export_ledger.pending(store, "t", start=NOV + timedelta(minutes=10), end=same, limit=100)
    assert [e.input_tokens for e in window] == [11, 13, 15, 17, 19, 21, 23, 25, 27, 29]
    assert [e.id for e in export_ledger.pending(store, "other", start=same, end=None, limit=4)] == [
        e.id for e in order[30:34]
    ]
    assert export_ledger.counts(store, "t") == {"sent": 20, "skipped": 1}


def test_after_pruning_a_finalized_month_the_next_invoice_has_no_adjustment(store: Any) -> None:
    """SQL stores keep the hourly billing rollup through ``meterline prune``; ClickHouse keeps none, so it
    refuses to bill a pruned month again (a clear error, never an empty invoice) and adjusts nothing for it."""
    from meterline.store.retention import prune

    billing_store.save_customer(store, parse_customer({"id": "acme"}))
    billing_store.add_plan_version(store, {"id": "list", "rules": [{"model": "*", "markup_percent": "0"}]})
    svc.subscribe(store, "acme", "list", "2026-01-01")
    dec = datetime(2026, 12, 1, tzinfo=timezone.utc)
    nov_cost, dec_cost = Decimal("2.5"), Decimal("0.75")
    store.insert([ev(NOV + timedelta(hours=30), who="acme", total_cost=nov_cost, input_cost=nov_cost),
                  ev(dec + timedelta(hours=30), who="acme", total_cost=dec_cost, input_cost=dec_cost)])  # fmt: skip
    nov = svc.finalize(store, "2026-11", now=dec)[0]
    assert str(nov.subtotal) == "2.5"
    assert prune(store, events_before=dec).events == 1
    assert svc.preview(store, "acme", "2026-11")["number"] == nov.number  # the finalized snapshot
    inv = svc.preview(store, "acme", "2026-12")
    assert [(ln["kind"], ln["amount"]) for ln in inv["lines"]] == [("markup", "0.75")]  # no adjustment for November
    if type(store).__name__ == "ClickHouseStore":
        with pytest.raises(
            billing_store.UsagePruned, match=r"period: the ClickHouse store's events before 2026-12-01T00:00:00"
        ):
            billing_store.usage(store, "subscriber_id", "acme", NOV, dec)
    else:
        assert [str(u.provider_cost) for u in billing_store.usage(store, "subscriber_id", "acme", NOV, dec)] == ["2.5"]
