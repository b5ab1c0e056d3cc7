"""The dashboard in a real browser: Selenium driving headless Debian ``chromium`` (with ``chromium-driver``)
against a collector on a free port, on seeded data. Skipped locally with the reason when chromium, its
driver or selenium is missing; under CI=true that is a failure (.ci/run installs them).

With METERLINE_SCREENSHOTS=<dir> the walk-through also saves one PNG per page (docs/screenshots/)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from collector_support import ThreadCollector, request
from dashboard_support import CUSTOMERS, TRACE_ID, Seeded, seed

CHROMIUM = os.environ.get("METERLINE_CHROMIUM", "/usr/bin/chromium")
DRIVER = os.environ.get("METERLINE_CHROMEDRIVER", "/usr/bin/chromedriver")
SHOTS = os.environ.get("METERLINE_SCREENSHOTS")


def _unavailable() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install 'meterline[browser]')"
    for path, pkg in ((CHROMIUM, "chromium"), (DRIVER, "chromium-driver")):
        if not (Path(path).exists() or shutil.which(path)):
            return f"{path} not found (apt-get install -y {pkg})"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = _unavailable()
    if reason:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason + " (CI=true: the browser tests must run)")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1366,900",
                "--disable-gpu", "--no-first-run"):  # fmt: skip
        opts.add_argument(arg)
    opts.binary_location = CHROMIUM
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(DRIVER))
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ThreadCollector, Seeded]]:
    db = f"sqlite:///{tmp_path_factory.mktemp('dash') / 'meterline.db'}"
    seeded = seed(db)
    with ThreadCollector(database=db) as collector:
        yield collector, seeded


@pytest.fixture
def b(browser: Any, site: tuple[ThreadCollector, Seeded]) -> Any:
    browser.delete_all_cookies()
    browser.get(site[0].url + "/static/dashboard.css")  # same origin, so cookies can be cleared
    browser.delete_all_cookies()
    return browser


def css(driver: Any, selector: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, selector)


def all_css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(driver.find_elements(By.CSS_SELECTOR, selector))


def wait_for(cond: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            got = cond()
            if got:
                return got
        except Exception:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def shot(driver: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        height = driver.execute_script("return document.body.scrollHeight")
        driver.set_window_size(1366, min(max(700, int(height) + 40), 2200))
        time.sleep(0.3)  # let the page lay out (and charts redraw) at the new size
        driver.save_screenshot(str(Path(SHOTS) / f"{name}.png"))
        driver.set_window_size(1366, 900)


def log_in(driver: Any, url: str, key: str) -> None:
    driver.get(url + "/")
    wait_for(lambda: "/login" in driver.current_url)
    css(driver, "[data-testid=api-key]").send_keys(key)
    css(driver, "[data-testid=login]").click()
    wait_for(lambda: all_css(driver, "[data-testid=who]"))


def api(url: str, key: str, path: str) -> Any:
    status, body = request(url + path, key=key)
    assert status == 200, body
    return body


def default_range() -> str:
    today = datetime.now(timezone.utc).date()
    start = datetime.combine(today - timedelta(days=29), datetime.min.time(), timezone.utc)
    end = datetime.combine(today + timedelta(days=1), datetime.min.time(), timezone.utc)
    return f"start={start.isoformat().replace('+00:00', 'Z')}&end={end.isoformat().replace('+00:00', 'Z')}"


def console_errors(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_admin_clicks_through_every_page_and_sees_the_apis_numbers(
    b: Any, site: tuple[ThreadCollector, Seeded]
) -> None:
    from selenium.webdriver.support.ui import Select

    collector, seeded = site
    url, key = collector.url, seeded.keys["admin"]
    log_in(b, url, key)
    # Overview: cards equal GET /v1/usage over the same range, the chart is drawn, no CSP/JS errors
    total = api(url, key, f"/v1/usage?{default_range()}")["rows"][0]
    assert css(b, "[data-testid=card-spend]").get_attribute("data-value") == total["total_cost"]
    assert css(b, "[data-testid=card-requests]").get_attribute("data-value") == str(total["requests"])
    shown = css(b, "[data-testid=card-spend] .v").text
    assert shown == f"${Decimal(total['total_cost']).quantize(Decimal('0.01')):,}"
    wait_for(lambda: all_css(b, "[data-testid=spend-chart] canvas"))
    weeks = api(url, key, f"/v1/usage?{default_range()}&bucket=week")["rows"]
    Select(css(b, "[data-testid=bucket]")).select_by_value("week")  # htmx swaps the chart panel
    wait_for(lambda: len(all_css(b, "[data-testid=spend-table] tr[data-bucket]")) == len(weeks))
    wait_for(lambda: all_css(b, "[data-testid=spend-chart] canvas"))
    assert [r.get_attribute("data-cost") for r in all_css(b, "[data-testid=spend-table] tr[data-bucket]")] == [
        w["total_cost"] for w in weeks
    ]
    Select(css(b, "[data-testid=bucket]")).select_by_value("day")
    wait_for(lambda: len(all_css(b, "[data-testid=spend-table] tr[data-bucket]")) > len(weeks))
    wait_for(lambda: all_css(b, "[data-testid=spend-chart] canvas"))
    assert console_errors(b) == []
    shot(b, "overview")

    # Explorer: group by customer then model, numbers equal the API's
    css(b, "[data-testid=nav-explore]").click()
    Select(wait_for(lambda: css(b, "[data-testid=group1]"))).select_by_visible_text("subscriber_id")
    Select(css(b, "[data-testid=group2]")).select_by_visible_text("model")
    Select(css(b, "[data-testid=explore-bucket]")).select_by_visible_text("day")
    css(b, "[data-testid=explore-apply]").click()
    wait_for(lambda: "group1=subscriber_id" in b.current_url)
    want = api(url, key, f"/v1/usage?{default_range()}&group_by=subscriber_id,model&bucket=day")["rows"]
    got = all_css(b, "[data-testid=explore-table] tr[data-key]")
    assert len(got) == min(len(want), 100)
    assert {(r.get_attribute("data-bucket"), r.get_attribute("data-key"), r.get_attribute("data-cost"))
            for r in got} <= {(w["bucket"], f"{w['subscriber_id']}|{w['model']}", w["total_cost"])
                              for w in want}  # fmt: skip
    assert css(b, "[data-testid=csv]").get_attribute("href").startswith(url + "/explore.csv?")
    Select(css(b, "[data-testid=explore-bucket]")).select_by_visible_text("none")
    css(b, "[data-testid=explore-apply]").click()
    wait_for(lambda: "bucket=&" in b.current_url or b.current_url.endswith("bucket="))
    shot(b, "explorer")

    # Requests → event detail with the cost per token class
    css(b, "[data-testid=nav-requests]").click()
    first = wait_for(lambda: all_css(b, "[data-testid=events] tr[data-id]"))[0]
    event_id, cost = first.get_attribute("data-id"), first.get_attribute("data-cost")
    shot(b, "requests")
    css(b, f"tr[data-id='{event_id}'] a").click()
    wait_for(lambda: event_id in b.current_url)
    assert css(b, "[data-testid=total]").get_attribute("data-cost") == cost
    assert "Order 42 ships tomorrow." in css(b, "[data-testid=content]").text  # the newest event has content
    shot(b, "request-detail")

    # Traces → the tree with per-step cost and the trace API's total
    css(b, "[data-testid=nav-traces]").click()
    wait_for(lambda: css(b, f"tr[data-trace='{TRACE_ID}'] a")).click()
    wait_for(lambda: all_css(b, "[data-testid=trace-tree] tr[data-id]"))
    totals = api(url, key, f"/v1/traces/{TRACE_ID}")["totals"]
    assert css(b, "[data-testid=trace-cost]").get_attribute("data-value") == totals["total_cost"]
    assert [r.get_attribute("data-depth") for r in all_css(b, "[data-testid=trace-tree] tr[data-id]")] == [
        "0", "1", "2", "1"]  # fmt: skip
    shot(b, "trace")

    # Budgets: create one in the form, its spend equals the budget API's
    css(b, "[data-testid=nav-budgets]").click()
    css(b, "[data-testid=budget-name]").send_keys("acme-monthly")
    Select(css(b, "[data-testid=budget-scope]")).select_by_visible_text("subscriber")
    css(b, "[data-testid=budget-value]").send_keys("acme")
    css(b, "[data-testid=budget-limit]").send_keys("1.50")
    css(b, "[data-testid=budget-create]").click()
    row = wait_for(lambda: css(b, "tr[data-name='acme-monthly']"))
    status = next(x for x in api(url, key, "/v1/budgets/status") if x["name"] == "acme-monthly")
    assert row.get_attribute("data-spend") == status["spend_usd"]
    shot(b, "budgets")

    # Keys: a new key is shown once
    css(b, "[data-testid=nav-keys]").click()
    css(b, "[data-testid=key-name]").send_keys("finance-team")
    Select(css(b, "[data-testid=key-scope]")).select_by_visible_text("read")
    css(b, "[data-testid=key-create]").click()
    new_key = wait_for(lambda: css(b, "[data-testid=new-key]")).get_attribute("value")
    assert new_key.startswith("ml_r_") and api(url, new_key, "/v1/usage")["rows"][0]["requests"] > 0
    shot(b, "keys")

    # Billing: set up over the API (acme on a plan with a wallet, globex, last month finalized), then the page
    # shows each customer's wallet balance and the live preview total exactly as the billing API does
    css(b, "[data-testid=nav-billing]").click()
    assert "Billing is not configured" in wait_for(lambda: css(b, "[data-testid=billing-off]")).text
    last_month = (datetime.now(timezone.utc).replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    this_month = datetime.now(timezone.utc).strftime("%Y-%m")
    year_ago = (datetime.now(timezone.utc) - timedelta(days=400)).date().isoformat()
    for path, body in (
        ("/v1/customers", {"id": "acme", "name": "Acme Corp"}),
        ("/v1/customers", {"id": "globex", "name": "Globex"}),
        ("/v1/plans", {"id": "pro", "rules": [{"model": "*", "markup_percent": "20"}]}),
        ("/v1/customers/acme/subscriptions", {"plan": "pro", "start": year_ago}),
        ("/v1/wallets/acme/grants", {"amount_usd": "5.00", "note": "prepaid"}),
        (f"/v1/invoices/finalize?period={last_month}", None),
    ):
        assert request(url + path, "POST", body, key=key)[0] in (200, 201), path
    b.refresh()
    rows = {
        r.get_attribute("data-customer"): r
        for r in wait_for(lambda: all_css(b, "[data-testid=billing-customers] tr[data-customer]"))
    }
    assert set(rows) == {"acme", "globex"} and rows["acme"].get_attribute("data-plan") == "pro"
    assert rows["acme"].get_attribute("data-balance") == api(url, key, "/v1/wallets/acme")["balance_usd"]
    draft = css(b, "[data-testid=billing-customers] tr[data-status=draft][data-customer=acme]")
    preview = api(url, key, f"/v1/invoices/preview?customer=acme&period={this_month}")
    assert draft.get_attribute("data-total") == preview["total_usd"]
    numbers = [
        r.get_attribute("data-number") for r in all_css(b, "[data-testid=billing-invoices] tr[data-status=final]")
    ]
    assert sorted(numbers) == sorted(i["number"] for i in api(url, key, "/v1/invoices")) and numbers
    shot(b, "billing")
    css(b, "[data-testid=invoice-print]").click()
    wait_for(lambda: "/billing/invoices/" in b.current_url)
    assert b.title.startswith("Invoice INV-") and "Total due" in b.find_element("tag name", "body").text
    assert console_errors(b) == []
    b.back()

    # Share: an admin creates a link; opened without a session it shows acme only
    css(b, "[data-testid=nav-share]").click()
    css(b, "[data-testid=share-customer]").send_keys("acme")
    css(b, "[data-testid=share-create]").click()
    link = wait_for(lambda: css(b, "[data-testid=share-link]")).get_attribute("value")
    shot(b, "share-create")
    css(b, "[data-testid=logout]").click()
    wait_for(lambda: "/login" in b.current_url)
    b.get(link)
    wait_for(lambda: css(b, "[data-testid=card-spend]"))
    acme = api(url, key, f"/v1/usage?{default_range()}&subscriber_id=acme")["rows"][0]
    assert css(b, "[data-testid=card-spend]").get_attribute("data-value") == acme["total_cost"]
    text = b.find_element("tag name", "body").text
    assert "acme" in text and all(other not in text for other in CUSTOMERS if other != "acme")
    assert (
        css(b, "[data-testid=share-wallet]").get_attribute("data-balance")
        == api(url, key, "/v1/wallets/acme")["balance_usd"]
    )
    assert all_css(b, "[data-testid=share-invoices] tr[data-status=final]")  # acme's finalized invoice
    wait_for(lambda: all_css(b, "[data-chart] canvas"))
    shot(b, "share-view")


def test_a_read_key_sees_no_admin_actions_and_is_refused_them(b: Any, site: tuple[ThreadCollector, Seeded]) -> None:
    collector, seeded = site
    log_in(b, collector.url, seeded.keys["read"])
    assert all_css(b, "[data-testid=nav-keys]") == [] and all_css(b, "[data-testid=nav-share]") == []
    b.get(collector.url + "/keys")
    assert "needs an admin key" in b.find_element("tag name", "body").text
    b.get(collector.url + "/budgets")
    assert all_css(b, "[data-testid=budget-form]") == [] and all_css(b, "button.danger") == []
    # a forged form (with this session's valid CSRF token) is still refused for the read key
    token = css(b, "input[name=csrf_token]").get_attribute("value")
    b.execute_script(
        "const f = document.createElement('form'); f.method = 'post'; f.action = '/keys';"
        "for (const [k, v] of [['csrf_token', arguments[0]], ['scope', 'admin']]) {"
        "  const i = document.createElement('input'); i.name = k; i.value = v; f.appendChild(i); }"
        "document.body.appendChild(f); f.submit();",
        token,
    )
    wait_for(lambda: "admin key" in b.find_element("tag name", "body").text)


def test_csrf_is_enforced_in_the_browser(b: Any, site: tuple[ThreadCollector, Seeded]) -> None:
    collector, seeded = site
    log_in(b, collector.url, seeded.keys["admin"])
    b.get(collector.url + "/budgets")
    post = (
        "const done = arguments[arguments.length - 1];"
        "const body = new URLSearchParams({name: arguments[0], scope: 'team', scope_value: 'team-a', limit_usd: '3'});"
        "if (arguments[1]) body.set('csrf_token', arguments[1]);"
        "fetch('/budgets', {method: 'POST', body, redirect: 'manual'}).then(r => done(r.status));"
    )
    assert b.execute_async_script(post, "no-token", None) == 403
    assert b.execute_async_script(post, "bad-token", "A" * 43) == 403
    token = css(b, "input[name=csrf_token]").get_attribute("value")
    assert b.execute_async_script(post, "with-token", token) in (0, 303)  # opaque redirect = accepted
    names = [x["name"] for x in api(collector.url, seeded.keys["admin"], "/v1/budgets")]
    assert "with-token" in names and "no-token" not in names and "bad-token" not in names


def test_a_share_link_cannot_be_bent_to_another_customer(b: Any, site: tuple[ThreadCollector, Seeded]) -> None:
    from meterline.server.dashboard import auth

    collector, seeded = site
    secret = collector.app.state.dashboard_secret
    token = auth.share_token(secret, "globex", time.time() + 3600)
    b.get(f"{collector.url}/share/{token}?subscriber_id=acme")
    wait_for(lambda: css(b, "[data-testid=card-spend]"))
    globex = api(collector.url, seeded.keys["read"], f"/v1/usage?{default_range()}&subscriber_id=globex")["rows"][0]
    assert css(b, "[data-testid=card-spend]").get_attribute("data-value") == globex["total_cost"]
    assert "acme" not in b.find_element("tag name", "body").text
    body, mac = token.split(".")
    forged = auth._b64(auth._unb64(body).replace(b"globex", b"acme\x00\x00"[:4] + b"xx"))
    b.get(f"{collector.url}/share/{forged}.{mac}")
    assert "invalid or has expired" in b.find_element("tag name", "body").text
    b.get(collector.url + "/")  # a share link is no session
    wait_for(lambda: "/login" in b.current_url)
