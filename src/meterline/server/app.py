"""``create_app(settings)``: the collector's FastAPI application.

Routers are modules under ``meterline.server.api`` listed in ``ROUTERS``; a module not shipped in this
build is skipped, so adding an area (e.g. budgets) is one line here plus its module. A router module
exposes ``router`` (an ``APIRouter``) and may expose ``setup(app)`` to initialise state at start-up
and ``teardown(app)`` to stop what it started.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from meterline._version import __version__
from meterline.server.deps import KeyCache
from meterline.server.metrics import Metrics, MetricsMiddleware
from meterline.server.settings import Settings

logger = logging.getLogger("meterline.server")

ROUTERS = (
    "meterline.server.api.health",
    "meterline.server.api.ingest",
    "meterline.server.api.query",
    "meterline.server.api.keys",
    "meterline.server.api.budgets",
    # compatible ingest (Revenium, Lago, OpenMeter, OTLP) and continuous exports
    "meterline.server.api.compat_revenium",
    "meterline.server.api.compat_lago",
    "meterline.server.api.compat_openmeter",
    "meterline.server.api.compat_otlp",
    "meterline.server.api.forwarding",
    "meterline.server.api.billing",
    "meterline.server.dashboard",  # web pages at / (login, overview, explorer, requests, traces, budgets, keys)
)


def _router_modules() -> list[Any]:
    mods = []
    for name in ROUTERS:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if found:
            mods.append(importlib.import_module(name))
    return mods


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    modules = _router_modules()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from meterline.store.backend import open_stores

        _load_prices()
        writer, reader = open_stores(settings.database, pool_size=settings.pool_size)
        app.state.writer, app.state.reader = writer, reader
        for mod in modules:
            setup = getattr(mod, "setup", None)
            if setup is not None:
                setup(app)
        from meterline.server.hardening import install_access_log_scrubber

        install_access_log_scrubber()  # again: uvicorn configures its loggers after create_app
        logger.info("meterline collector %s storing into %s", __version__, _safe(settings.database))
        if settings.auth:
            from meterline.store.keys import count_active

            if count_active(reader) == 0:
                logger.warning(
                    "meterline collector: no API keys yet, every request will get 401; create the first one with "
                    "`meterline keys create --scope admin --database %s`",
                    _safe(settings.database),
                )
        try:
            yield
        finally:
            for mod in modules:  # e.g. stop the export forwarders before their store closes
                teardown = getattr(mod, "teardown", None)
                if teardown is not None:
                    teardown(app)
            writer.close()
            if reader is not writer:
                reader.close()

    app = FastAPI(
        title="meterline collector",
        version=__version__,
        description="Ingest LLM usage events (idempotent on id) and query usage, events and traces.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = Metrics()
    app.state.key_cache = KeyCache(settings.key_cache_seconds)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    for mod in modules:
        app.include_router(mod.router)

    from meterline.store.query import QueryError

    @app.exception_handler(QueryError)
    async def _query_error(request: Request, exc: QueryError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    from meterline.server import errors, hardening

    hardening.install(app)  # NUL guard, 405 with Allow, OpenAPI error declarations, access log scrubbing
    errors.install(app, settings.database)  # the store unavailable: 503 + Retry-After on every route, never 500

    return app


def _load_prices() -> None:
    """The same price table as the SDKs (``METERLINE_PRICES``), for events that arrive without a cost."""
    import os

    table = os.environ.get("METERLINE_PRICES")
    if table:
        from meterline.pricing import Pricer, load_price_table, set_pricer

        set_pricer(Pricer(load_price_table(table)))


def _safe(url: str) -> str:
    """A destination without its password, for logs."""
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}@{host}"
    return url
