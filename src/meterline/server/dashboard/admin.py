"""Budgets (status for every signed-in key; create/delete admin), keys (admin), share links (admin), billing.

Every change is a POST with a CSRF token and needs an admin session: a read key gets 403.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from meterline.budgets import store as budget_store
from meterline.server.dashboard import auth, billing_view
from meterline.server.dashboard.common import PAGE_SIZE, SECURITY_HEADERS, render, start_timer
from meterline.store import keys as key_store
from meterline.store.base import BillingStore, ReportStore

router = APIRouter(dependencies=[Depends(start_timer)])
SHARE_MAX_DAYS = 90


def _page(items: list[Any], request: Request) -> tuple[list[Any], int, bool]:
    try:
        page = max(0, int(request.query_params.get("page") or 0))
    except ValueError:
        raise HTTPException(400, "page: a whole number") from None
    return items[page * PAGE_SIZE : (page + 1) * PAGE_SIZE], page, (page + 1) * PAGE_SIZE < len(items)


def budget_rows(store: ReportStore, budgets: list[budget_store.Budget]) -> list[dict[str, Any]]:
    now = datetime.now(timezone.utc)
    out = []
    for b in budgets:
        start = b.period_start(now)
        spent = budget_store.dashboard_spend(store, b, now)
        out.append(
            {
                "b": b,
                "period_start": start,
                "spend": spent,
                "percent": float(spent * 100 / b.limit_usd),
                "exceeded": spent >= b.limit_usd,
                "alerts": budget_store.fired_alerts(store, b, start),
            }
        )
    return out


@router.get("/budgets", response_class=HTMLResponse)
def budgets_page(request: Request) -> Response:
    return _budgets(request)


def _budgets(request: Request, error: str | None = None, status_code: int = 200) -> Response:
    auth.require(request)
    store = request.app.state.reader
    shown, page, has_next = _page(budget_store.list_budgets(store), request)
    return render(
        request,
        "budgets.html",
        {
            "page": "budgets",
            "rows": budget_rows(store, shown),
            "page_no": page,
            "has_next": has_next,
            "scopes": list(budget_store.SCOPES),
            "periods": budget_store.PERIODS,
            "error": error,
        },
        status_code,
    )


@router.post("/budgets")
async def create_budget(request: Request) -> Response:
    session = auth.require(request, admin=True)
    form = await auth.check_csrf(request, session)
    # fields left out of the form take the budget defaults (e.g. period monthly)
    data: dict[str, Any] = {k: form[k] for k in ("name", "scope", "scope_value", "period", "limit_usd") if form.get(k)}
    data["thresholds"] = form.get("thresholds") or list(budget_store.DEFAULT_THRESHOLDS)
    data["hard"] = form.get("hard") == "on"
    if form.get("webhook_url"):
        data["webhook_url"] = form["webhook_url"]
    try:
        await run_in_threadpool(budget_store.create_budget, request.app.state.writer, data)
    except budget_store.BudgetError as exc:
        return await run_in_threadpool(_budgets, request, str(exc), 400)
    return RedirectResponse("/budgets", status_code=303)


@router.post("/budgets/{budget_id}/delete")
async def delete_budget(budget_id: str, request: Request) -> Response:
    session = auth.require(request, admin=True)
    await auth.check_csrf(request, session)
    if not await run_in_threadpool(budget_store.delete_budget, request.app.state.writer, budget_id):
        raise HTTPException(404, f"no budget with id or name {budget_id!r}")
    return RedirectResponse("/budgets", status_code=303)


@router.get("/keys", response_class=HTMLResponse)
def keys_page(request: Request) -> Response:
    return _keys(request)


def _keys(request: Request, created: dict[str, Any] | None = None, error: str | None = None) -> Response:
    auth.require(request, admin=True)
    keys = key_store.list_keys(request.app.state.reader)
    keys.sort(key=lambda k: (k.revoked_at is not None, -k.created_at))
    shown, page, has_next = _page(keys, request)
    return render(
        request,
        "keys.html",
        {
            "page": "keys",
            "keys": shown,
            "page_no": page,
            "has_next": has_next,
            "scopes": key_store.SCOPES,
            "created": created,
            "error": error,
            "fmt_time": lambda t: datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M") if t else "",
        },
        400 if error else 200,
    )


@router.post("/keys", response_class=HTMLResponse)
async def create_key(request: Request) -> Response:
    """Create a key and show it once, in this answer (never in a URL, never again)."""
    session = auth.require(request, admin=True)
    form = await auth.check_csrf(request, session)
    try:
        clear, rec = await run_in_threadpool(
            key_store.create_key, request.app.state.writer, form.get("scope", ""), form.get("name") or None
        )
    except ValueError as exc:
        return await run_in_threadpool(_keys, request, None, str(exc))
    return await run_in_threadpool(_keys, request, {"key": clear, "rec": rec})


@router.post("/keys/{key_id}/revoke")
async def revoke_key(key_id: str, request: Request) -> Response:
    session = auth.require(request, admin=True)
    await auth.check_csrf(request, session)
    rec = await run_in_threadpool(key_store.revoke_key, request.app.state.writer, key_id)
    if rec is None:
        raise HTTPException(404, f"no single active key with id or prefix {key_id!r}")
    request.app.state.key_cache.clear()
    return RedirectResponse("/keys", status_code=303)


@router.get("/share", response_class=HTMLResponse)
def share_page(request: Request) -> Response:
    auth.require(request, admin=True)
    return render(request, "share_new.html", {"page": "share", "link": None, "max_days": SHARE_MAX_DAYS})


@router.post("/share", response_class=HTMLResponse)
async def create_share(request: Request) -> Response:
    """A signed, expiring, read-only link to one customer's own usage."""
    session = auth.require(request, admin=True)
    form = await auth.check_csrf(request, session)
    customer = (form.get("customer") or "").strip()
    try:
        days = int(form.get("days") or 7)
    except ValueError:
        days = 0
    error = None
    if not customer or len(customer) > 1024:
        error = "customer: the subscriber_id to share (required)"
    elif not 1 <= days <= SHARE_MAX_DAYS:
        error = f"days: a whole number of days from 1 to {SHARE_MAX_DAYS}"
    if error:
        ctx: dict[str, Any] = {"page": "share", "link": None, "max_days": SHARE_MAX_DAYS, "error": error}
        return render(request, "share_new.html", ctx, 400)
    expires = time.time() + days * 86400
    token = auth.share_token(auth.secret_of(request), customer, expires)
    link = str(request.base_url).rstrip("/") + f"/share/{token}"
    ctx = {
        "error": None,
        "page": "share",
        "link": link,
        "customer": customer,
        "expires": datetime.fromtimestamp(expires, timezone.utc),
        "max_days": SHARE_MAX_DAYS,
    }
    return render(request, "share_new.html", ctx)


@router.get("/billing", response_class=HTMLResponse)
def billing_page(request: Request) -> Response:
    auth.require(request)
    pages = []
    for name in ("page", "ipage"):
        try:
            pages.append(max(0, int(request.query_params.get(name) or 0)))
        except ValueError:
            raise HTTPException(400, f"{name}: a whole number") from None
    data = billing_view.overview(request.app.state.reader, pages[0], pages[1], PAGE_SIZE)
    return render(request, "billing.html", {"page": "billing", "billing": data})


def printable_response(
    store: BillingStore, *, number: str | None, customer: str | None, period: str | None
) -> Response:
    """Billing's own printable invoice page (``billing/render.py``) with the dashboard's security headers."""
    try:
        found = billing_view.printable(store, number=number, customer=customer, period=period)
    except ValueError as exc:  # BillingError: a bad period
        raise HTTPException(400, str(exc)) from None
    if found is None:
        raise HTTPException(404, f"no invoice {number!r}" if number else f"no customer {customer!r}")
    return HTMLResponse(found[0], headers=SECURITY_HEADERS)


@router.get("/billing/invoices/{number}", response_class=HTMLResponse)
def invoice_page(number: str, request: Request) -> Response:
    """A finalized invoice, printable (read scope)."""
    auth.require(request)
    return printable_response(request.app.state.reader, number=number, customer=None, period=None)


@router.get("/billing/preview", response_class=HTMLResponse)
def preview_page(request: Request, customer: str = "", period: str = "") -> Response:
    """The live draft of a customer's period (or its finalized invoice), printable (read scope)."""
    auth.require(request)
    if not customer or not period:
        raise HTTPException(400, "customer and period (YYYY-MM) are required")
    return printable_response(request.app.state.reader, number=None, customer=customer, period=period)
