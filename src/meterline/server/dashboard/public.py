"""Pages reachable without a session: login, logout and the customer share view."""

from __future__ import annotations

import hmac
import secrets
import time
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from meterline.server.dashboard import auth, billing_view, views
from meterline.server.dashboard.common import SECURITY_HEADERS, render, start_timer, time_range
from meterline.store import keys as key_store
from meterline.store.query import QueryError

router = APIRouter(dependencies=[Depends(start_timer)])


def _safe_next(target: str | None) -> str:
    """Only a local path: never redirect to another site after login."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> Response:
    return _login(request, next)


def _login(request: Request, next: str = "/", error: str | None = None) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(
        request, "login.html", {"login_csrf": token, "next": _safe_next(next), "error": error}, 401 if error else 200
    )
    response.set_cookie(
        auth.LOGIN_CSRF_COOKIE, token, max_age=3600, httponly=True, samesite="strict", secure=_secure(request)
    )
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    auth.same_origin(request)
    cookie = request.cookies.get(auth.LOGIN_CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), form.get("csrf_token", "").encode()):
        raise HTTPException(403, "CSRF token missing or invalid: reload the login page and try again")
    next_url = _safe_next(form.get("next"))
    key = form.get("api_key", "").strip()
    rec = await run_in_threadpool(key_store.find_key, request.app.state.reader, key) if key else None
    if rec is None or rec.scope not in ("read", "admin"):
        reason = (
            "this key has scope 'ingest': sign in with a read or admin key"
            if rec is not None
            else "unknown or revoked API key"
        )
        return _login(request, next_url, reason)
    response = RedirectResponse(next_url, status_code=303)
    cookie_value = auth.new_session_cookie(auth.secret_of(request), rec.id, rec.name, rec.scope)
    response.set_cookie(
        auth.SESSION_COOKIE,
        cookie_value,
        max_age=auth.SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/",
    )
    response.delete_cookie(auth.LOGIN_CSRF_COOKIE)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    session = auth.require(request)
    await auth.check_csrf(request, session)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(auth.SESSION_COOKIE, path="/")
    return response


def _shared(request: Request, token: str) -> tuple[str, float]:
    found = auth.share_customer(auth.secret_of(request), token)
    if found is None:
        raise HTTPException(404, "this share link is invalid or has expired")
    return found


@router.get("/share/{token}", response_class=HTMLResponse)
def share_view(token: str, request: Request) -> Response:
    """One customer's own usage, wallet and invoices, read-only, until the link expires."""
    customer, expires = _shared(request, token)
    store = request.app.state.reader
    try:
        tr = time_range(request)
    except QueryError as exc:
        raise HTTPException(400, str(exc)) from None
    only = {auth.SHARE_DIMENSION: [customer]}  # every read below is filtered to this customer, and only this
    context: dict[str, Any] = views.customer_usage(store, tr, only, request.query_params.get("before"))
    context |= {
        "customer": customer,
        "expires": datetime.fromtimestamp(expires, timezone.utc),
        "tr": tr,
        "token": token,
        "billing": billing_view.for_customer(store, customer),
        "share": True,
        "now": time.time(),
    }
    return render(request, "share.html", context)


@router.get("/share/{token}/invoices/{number}", response_class=HTMLResponse)
def share_invoice(token: str, number: str, request: Request) -> Response:
    """The link's customer's own finalized invoice, printable; another customer's number is a 404."""
    customer, _ = _shared(request, token)
    found = billing_view.printable(request.app.state.reader, number=number)
    if found is None or found[1].get("customer") != customer:
        raise HTTPException(404, f"no invoice {number!r}")
    return HTMLResponse(found[0], headers=SECURITY_HEADERS)


@router.get("/share/{token}/preview", response_class=HTMLResponse)
def share_preview(token: str, request: Request, period: str = "") -> Response:
    """The link's customer's draft (or finalized invoice) of ``period``, printable."""
    customer, _ = _shared(request, token)
    try:
        found = billing_view.printable(request.app.state.reader, customer=customer, period=period)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    if found is None:
        raise HTTPException(404, f"no invoice for {period!r}")
    return HTMLResponse(found[0], headers=SECURITY_HEADERS)
