"""Error answers every route shares: the store unavailable is a 503 with ``Retry-After`` (never a 500), and the
compatible-ingest routes answer their errors (401, 403, 503) in their own client's format.

- :func:`install` registers one exception handler for the connectivity errors of the collector's store
  engine (``store.availability.error_types``). The handler asks ``store.availability.unavailable`` whether the
  error means "the store cannot serve now" (PostgreSQL down, the pool exhausted, SQLite locked past its busy
  timeout, ClickHouse unreachable): then 503 + ``Retry-After``, from whichever route, dependency (API-key
  look-up) or store call raised it. Anything else is re-raised and stays a 500 (a bug to see in the logs).
- :func:`client_format` registers, per compatible-ingest path, the function that renders an error the way
  that path's client reads it (Revenium's Spring body, Lago's ``{status, error}``, OpenMeter's problem+json,
  OTLP's ``Status``); :func:`answer` uses it for those paths and ``{"detail": …}`` elsewhere.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from meterline.store import availability

logger = logging.getLogger("meterline.server")

RETRY_AFTER_SECONDS = 5  # what a 503 asks clients to wait before retrying
ClientFormat = Callable[[Request, int, str], Response]
_FORMATS: dict[str, ClientFormat] = {}
CLIENT_STATUSES = (401, 403, 503)  # errors raised outside a compatible route's own code, answered in its format


def client_format(*paths: str) -> Callable[[ClientFormat], ClientFormat]:
    """Decorator: ``fn(request, status, message)`` renders errors on ``paths`` in their client's format."""

    def register(fn: ClientFormat) -> ClientFormat:
        for path in paths:
            _FORMATS[path] = fn
        return fn

    return register


def answer(request: Request, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """An error answer: the client's own format on a compatible-ingest path, ``{"detail": …}`` elsewhere."""
    fmt = _FORMATS.get(request.scope.get("path", "")) if status in CLIENT_STATUSES else None
    response = fmt(request, status, message) if fmt is not None else JSONResponse({"detail": message}, status)
    response.headers.update(headers or {})
    return response


def unavailable_answer(request: Request, message: str) -> Response:
    return answer(request, 503, message, {"Retry-After": str(RETRY_AFTER_SECONDS)})


def install(app: FastAPI, destination: str) -> None:
    """Map the store's "unavailable" errors to 503 + ``Retry-After`` on every route of ``app``."""

    async def _store_error(request: Request, exc: Exception) -> Response:
        if not availability.unavailable(exc):
            raise exc  # a genuine error: ServerErrorMiddleware answers 500 and logs the traceback
        logger.error(
            "meterline collector: store unavailable on %s %s: %s", request.method, request.url.path, _one_line(exc)
        )
        # the driver's message (hosts, ports, database names) goes to the log, not to the client
        message = f"store unavailable: the collector's database cannot serve now; retry in {RETRY_AFTER_SECONDS} s"
        return unavailable_answer(request, message)

    for exc_type in availability.error_types(destination):
        app.add_exception_handler(exc_type, _store_error)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


__all__ = ["RETRY_AFTER_SECONDS", "answer", "client_format", "install", "unavailable_answer"]
