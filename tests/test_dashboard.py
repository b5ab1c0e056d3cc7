"""Dashboard routes through FastAPI's TestClient on seeded data (SQLite and PostgreSQL): login and sessions,
CSRF, scopes, every page's numbers against the JSON API, share links, paging and bad input."""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dashboard_support import TRACE_ID, Seeded, key_hash, seed
from meterline.server.app import create_app
from meterline.server.dashboard import auth
from meterline.server.settings import Settings


@pytest.fixture
def database(any_database: str) -> str:
    """Every event store, ClickHouse included: what this module checks, all of them must do."""
    return any_database


@pytest.fixture
def seeded(database: str) -> Seeded:
    return seed(database)


@pytest.fixture
def client(seeded: Seeded) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database=seeded.database))) as c:
        yield c


def login(c: TestClient, key: str, next_url: str = "/") -> Any:
    page = c.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, page.text
    form = {"csrf_token": token.group(1), "api_key": key, "next": next_url}
    return c.post("/login", data=form, follow_redirects=False)


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF token in the page"
    return m.group(1)


def attrs(html: str, testid: str, name: str) -> str:
    tag = re.search(rf'<[^>]*data-testid="{testid}"[^>]*>', html)
    assert tag, f"no element {testid} in the page"
    m = re.search(rf' {name}="([^"]*)"', tag.group(0))
    assert m, f"{testid} has no {name}"
    return m.group(1)


def rows(html: str, table: str) -> list[dict[str, str]]:
    """data-* attributes of each <tr> in the table with data-testid=table."""
    body = html.split(f'data-testid="{table}"', 1)[1].split("</table>", 1)[0]
    out = []
    for tr in re.findall(r"<tr (data-[^>]*)>", body):
        out.append(dict(re.findall(r'data-([a-z-]+)="([^"]*)"', tr)))
    return out


def api(c: TestClient, key: str, path: str, **params: Any) -> Any:
    r = c.get(path, params=params, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    return r.json()


def range_params(c: TestClient) -> dict[str, str]:
    """start/end of the dashboard's default range (last 30 whole UTC days), read from the page."""
    from datetime import date, datetime, timedelta, timezone

    today = datetime.now(timezone.utc).date()
    first = today - timedelta(days=29)
    return {
        "start": datetime.combine(first, datetime.min.time(), timezone.utc).isoformat(),
        "end": datetime.combine(today + timedelta(days=1), datetime.min.time(), timezone.utc).isoformat(),
        "_first": date.isoformat(first),
    }


# -- login, sessions, scopes ------------------------------------------------------------------------
def test_pages_need_a_session_and_login_sets_a_signed_httponly_cookie(client: TestClient, seeded: Seeded) -> None:
    for path in ("/", "/explore", "/requests", "/traces", "/budgets", "/keys", "/billing", "/share"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next="), path
    r = login(client, seeded.keys["read"], "/requests?status=error")
    assert r.status_code == 303 and r.headers["location"] == "/requests?status=error"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{auth.SESSION_COOKIE}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert seeded.keys["read"] not in cookie  # the key itself never leaves the login POST
    page = client.get("/")
    assert page.status_code == 200 and "test-read · read" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert page.headers["server-timing"].startswith("app;dur=")


def test_login_refuses_unknown_ingest_and_revoked_keys_and_open_redirects(client: TestClient, seeded: Seeded) -> None:
    r = login(client, "ml_a_not-a-key")
    assert r.status_code == 401 and "unknown or revoked API key" in r.text
    r = login(client, seeded.keys["ingest"])
    assert r.status_code == 401 and "scope &#39;ingest&#39;" in r.text
    assert login(client, seeded.keys["admin"], "//evil.example/x").headers["location"] == "/"
    assert login(client, seeded.keys["admin"], "https://evil.example/").headers["location"] == "/"
    # a key in the URL never signs anyone in
    fresh = TestClient(client.app)
    assert fresh.get(f"/?api_key={seeded.keys['admin']}", follow_redirects=False).status_code == 303


def test_login_without_its_csrf_cookie_is_refused(client: TestClient, seeded: Seeded) -> None:
    r = client.post("/login", data={"csrf_token": "forged", "api_key": seeded.keys["admin"]}, follow_redirects=False)
    assert r.status_code == 403 and "CSRF" in r.json()["detail"]


def test_revoking_a_key_ends_its_sessions_and_logout_clears_the_cookie(client: TestClient, seeded: Seeded) -> None:
    login(client, seeded.keys["admin"])
    keys_page = client.get("/keys")
    read_id = next(r["id"] for r in rows(keys_page.text, "keys") if r["prefix"] == seeded.keys["read"][:10])
    reader = TestClient(client.app)
    login(reader, seeded.keys["read"])
    assert reader.get("/").status_code == 200
    r = client.post(f"/keys/{read_id}/revoke", data={"csrf_token": csrf_of(keys_page.text)}, follow_redirects=False)
    assert r.status_code == 303
    assert reader.get("/", follow_redirects=False).status_code == 303  # signed out at the next request
    r = client.post("/logout", data={"csrf_token": csrf_of(client.get("/").text)}, follow_redirects=False)
    assert r.status_code == 303 and 'ml_session=""' in r.headers["set-cookie"]
    client.cookies.clear()
    assert client.get("/", follow_redirects=False).status_code == 303


def test_a_read_key_cannot_reach_admin_pages_or_actions(client: TestClient, seeded: Seeded) -> None:
    login(client, seeded.keys["read"])
    page = client.get("/budgets")
    assert page.status_code == 200 and "budget-form" not in page.text and "needs an admin key" in page.text
    token = csrf_of(client.get("/").text)  # the logout form's token: valid for this session
    for method, path, data in (
        ("GET", "/keys", None),
        ("GET", "/share", None),
        ("POST", "/keys", {"scope": "admin", "name": "escalate"}),
        ("POST", "/budgets", {"name": "b", "scope": "team", "scope_value": "x", "limit_usd": "1"}),
        ("POST", "/budgets/any/delete", {}),
        ("POST", "/share", {"customer": "acme", "days": "7"}),
        ("POST", "/keys/any/revoke", {}),
    ):
        r = client.request(method, path, data={**data, "csrf_token": token} if data is not None else None)
        assert r.status_code == 403, (method, path, r.text)
        assert "admin key" in r.json()["detail"]
    admin = TestClient(client.app)
    login(admin, seeded.keys["admin"])
    assert all(not row.get("name", "").startswith("escalate") for row in rows(admin.get("/keys").text, "keys"))


def test_every_change_needs_the_sessions_csrf_token(client: TestClient, seeded: Seeded) -> None:
    login(client, seeded.keys["admin"])
    form = {"name": "csrf-test", "scope": "team", "scope_value": "team-a", "limit_usd": "5", "period": "monthly"}
    assert client.post("/budgets", data=form).status_code == 403  # none
    assert client.post("/budgets", data={**form, "csrf_token": "x" * 43}).status_code == 403  # wrong
    other = TestClient(client.app)
    login(other, seeded.keys["admin"])
    foreign = csrf_of(other.get("/budgets").text)  # another session's token
    assert client.post("/budgets", data={**form, "csrf_token": foreign}).status_code == 403
    mine = csrf_of(client.get("/budgets").text)
    cross = client.post("/budgets", data={**form, "csrf_token": mine}, headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403 and "cross-origin" in cross.json()["detail"]
    assert "csrf-test" not in client.get("/budgets").text
    ok = client.post("/budgets", data={**form, "csrf_token": mine}, headers={"X-CSRF-Token": mine})
    assert ok.status_code == 200 and 'data-name="csrf-test"' in ok.text
    proxied = {"Origin": "https://dash.example", "X-Forwarded-Host": "dash.example"}  # behind a reverse proxy
    ok = client.post("/budgets", data={**form, "name": "csrf-proxy", "csrf_token": mine}, headers=proxied)
    assert ok.status_code == 200 and 'data-name="csrf-proxy"' in ok.text


# -- numbers equal the API's ------------------------------------------------------------------------
def test_overview_cards_and_top_lists_equal_the_usage_api(client: TestClient, seeded: Seeded) -> None:
    login(client, seeded.keys["read"])
    page = client.get("/").text
    rp = range_params(client)
    key = seeded.keys["read"]
    total = api(client, key, "/v1/usage", start=rp["start"], end=rp["end"])["rows"][0]
    assert attrs(page, "card-spend", "data-value") == total["total_cost"]
    assert attrs(page, "card-requests", "data-value") == str(total["requests"]) == "126"
    assert attrs(page, "card-tokens", "data-value") == str(total["total_tokens"])
    prev_start = (
        __import__("datetime").datetime.fromisoformat(rp["start"]) - __import__("datetime").timedelta(days=30)
    ).isoformat()
    prev = api(client, key, "/v1/usage", start=prev_start, end=rp["start"])["rows"][0]
    assert attrs(page, "card-spend", "data-previous") == prev["total_cost"] and prev["requests"] == 30
    err = float(attrs(page, "card-error_rate", "data-value"))
    assert err == total["errors"] / total["requests"]
    by_customer = api(client, key, "/v1/usage", start=rp["start"], end=rp["end"], group_by="subscriber_id")["rows"]
    want = sorted(by_customer, key=lambda r: Decimal(r["total_cost"]), reverse=True)
    got = rows(page, "top-subscriber_id")
    assert [(r["key"], r["cost"], r["requests"]) for r in got] == [
        (w["subscriber_id"], w["total_cost"], str(w["requests"])) for w in want
    ]
    spend = rows(page, "spend-table")
    daily = api(client, key, "/v1/usage", start=rp["start"], end=rp["end"], bucket="day")["rows"]
    assert [(r["bucket"], r["cost"]) for r in spend] == [(d["bucket"], d["total_cost"]) for d in daily]
    lat = page.split('data-testid="latency-total"', 1)[1]
    assert re.search(r'<td class="n">[\d,.]+</td>', lat)


def test_bucket_selector_swaps_only_the_chart(client: TestClient, seeded: Seeded) -> None:
    login(client, seeded.keys["read"])
    r = client.get("/?range=30d&tz=UTC&part=spend&bucket=week", headers={"HX-Request": "true"})
    assert r.status_code == 200 and r.text.lstrip().startswith('<div class="panel" id="spend"')
    rp = range_params(client)
    weekly = api(client, seeded.keys["read"], "/v1/usage", start=rp["start"], end=rp["end"], bucket="week")["rows"]
    assert "<html" not in r.text
    assert [(x["bucket"], x["cost"]) for x in rows(r.text, "spend-table")] == [
        (w["bucket"], w["total_cost"]) for w in weekly
    ]
    assert client.get("/?bucket=fortnight").json()["detail"].startswith("bucket: must be one of")


def test_explorer_two_dimensions_filters_time_zone_and_csv_equal_the_api(client: TestClient, seeded: Seeded) -> None:
    login(client, seeded.keys["read"])
    key = seeded.keys["read"]
    page = client.get("/explore", params={"group1": "model", "group2": "subscriber_id", "fdim": "product_id",
                                          "fval": "search", "range": "30d", "tz": "America/New_York"})  # fmt: skip
    assert page.status_code == 200
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    z = ZoneInfo("America/New_York")
    today = datetime.now(z).date()
    start = datetime.combine(today - timedelta(days=29), datetime.min.time(), z)
    end = datetime.combine(today + timedelta(days=1), datetime.min.time(), z)
    want = api(client, key, "/v1/usage", group_by="model,subscriber_id", product_id="search",
               start=start.isoformat(), end=end.isoformat(), tz="America/New_York")["rows"]  # fmt: skip
    want.sort(key=lambda r: (Decimal(r["total_cost"]), r["requests"]), reverse=True)
    got = rows(page.text, "explore-table")
    assert len(got) == len(want) == 9
    assert {(r["key"], r["cost"], r["requests"]) for r in got} == {
        (f"{w['model']}|{w['subscriber_id']}", w["total_cost"], str(w["requests"])) for w in want
    }
    csv_r = client.get("/explore.csv", params={"group1": "model", "group2": "subscriber_id", "fdim": "product_id",
                                               "fval": "search", "range": "30d", "tz": "America/New_York"})  # fmt: skip
    assert csv_r.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(csv_r.text)))
    assert {(r["model"], r["subscriber_id"], r["total_cost"], r["input_tokens"]) for r in table} == {
        (w["model"], w["subscriber_id"], w["total_cost"], str(w["input_tokens"])) for w in want
    }
    bucketed = client.get("/explore?group1=model&bucket=day&range=7d")
    assert bucketed.status_code == 200 and 'data-chart="explore-data"' in bucketed.text


def test_explorer_rejects_bad_input_with_a_clear_message(client: TestClient, seeded: Seeded) -> None:
    login(client, seeded.keys["read"])
    assert client.get("/explore?tz=Mars/Olympus").json()["detail"] == "tz: unknown time zone 'Mars/Olympus'"
    assert "unknown dimension 'password'" in client.get("/explore?group1=password").json()["detail"]
    assert "unknown dimension" in client.get("/explore?fdim=nope&fval=1").json()["detail"]
    assert client.get("/explore?range=custom&from=2026-02-30").json()["detail"] == "from/to: dates must be YYYY-MM-DD"
    assert client.get("/requests?before=%%%").status_code == 400
    assert client.get("/explore?page=x").status_code == 400
    assert client.get("/").status_code == 200  # and the server keeps answering


# -- requests, event detail, traces -----------------------------------------------------------------
def test_requests_are_keyset_paged_newest_first_and_filterable(client: TestClient, seeded: Seeded) -> None:
    login(client, seeded.keys["read"])
    seen: list[str] = []
    url = "/requests?range=30d"
    while url:
        page = client.get(url).text
        seen += [r["id"] for r in rows(page, "events")]
        m = re.search(r'href="(/requests\?[^"]*before=[^"]+)" data-testid="older"', page)
        url = m.group(1).replace("&amp;", "&") if m else ""
    in_range = [e for e in seeded.events if e.start_time >= __import__("datetime").datetime.fromisoformat(
        range_params(client)["start"])]  # fmt: skip
    want = [e.id for e in sorted(in_range, key=lambda e: (e.start_time, e.id), reverse=True)]
    assert seen == want and len(seen) == 126
    errors = rows(client.get("/requests?status=error&subscriber_id=acme").text, "events")
    expect = [e for e in in_range if e.status == "error" and e.subscriber_id == "acme"]
    assert len(errors) == len(expect) > 0


def test_event_detail_shows_the_exact_cost_per_token_class_and_captured_content(
    client: TestClient, seeded: Seeded
) -> None:
    login(client, seeded.keys["read"])
    e = next(x for x in seeded.events if x.id == seeded.content_event)
    page = client.get(f"/requests/{e.id}").text
    got = {r["cls"]: (r["tokens"], r["cost"]) for r in rows(page, "breakdown") if "cls" in r}
    assert got["input (uncached)"] == (str(e.input_tokens), str(e.input_cost).rstrip("0").rstrip("."))
    wire = api(client, seeded.keys["read"], "/v1/events", subscriber_id=e.subscriber_id, limit=1000)["events"]
    w = next(x for x in wire if x["id"] == e.id)
    assert got["cache read"] == (str(w["cache_read_tokens"]), w["cache_read_cost"])
    assert got["output (incl. reasoning)"] == (str(w["output_tokens"]), w["output_cost"])
    assert f'data-cost="{w["total_cost"]}"' in page
    assert "genai-prices@test" in page and "Order 42 ships tomorrow." in page and "Where is order 42?" in page
    plain = client.get(f"/requests/{seeded.events[3].id}").text
    assert "Not captured" in plain
    assert client.get("/requests/no-such-id").status_code == 404


def test_traces_list_and_tree_with_totals_equal_the_trace_api(client: TestClient, seeded: Seeded) -> None:
    login(client, seeded.keys["read"])
    listing = rows(client.get("/traces").text, "traces")
    assert [r["trace"] for r in listing] == ["trace-other", TRACE_ID]
    page = client.get(f"/traces/{TRACE_ID}").text
    tree = rows(page, "trace-tree")
    root = seeded.trace_root
    by_id = {e.id: e for e in seeded.events}
    assert [(by_id[r["id"]].id == root, r["depth"]) for r in tree] == [(True, "0"), (False, "1"), (False, "2"),
                                                                       (False, "1")]  # fmt: skip
    want = api(client, seeded.keys["read"], f"/v1/traces/{TRACE_ID}")["totals"]
    assert attrs(page, "trace-cost", "data-value") == want["total_cost"]
    assert attrs(page, "trace-requests", "data-value") == str(want["requests"]) == "4"
    assert listing[1]["cost"] == want["total_cost"]
    assert client.get("/traces/nope").status_code == 404


# -- budgets, keys, billing -------------------------------------------------------------------------
def test_budget_create_status_and_delete_match_the_budget_api(client: TestClient, seeded: Seeded) -> None:
    # the seeded events end 3 h before now: in a month's first hours the monthly budgets would hold none of them
    # (0 spend on any 1st of a month, before 03:00 UTC); one more event for every budgeted scope, at now
    from datetime import datetime, timezone

    from dashboard_support import _event
    from meterline.store.backend import open_stores

    writer, reader = open_stores(seeded.database)
    try:
        writer.insert([_event(408, datetime.now(timezone.utc))])  # acme, key-web, team-a, a success
    finally:
        writer.close()
        if reader is not writer:
            reader.close()
    login(client, seeded.keys["admin"])
    token = csrf_of(client.get("/budgets").text)
    budgets = [("acme-monthly", "subscriber", "acme"), ("web-key", "api_key", "key-web"),
               ("web-key-hash", "api_key", key_hash("key-web")), ("team-a", "team", "team-a")]  # fmt: skip
    for name, scope, value in budgets:
        form = {"csrf_token": token, "name": name, "scope": scope, "scope_value": value, "period": "monthly",
                "limit_usd": "0.05", "thresholds": "50,80,100", "hard": "on"}  # fmt: skip
        assert client.post("/budgets", data=form, follow_redirects=False).status_code == 303
    bad = client.post("/budgets", data={**form, "name": "x", "limit_usd": "0.1e"})
    assert bad.status_code == 400 and "limit_usd: not a decimal number" in bad.text
    status = {b["name"]: b for b in api(client, seeded.keys["admin"], "/v1/budgets/status")}
    shown = {r["name"]: r for r in rows(client.get("/budgets").text, "budgets")}
    for name, *_ in budgets:
        assert Decimal(shown[name]["spend"]) > 0
        assert shown[name]["spend"] == status[name]["spend_usd"]
        assert shown[name]["percent"] == f"{status[name]['percent_used']:.2f}"
    r = client.post(f"/budgets/{status['web-key']['id']}/delete", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    assert "web-key" not in [b["name"] for b in api(client, seeded.keys["admin"], "/v1/budgets")]


def test_a_key_created_in_the_dashboard_is_shown_once_and_works(client: TestClient, seeded: Seeded) -> None:
    login(client, seeded.keys["admin"])
    token = csrf_of(client.get("/keys").text)
    r = client.post("/keys", data={"csrf_token": token, "scope": "read", "name": "finance"})
    new_key = attrs(r.text, "new-key", "value")
    assert new_key.startswith("ml_r_")
    assert api(client, new_key, "/v1/usage")["rows"][0]["requests"] == len(seeded.events)
    assert new_key not in client.get("/keys").text  # shown once
    bad = client.post("/keys", data={"csrf_token": token, "scope": "root"})
    assert bad.status_code == 400 and "scope: must be one of ingest, read, admin" in bad.text


def test_billing_page_says_not_configured_without_billing(client: TestClient, seeded: Seeded) -> None:
    login(client, seeded.keys["read"])
    page = client.get("/billing")
    assert page.status_code == 200 and "Billing is not configured" in page.text


# -- share links ------------------------------------------------------------------------------------
def test_a_share_link_shows_one_customer_their_usage_and_nothing_else(client: TestClient, seeded: Seeded) -> None:
    login(client, seeded.keys["admin"])
    token = csrf_of(client.get("/share").text)
    r = client.post("/share", data={"csrf_token": token, "customer": "acme", "days": "7"})
    link = attrs(r.text, "share-link", "value")
    path = link.split("testserver", 1)[1]
    anon = TestClient(client.app)  # no session at all
    page = anon.get(path)
    assert page.status_code == 200
    rp = range_params(client)
    want = api(client, seeded.keys["read"], "/v1/usage", subscriber_id="acme", start=rp["start"], end=rp["end"])
    assert attrs(page.text, "card-spend", "data-value") == want["rows"][0]["total_cost"]
    assert attrs(page.text, "card-requests", "data-value") == str(want["rows"][0]["requests"])
    for other in ("globex", "initech", "/requests/", "/explore", "Log out"):
        assert other not in page.text
    acme_ids = {e.id for e in seeded.events if e.subscriber_id == "acme"}
    assert {r["id"] for r in rows(page.text, "events")} <= acme_ids
    # the link cannot be turned into another customer's, into a session, or kept past its expiry
    body, mac = path.rsplit("/", 1)[1].split(".")
    forged = auth._b64(auth._unb64(body).replace(b"acme", b"globex"))
    assert anon.get(f"/share/{forged}.{mac}").status_code == 404
    anon.cookies.set(auth.SESSION_COOKIE, path.rsplit("/", 1)[1])
    assert anon.get("/", follow_redirects=False).status_code == 303
    secret = client.app.state.dashboard_secret
    expired = auth.share_token(secret, "acme", time.time() - 1)
    assert anon.get(f"/share/{expired}").status_code == 404
    for junk in ("x", "a.b", "!!!.???", "e30.e30", auth._b64(b"[1]") + "." + mac, "." * 5000):
        assert anon.get(f"/share/{junk}").status_code == 404, junk
    assert anon.get(f"{path}?subscriber_id=globex").text.count("globex") == 0  # query filters are ignored
    bad = client.post("/share", data={"csrf_token": token, "customer": "acme", "days": "400"})
    assert bad.status_code == 400 and "days: a whole number of days from 1 to 90" in bad.text


# -- assets and modes -------------------------------------------------------------------------------
def test_vendored_assets_are_served_and_nothing_outside_static(client: TestClient) -> None:
    r = client.get("/static/vendor/htmx-2.0.4.min.js")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert client.get("/static/vendor/uPlot-LICENSE.txt").status_code == 200
    for path in ("/static/../auth.py", "/static/%2e%2e/auth.py", "/static/templates/base.html", "/static/nope.js"):
        assert client.get(path).status_code == 404, path


def test_without_auth_on_loopback_the_dashboard_is_open(tmp_path: Any) -> None:
    db = f"sqlite:///{tmp_path / 'open.db'}"
    seed(db)
    with TestClient(create_app(Settings(database=db, auth=False))) as c:
        page = c.get("/")
        assert page.status_code == 200 and "Log out" not in page.text
        assert c.get("/keys").status_code == 200


def test_dashboard_secret_setting_signs_sessions_across_apps(tmp_path: Any) -> None:
    db = f"sqlite:///{tmp_path / 's.db'}"
    s = seed(db)
    settings = Settings(database=db, dashboard_secret="a-long-configured-secret")
    with TestClient(create_app(settings)) as one, TestClient(create_app(settings)) as two:
        login(one, s.keys["read"])
        two.cookies.set(auth.SESSION_COOKIE, one.cookies[auth.SESSION_COOKIE])
        assert two.get("/", follow_redirects=False).status_code == 200  # another replica accepts the session
    with TestClient(create_app(Settings(database=db))) as three:  # the per-install secret differs
        three.cookies.set(auth.SESSION_COOKIE, one.cookies[auth.SESSION_COOKIE])
        assert three.get("/", follow_redirects=False).status_code == 303


def test_demo_serve_keeps_a_dashboard_running_over_the_demo_data(tmp_path: Any) -> None:
    import os
    import signal
    import subprocess
    import sys
    import urllib.request

    from collector_support import SRC, free_port

    port = free_port()
    env = {**os.environ, "PYTHONPATH": SRC, "METERLINE_HOME": str(tmp_path), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    cmd = [sys.executable, "-m", "meterline", "demo", "--database", f"sqlite:///{tmp_path / 'demo.db'}", "--calls",
           "4", "--serve", "--port", str(port)]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        page = ""
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    page = r.read().decode()
                    break
            except OSError:
                time.sleep(0.3)
        assert 'data-testid="card-requests"' in page, "the dashboard did not come up"
        requests_shown = int(attrs(page, "card-requests", "data-value"))
        assert requests_shown >= 10  # 4 chat calls + Anthropic, stream, embedding, Router, refused call, SDK calls
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert f"Dashboard over the demo data: http://127.0.0.1:{port}/" in out


def test_a_trace_past_nine_million_dollars_is_summed_exactly(database: str) -> None:
    """Two $6M calls in one trace: an int64 sum of pico-dollars overflows (SQLite raised, a 500 on the page)."""
    from datetime import datetime, timezone
    from decimal import Decimal

    from meterline.core.event import UsageEvent
    from meterline.store import listings
    from meterline.store.backend import open_stores

    writer, reader = open_stores(database)
    try:
        big = Decimal("6000000.123456789012")
        t0 = datetime(2026, 11, 20, 12, tzinfo=timezone.utc)
        writer.insert([UsageEvent(provider="openai", model="gpt-4o", start_time=t0.replace(minute=m),
                                  trace_id="whale-trace", total_cost=big, input_cost=big) for m in (1, 2)])  # fmt: skip
        traces, _ = listings.recent_traces(reader)
        [whale] = [t for t in traces if t["trace_id"] == "whale-trace"]
        assert (whale["requests"], whale["total_cost"]) == (2, 2 * big)
    finally:
        writer.close()
        if reader is not writer:
            reader.close()
