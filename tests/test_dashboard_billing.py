"""The dashboard's Billing page, printable invoices and share-link billing through FastAPI's TestClient
(SQLite and PostgreSQL): customers with plan and wallet balance, live previews and finalized invoices
whose numbers equal the billing API's, and a share link that shows one customer's billing only."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient

from dashboard_support import Seeded, seed
from meterline.billing import invoice as invoicing
from meterline.billing import service as svc
from meterline.billing import store as billing_store
from meterline.billing.model import parse_customer
from meterline.server.app import create_app
from meterline.server.dashboard import auth
from meterline.server.settings import Settings
from meterline.store.backend import open_stores
from test_dashboard import api, csrf_of, login, rows


@pytest.fixture
def database(any_database: str) -> str:
    """Every event store, ClickHouse included: what this module checks, all of them must do."""
    return any_database


NOW = datetime.now(timezone.utc)
CURRENT = invoicing.period_of(NOW, "UTC")
PREVIOUS = invoicing.period_of(NOW.replace(day=1) - timedelta(days=1), "UTC")


@pytest.fixture(autouse=True)
def _fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The billing clock (API and dashboard) stays at NOW, read at import: a month turning over between the
    import and a test (or within one) no longer splits CURRENT from the period the product shows."""
    from meterline.billing.overview import DashboardSource

    monkeypatch.setattr(svc, "now", lambda: NOW)
    monkeypatch.setattr(DashboardSource, "now", lambda self: NOW)


@pytest.fixture
def billed(database: str) -> Seeded:
    """The dashboard's seeded events; acme (plan pro, 20% markup, a 5.00 wallet) and globex (list price, a
    1.25 wallet) as billing customers; the previous period finalized. initech is no billing customer."""
    seeded = seed(database, NOW)
    writer, reader = open_stores(database)
    try:
        billing_store.save_customer(
            writer, parse_customer({"id": "acme", "name": "Acme Corp", "email": "ap@acme.example"})
        )
        billing_store.save_customer(writer, parse_customer({"id": "globex", "name": "Globex"}))
        billing_store.add_plan_version(writer, {"id": "pro", "rules": [{"model": "*", "markup_percent": "20"}]})
        billing_store.add_plan_version(writer, {"id": "default", "rules": [{"model": "*", "markup_percent": "0"}]})
        svc.subscribe(writer, "acme", "pro", (NOW - timedelta(days=400)).date())
        svc.grant(writer, "acme", "5.00", granted_at=NOW - timedelta(days=60), note="prepaid")
        svc.grant(writer, "globex", "1.25", granted_at=NOW - timedelta(days=60))
        done = svc.finalize(writer, PREVIOUS)
        assert [(i.number, i.customer.id) for i in done] == [("INV-000001", "acme"), ("INV-000002", "globex")]
    finally:
        writer.close()
        if reader is not writer:
            reader.close()
    return seeded


@pytest.fixture
def client(billed: Seeded) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database=billed.database))) as c:
        yield c


def test_billing_page_shows_customers_wallets_previews_and_invoices_as_the_api(
    client: TestClient, billed: Seeded
) -> None:
    key = billed.keys["read"]
    login(client, key)
    page = client.get("/billing")
    assert page.status_code == 200 and "Billing is not configured" not in page.text
    customers = {r["customer"]: r for r in rows(page.text, "billing-customers")}
    assert set(customers) == {"acme", "globex"}  # initech has usage but is no billing customer
    assert (customers["acme"]["plan"], customers["globex"]["plan"]) == ("pro", "")
    for cid in ("acme", "globex"):
        assert customers[cid]["balance"] == api(client, key, f"/v1/wallets/{cid}")["balance_usd"]
    assert customers["acme"]["balance"] != "5"  # the wallet paid part of the finalized invoice

    for cid, row in customers.items():  # the current period: the live draft, as the preview API says
        preview = api(client, key, "/v1/invoices/preview", customer=cid, period=CURRENT)
        assert (row["period"], row["status"], row["total"]) == (CURRENT, "draft", preview["total_usd"])
        assert preview["subtotal_usd"] == preview["credits_usd"] != "0" and row["total"] == "0.00"  # wallets pay
    final = [(r["number"], r["customer"], r["period"], r["total"]) for r in rows(page.text, "billing-invoices")]
    listed = api(client, key, "/v1/invoices")
    assert final == [(i["number"], i["customer"], i["period"], i["total_usd"]) for i in reversed(listed)]
    assert [f[0] for f in final] == ["INV-000002", "INV-000001"]  # newest first
    assert 'href="/billing/invoices/INV-000001"' in page.text
    assert client.get("/billing?page=x").status_code == 400


def test_billing_page_pages_customers_and_escapes_what_customers_are_named(client: TestClient, billed: Seeded) -> None:
    from meterline.server.dashboard import billing_view

    writer, reader = open_stores(billed.database)
    try:
        billing_store.add_customers(writer, [f"c{i:03d}" for i in range(60)])
        billing_store.save_customer(writer, parse_customer({"id": "zz<i>&", "name": "<script>alert(1)</script>"}))
        first = billing_view.overview(reader, 0, 0, size=50)
        last = billing_view.overview(reader, 1, 0, size=50)
    finally:
        writer.close()
        if reader is not writer:
            reader.close()
    assert first is not None and last is not None
    assert (first["customer_count"], len(first["customers"]), first["more"]) == (63, 50, True)
    shown = [c["customer"] for c in last["customers"]]  # in id order: acme, c000..c059, globex, zz<i>&
    assert shown == [f"c{i:03d}" for i in range(49, 60)] + ["globex", "zz<i>&"] and not last["more"]
    assert last["customers"][0]["draft"]["total_usd"] == "0.00" and last["customers"][0]["plan"] is None
    login(client, billed.keys["read"])
    page = client.get("/billing", params={"page": "1"})
    assert page.status_code == 200 and "<script>alert" not in page.text and "&lt;script&gt;alert(1)" in page.text
    assert 'data-customer="zz&lt;i&gt;&amp;"' in page.text and "customer=zz%3Ci%3E%26&amp;period=" in page.text
    assert [r["customer"] for r in rows(page.text, "billing-customers")][-2:] == ["globex", "zz&lt;i&gt;&amp;"]
    assert len(rows(page.text, "billing-customers")) == 13 and 'data-testid="customers-next"' not in page.text
    preview = client.get("/billing/preview", params={"customer": "zz<i>&", "period": CURRENT})
    assert preview.status_code == 200 and "&lt;script&gt;" in preview.text and "<script>" not in preview.text


def test_printable_invoice_and_preview_reuse_billings_renderer_inside_the_session(
    client: TestClient, billed: Seeded
) -> None:
    assert client.get("/billing/invoices/INV-000001", follow_redirects=False).status_code == 303  # no session
    login(client, billed.keys["read"])
    page = client.get("/billing/invoices/INV-000001")
    want = client.get("/v1/invoices/INV-000001?format=html", headers={"Authorization": f"Bearer {billed.keys['read']}"})
    assert page.status_code == 200 and page.text == want.text
    assert "<title>Invoice INV-000001</title>" in page.text and "Acme Corp" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    preview = client.get("/billing/preview", params={"customer": "globex", "period": CURRENT})
    total = api(client, billed.keys["read"], "/v1/invoices/preview", customer="globex", period=CURRENT)["total_usd"]
    assert preview.status_code == 200 and "Invoice (draft)" in preview.text and f">{total}</td>" in preview.text
    assert client.get("/billing/invoices/INV-000099").status_code == 404
    assert client.get("/billing/preview", params={"customer": "ghost", "period": CURRENT}).status_code == 404
    bad = client.get("/billing/preview", params={"customer": "acme", "period": "13-2026"})
    assert bad.status_code == 400 and "period" in bad.json()["detail"]
    assert client.get("/billing/preview", params={"customer": "acme"}).status_code == 400


def _share(client: TestClient, billed: Seeded, customer: str) -> str:
    login(client, billed.keys["admin"])
    token = csrf_of(client.get("/share").text)
    r = client.post("/share", data={"csrf_token": token, "customer": customer, "days": "7"})
    m = re.search(r'/share/([A-Za-z0-9_.-]+)"', r.text)
    assert m, r.text
    return m.group(1)


def test_a_share_link_shows_its_customers_wallet_and_invoices_and_never_anothers(
    client: TestClient, billed: Seeded
) -> None:
    token = _share(client, billed, "acme")
    anon = TestClient(client.app)
    page = anon.get(f"/share/{token}")
    assert page.status_code == 200
    wallet = api(client, billed.keys["read"], "/v1/wallets/acme")
    assert f'data-balance="{wallet["balance_usd"]}"' in page.text
    shown = [(r["number"], r["period"], r["status"], r["total"]) for r in rows(page.text, "share-invoices")]
    preview = api(client, billed.keys["read"], "/v1/invoices/preview", customer="acme", period=CURRENT)
    acme_final = api(client, billed.keys["read"], "/v1/invoices", customer="acme")
    assert shown == [("", CURRENT, "draft", preview["total_usd"])] + [
        (i["number"], i["period"], "final", i["total_usd"]) for i in acme_final
    ]
    for other in ("globex", "initech", "INV-000002", "1.25"):
        assert other not in page.text, other
    printable = anon.get(f"/share/{token}/invoices/INV-000001")
    assert printable.status_code == 200 and "Acme Corp" in printable.text
    assert anon.get(f"/share/{token}/invoices/INV-000002").status_code == 404  # globex's invoice
    assert "globex" not in anon.get(f"/share/{token}/invoices/INV-000002").text.lower()
    draft = anon.get(f"/share/{token}/preview", params={"period": CURRENT, "customer": "globex"})
    assert draft.status_code == 200 and "(acme)" in draft.text and "globex" not in draft.text.lower()
    assert anon.get(f"/share/{token}/preview", params={"period": "x"}).status_code == 400
    expired = auth.share_token(client.app.state.dashboard_secret, "acme", 1.0)
    assert anon.get(f"/share/{expired}/invoices/INV-000001").status_code == 404


def test_a_share_link_of_a_customer_without_billing_shows_usage_only(client: TestClient, billed: Seeded) -> None:
    token = _share(client, billed, "initech")
    page = TestClient(client.app).get(f"/share/{token}")
    assert page.status_code == 200 and 'data-testid="share-invoices"' not in page.text
    for other in ("acme", "globex", "INV-0000"):
        assert other not in page.text, other
