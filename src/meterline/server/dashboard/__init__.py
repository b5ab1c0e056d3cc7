"""The dashboard: server-rendered pages (Jinja2) at ``/``, served by the collector.

Sign in with a read or admin API key (session cookie), then: overview, usage explorer, requests log and
event detail, traces, budgets, keys (admin), billing, and signed customer share links. Pages read through
the same store functions as the JSON API, so their numbers are the API's. Front-end assets are vendored
under ``static/vendor`` (htmx, uPlot): no CDN at run time, no Node at install time.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, HTTPException, Response
from fastapi.responses import FileResponse

from meterline.server.dashboard import admin, pages, public
from meterline.server.dashboard.common import HERE

router = APIRouter(include_in_schema=False)
router.include_router(public.router)
router.include_router(pages.router)
router.include_router(admin.router)

_STATIC = HERE / "static"
_TYPES = {".js": "text/javascript", ".css": "text/css", ".txt": "text/plain", ".md": "text/plain"}


@router.get("/static/{path:path}")
def static(path: str) -> Response:
    """Vendored and own assets; only files under ``static/`` (no ``..``), cached for a day."""
    target = (_STATIC / path).resolve()
    if _STATIC.resolve() not in target.parents or not target.is_file() or target.suffix not in _TYPES:
        raise HTTPException(404, "no such file")
    return FileResponse(target, media_type=_TYPES[target.suffix], headers={"Cache-Control": "public, max-age=86400"})


@router.get("/favicon.ico")
def favicon() -> Response:
    return Response(status_code=204)


def setup(app: FastAPI) -> None:
    """At start-up: the signing secret (setting ``dashboard_secret``, else one generated per install and kept
    in the database)."""
    from meterline.store.listings import signing_secret

    configured = getattr(app.state.settings, "dashboard_secret", "") or ""
    app.state.dashboard_secret = configured.encode() if configured else signing_secret(app.state.writer)
