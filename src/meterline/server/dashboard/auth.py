"""Dashboard sessions, CSRF tokens and customer share links, all signed with one HMAC-SHA256 secret.

- Session: ``ml_session`` cookie (HttpOnly, SameSite=Strict, Secure on https) holding the key's id, scope, an
  expiry and a random nonce, signed. The API key itself is never stored in the cookie nor put in a URL; a
  revoked key ends its sessions at the next request.
- CSRF: every POST carries ``csrf_token`` (form field) or ``X-CSRF-Token`` (htmx header) equal to
  HMAC(secret, "csrf:" + session nonce); the login form uses a double-submit cookie instead.
- Share link: ``/share/<token>``, the token a signed {customer, expiry}; it only ever reads that customer's rows.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

from fastapi import HTTPException, Request

SESSION_COOKIE = "ml_session"
LOGIN_CSRF_COOKIE = "ml_login_csrf"
SESSION_SECONDS = 12 * 3600
SHARE_DIMENSION = "subscriber_id"  # a customer is a subscriber_id value (the billing default)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret: bytes, purpose: str, payload: dict[str, Any]) -> str:
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    mac = hmac.new(secret, f"{purpose}.{body}".encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def unsign(secret: bytes, purpose: str, token: str) -> dict[str, Any] | None:
    """The payload of a token signed for ``purpose`` that has not expired, else None."""
    body, _, mac = token.partition(".")
    if not body or not mac:
        return None
    want = hmac.new(secret, f"{purpose}.{body}".encode(), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(want, _unb64(mac)):
            return None
        payload = json.loads(_unb64(body))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(payload, dict) or float(payload.get("exp", 0)) < time.time():
        return None
    return payload


@dataclasses.dataclass(frozen=True)
class Session:
    key_id: str
    key_name: str | None
    scope: str  # read | admin
    nonce: str

    @property
    def admin(self) -> bool:
        return self.scope == "admin"


def secret_of(request: Request) -> bytes:
    secret: bytes = request.app.state.dashboard_secret
    return secret


def new_session_cookie(secret: bytes, key_id: str, key_name: str | None, scope: str) -> str:
    payload = {
        "k": key_id,
        "n": key_name,
        "s": scope,
        "x": secrets.token_urlsafe(16),
        "exp": time.time() + SESSION_SECONDS,
    }
    return sign(secret, "session", payload)


def csrf_token(secret: bytes, nonce: str) -> str:
    return _b64(hmac.new(secret, f"csrf:{nonce}".encode(), hashlib.sha256).digest())


def session_of(request: Request) -> Session | None:
    """The signed-in session, or None. Without auth (``--no-auth`` on loopback) everyone is a local admin."""
    if hasattr(request.state, "dashboard_session"):
        cached: Session | None = request.state.dashboard_session
        return cached
    session: Session | None = None
    if not request.app.state.settings.auth:
        session = Session("local", "--no-auth", "admin", "local")
    else:
        token = request.cookies.get(SESSION_COOKIE)
        payload = unsign(secret_of(request), "session", token) if token else None
        if payload is not None and _key_active(request, str(payload["k"])):
            session = Session(str(payload["k"]), payload.get("n"), str(payload["s"]), str(payload["x"]))
    request.state.dashboard_session = session
    return session


def _key_active(request: Request, key_id: str) -> bool:
    from meterline.store.keys import list_keys

    # keys are few; a revoked key ends its dashboard sessions at once
    return any(k.id == key_id and k.active for k in list_keys(request.app.state.reader))


def require(request: Request, *, admin: bool = False) -> Session:
    """The session, else a redirect to the login page (303, back here after login); 403 for a read key on an
    admin page or action."""
    session = session_of(request)
    if session is None:
        from urllib.parse import quote

        back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        target = "/login" if request.method != "GET" else f"/login?next={quote(back, safe='')}"
        raise HTTPException(303, "sign in first", headers={"Location": target})
    if admin and not session.admin:
        raise HTTPException(403, "this page needs an admin key; you are signed in with a read key")
    return session


async def check_csrf(request: Request, session: Session) -> dict[str, str]:
    """The submitted form, after checking its CSRF token (403 when missing or wrong) and its Origin."""
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    same_origin(request)
    sent = request.headers.get("x-csrf-token") or form.get("csrf_token", "")
    if not hmac.compare_digest(sent.encode(), csrf_token(secret_of(request), session.nonce).encode()):
        raise HTTPException(403, "CSRF token missing or invalid: reload the page and try again")
    return form


def same_origin(request: Request) -> None:
    """Refuse a form post whose Origin names another site (behind a proxy, X-Forwarded-Host counts too)."""
    origin = request.headers.get("origin")
    if origin and origin != "null":
        hosts = {request.headers.get("host", ""), request.headers.get("x-forwarded-host", "")}
        if origin.split("://", 1)[-1] not in hosts - {""}:
            raise HTTPException(403, f"cross-origin form post from {origin} refused")


def share_token(secret: bytes, customer: str, expires_at: float) -> str:
    return sign(secret, "share", {"c": customer, "d": SHARE_DIMENSION, "exp": expires_at})


def share_customer(secret: bytes, token: str) -> tuple[str, float] | None:
    payload = unsign(secret, "share", token)
    if payload is None or payload.get("d") != SHARE_DIMENSION or not isinstance(payload.get("c"), str):
        return None
    return payload["c"], float(payload["exp"])
