"""Liveness, readiness and Prometheus metrics (no authentication: they carry no usage data)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse

from meterline.server.deps import MetricsDep, StoreDep
from meterline.server.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
async def readyz(store: StoreDep) -> JSONResponse:
    """The store answers a query (take the replica out of the load balancer otherwise)."""
    try:
        await run_in_threadpool(store.ping)
    except Exception as exc:  # noqa: BLE001 - any store failure means "not ready"; the reason is reported
        return JSONResponse({"status": "unavailable", "detail": f"store: {exc}"}, status_code=503)
    return JSONResponse({"status": "ok", "detail": None})


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(m: MetricsDep) -> PlainTextResponse:
    """Prometheus text format."""
    return PlainTextResponse(m.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
