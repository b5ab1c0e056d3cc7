"""Collector hardening shared by every route: refusals instead of 5xx, an honest OpenAPI contract, and an
access log without secrets.

- ``NulGuard``: a request whose path or query carries a NUL character is a 400 before any route runs
  (PostgreSQL refuses NUL in text; no identifier, filter or time may contain one).
- ``method_not_allowed``: 405 with an ``Allow`` header listing every method of the path (Starlette names
  only the methods of the first route that matched the path).
- ``declare_errors``: every operation's OpenAPI entry lists the error statuses it can answer, each with the
  ``{"detail": ...}`` body, and ``POST /v1/events`` documents the bare-array body it accepts.
- ``AccessLogScrubber``: uvicorn's access log prints the full URL; values of query parameters named like
  a secret (``api_key``, ``key``, ``token``...) and anything shaped like a meterline key are replaced.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from meterline.server import errors

ERROR = {
    "type": "object",
    "properties": {"detail": {"description": "what is wrong (a string, or FastAPI's list of field errors)"}},
    "required": ["detail"],
}
COMPAT_PREFIXES = ("/meter/", "/lago/", "/openmeter/")
_REASONS = {
    "400": "bad parameter or body (the detail names it)",
    "401": "missing, unknown or revoked API key",
    "403": "the API key's scope does not allow this operation",
    "404": "not found",
    "405": "method not allowed (see the Allow header)",
    "409": "conflict (already exists)",
    "413": "body or batch too large (the detail names the limit)",
    "415": "unsupported Content-Encoding",
    "422": "a field of the body or a parameter has a bad value or type",
    "503": "the store is unavailable; retry after the Retry-After header's seconds",
}


class NulGuard:
    """Pure ASGI middleware: 400 for a NUL (raw or %00) in the path or the query string."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw = scope.get("query_string", b"") + scope.get("raw_path", b"")
            if "\x00" in scope.get("path", "") or b"\x00" in raw or b"%00" in raw:
                response = JSONResponse({"detail": "the URL contains a NUL character (%00)"}, status_code=400)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    methods: set[str] = set()
    for route in app.router.routes:
        match, _ = route.matches({**scope, "method": "__none__"})
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def install(app: FastAPI) -> None:
    """Register the middleware, the 405 handler and the OpenAPI error declarations on ``app``."""
    from starlette.exceptions import HTTPException as StarletteHTTPException

    app.add_middleware(NulGuard)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(app, request.scope))
        if exc.status_code in errors.CLIENT_STATUSES and isinstance(exc.detail, str):
            # 401/403 from the API-key dependency: a compatible-ingest route answers in its client's format
            return errors.answer(request, exc.status_code, exc.detail, headers)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RecursionError)
    async def _too_deep(request: Request, exc: RecursionError) -> JSONResponse:
        return JSONResponse({"detail": "body nested too deeply"}, status_code=400)

    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            declare_errors(original())
        return app.openapi_schema or original()

    app.openapi = openapi  # type: ignore[method-assign]
    install_access_log_scrubber()


def declare_errors(schema: dict[str, Any]) -> None:
    """Add the error answers every operation can give to its OpenAPI entry (in place)."""
    schema.setdefault("components", {}).setdefault("schemas", {})["ErrorDetail"] = ERROR
    ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorDetail"}}}}
    # compatible-ingest routes answer errors in their client's own format (Revenium's Spring errors, Lago's
    # validation_errors, OpenMeter's problem+json, OTLP's status): declared as "a JSON object"
    any_object = {"type": "object", "description": "the client's own error format"}
    client_format = {"content": {t: {"schema": any_object} for t in ("application/json", "application/problem+json")}}
    for path, item in schema.get("paths", {}).items():
        compat = path.startswith(COMPAT_PREFIXES) or path == "/v1/traces"
        for method, op in item.items():
            codes = ["400", "405"]
            if path not in ("/healthz", "/metrics"):  # any route that reads the store: 503 while it is down
                codes.append("503")
            if path.startswith("/v1/"):
                codes += ["401", "403", "422"]
            if "{" in path:
                codes.append("404")
            if path == "/v1/events" and method == "post":
                codes += ["413", "415"]
                _accept_bare_array(op)
            if path in ("/v1/budgets", "/v1/keys", "/v1/customers", "/v1/plans") and method == "post":
                codes.append("409")
            if path == "/v1/traces" and method == "post":  # OTLP answers in the request's encoding
                ok = op.setdefault("responses", {}).get("200")
                if ok is not None:
                    ok.setdefault("content", {}).setdefault("application/x-protobuf", {"schema": {"type": "string"}})
            responses = op.setdefault("responses", {})
            for code in codes:
                entry = responses.setdefault(code, {"description": _REASONS[code]})
                if "content" not in entry:
                    entry.update(client_format if compat else ref)


def _accept_bare_array(op: dict[str, Any]) -> None:
    content = op.get("requestBody", {}).get("content", {}).get("application/json", {})
    batch = content.get("schema")
    if batch is not None and "anyOf" not in batch:
        items = batch.get("properties", {}).get("events", {"type": "array", "items": {"type": "object"}})
        content["schema"] = {"anyOf": [batch, {**items, "description": "the events alone (a bare array)"}]}


# -- access log ------------------------------------------------------------------------------------
_SECRET_NAME = re.compile(r"(?i)(key|token|secret|passw|auth|signature|sig\b|credential)")
_KEY_SHAPE = re.compile(r"ml_[a-z]_[A-Za-z0-9_\-]{8,}")
_QUERY_PARAM = re.compile(r"([?&])([^=&#]*)=([^&#]*)")


def scrub_url(path: str) -> str:
    """``path`` with secret-looking query values and meterline keys replaced by ``[redacted]``."""

    def one(m: re.Match[str]) -> str:
        name = m.group(2)
        value = "[redacted]" if _SECRET_NAME.search(name) else m.group(3)
        return f"{m.group(1)}{name}={value}"

    return _KEY_SHAPE.sub("[redacted]", _QUERY_PARAM.sub(one, path))


class AccessLogScrubber(logging.Filter):
    """On ``uvicorn.access``: rewrites the URL argument of each access record (see :func:`scrub_url`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], scrub_url(args[2]), *args[3:])
        elif isinstance(record.msg, str):
            record.msg = scrub_url(record.msg)
        return True


def install_access_log_scrubber() -> None:
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, AccessLogScrubber) for f in logger.filters):
        logger.addFilter(AccessLogScrubber())


__all__ = ["AccessLogScrubber", "NulGuard", "declare_errors", "install", "scrub_url"]
