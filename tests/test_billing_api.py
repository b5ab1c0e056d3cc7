"""The billing API through a real collector (uvicorn in a thread), on SQLite and PostgreSQL: scopes,
customers, plans, subscriptions, wallets, preview/finalize, invoice formats, credit notes, bad input."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from collector_support import ThreadCollector, request, wire_event
from meterline.store import keys as key_store


@pytest.fixture
def database(any_database: str) -> str:
    """Every event store, ClickHouse included: what this module checks, all of them must do."""
    return any_database


class _November20(datetime):
    """A fixed clock inside the invoiced month: the grant and the credit note below are made on 2026-11-20 on any
    day the suite runs (it was green on Nov 30 and failed on Dec 1 when "now" came from the calendar)."""

    @classmethod
    def now(cls, tz: Any = None) -> Any:
        return datetime(2026, 11, 20, 12, tzinfo=timezone.utc).astimezone(tz)


@pytest.fixture(autouse=True)
def _fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    from meterline.billing import service

    monkeypatch.setattr(service, "datetime", _November20)


PLAN = {"id": "pro", "rules": [{"model": "gpt-4o-mini", "prices": {"input": "2", "output": "8"}}]}


def test_billing_api_end_to_end(database: str) -> None:
    with ThreadCollector(database=database) as c:
        admin, _ = key_store.create_key(c.app.state.writer, "admin", "a")
        read, _ = key_store.create_key(c.app.state.writer, "read", "r")
        ingest, _ = key_store.create_key(c.app.state.writer, "ingest", "i")
        v1 = c.url + "/v1"

        def call(path: str, method: str = "GET", body: Any = None, key: str = admin) -> tuple[int, Any]:
            return request(v1 + path, method, body, key=key)

        assert call("/customers", "POST", {"id": "acme", "name": "Acme"}, key=read)[0] == 403
        status, body = call("/customers", "POST", {"id": "acme", "name": "Acme", "timezone": "Europe/Berlin"})
        assert status == 201 and body["timezone"] == "Europe/Berlin"
        assert call("/customers", "POST", {"id": "acme"})[0] == 409
        status, body = call("/customers", "POST", {"id": "x", "timezone": "Moon/Base"})
        assert status == 400 and body["detail"] == "timezone: unknown time zone 'Moon/Base'"
        status, body = call("/plans", "POST", {"id": "bad", "rules": [{"prices": {"input": "x"}}]})
        assert status == 400 and body["detail"].startswith("rules[0].prices.input: not a decimal number")
        assert call("/plans", "POST", PLAN)[0] == 201
        assert call("/customers/acme/subscriptions", "POST", {"plan": "pro", "start": "2026-01-01"})[0] == 201
        assert call("/customers/acme/subscriptions", "POST", {"plan": "nope", "start": "2026-01-01"})[0] == 404
        status, body = call("/wallets/acme/grants", "POST", {"amount_usd": "0.01", "expires_at": "2030-01-01T00:00Z"})
        assert status == 201 and body["amount_usd"] == "0.01"
        assert call("/wallets/acme/grants", "POST", {"amount_usd": "-1"})[0] == 400

        events = [wire_event(subscriber_id="acme", start_time="2026-11-02T10:00:00Z") for _ in range(3)]
        assert call("/events", "POST", {"events": events}, key=ingest)[0] in (200, 202)
        status, inv = call("/invoices/preview?customer=acme&period=2026-11", key=read)
        assert status == 200, inv
        # 3 x 1,000 input x 2 / 1M = 0.006 ; 3 x 100 output x 8 / 1M = 0.0024 ; wallet pays 0.0084 of 0.01
        assert [ln["amount"] for ln in inv["lines"]] == ["0.006", "0.0024"]
        assert (inv["subtotal_usd"], inv["credits_usd"], inv["total_usd"]) == ("0.0084", "0.0084", "0.00")
        assert call("/invoices/preview?customer=acme&period=11-2026", key=read)[0] == 400
        assert call("/invoices/preview?customer=ghost&period=2026-11", key=read)[0] == 404
        assert call("/invoices/finalize?period=2026-11", "POST", key=read)[0] == 403
        status, body = call("/invoices/finalize?period=", "POST")  # malformed: 400, not the 409 of a refusal
        assert status == 400 and body["detail"] == "period: expected YYYY-MM such as 2026-11; got ''", body
        status, body = call("/invoices/finalize?period=2026-11", "POST")  # Nov 20 (fixed clock): still running
        assert status == 409 and body["detail"].startswith("period: period 2026-11 has not ended yet for acme"), body
        status, body = call("/invoices/finalize?period=2026-11&force=true", "POST")
        assert status == 200 and body["invoices"] == [{"number": "INV-000001", "customer": "acme", "total_usd": "0.00"}]
        status, text = call("/invoices/INV-000001?format=csv", key=read)
        assert status == 200 and text.splitlines()[0].startswith("number,customer,period,kind")
        status, html = call("/invoices/INV-000001?format=html", key=read)
        assert status == 200 and "<title>Invoice INV-000001</title>" in html
        assert call("/invoices/INV-000009", key=read)[0] == 404
        status, note = call("/invoices/INV-000001/credit-notes", "POST", {"amount_usd": "0.004", "reason": "goodwill"})
        assert status == 201 and note["number"] == "CN-000001"
        status, wallet = call("/wallets/acme", key=read)
        # 0.01 granted - 0.0084 billed + 0.004 credit note
        assert status == 200 and wallet["balance_usd"] == "0.0056"
        status, settings = call("/billing/settings", "PUT", {"customer_dimension": "no_such_field"})
        assert status == 400 and "customer_dimension" in settings["detail"]
