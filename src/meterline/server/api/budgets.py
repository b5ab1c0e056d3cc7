"""Budgets over HTTP (scope ``admin``): create, list, delete, and status (spend in the current period).

Alerts fire when ingest crosses a threshold: ``setup(app)`` registers an ingest hook that checks, in the
background, the budgets the newly stored events count against (see :mod:`meterline.budgets.alerts`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from meterline.budgets import alerts
from meterline.budgets import store as budget_store
from meterline.core.event import UsageEvent, format_cost
from meterline.server.deps import AdminKey, IngestKey, WriterDep
from meterline.store.base import SQLStore

logger = logging.getLogger("meterline.server")
router = APIRouter(tags=["budgets"])


class BudgetCreate(BaseModel):
    name: str
    scope: str = Field(description="organization | team | api_key | subscriber | product")
    scope_value: str = Field(description="the organization/team/key hash or alias/subscriber/product id")
    period: str = Field("monthly", description="daily | weekly | monthly | total (UTC)")
    limit_usd: str = Field(description='a decimal string, e.g. "100.00"')
    thresholds: list[int] = Field(default_factory=lambda: list(budget_store.DEFAULT_THRESHOLDS), description="percent")
    hard: bool = Field(True, description="enforced by the gateway (HTTP 429) when true; alerts only when false")
    webhook_url: str | None = None


def _status(store: SQLStore, budget: budget_store.Budget) -> dict[str, Any]:
    return budget_store.status(store, budget)


@router.post("/v1/budgets", status_code=201)
async def create_budget(body: BudgetCreate, key: AdminKey, writer: WriterDep) -> dict[str, Any]:
    try:
        budget = await run_in_threadpool(budget_store.create_budget, writer, body.model_dump())
    except budget_store.BudgetError as exc:
        raise HTTPException(400 if exc.field != "name" or "exists" not in exc.reason else 409, str(exc)) from None
    return budget.to_dict()


@router.get("/v1/budgets")
async def list_budgets(key: AdminKey, writer: WriterDep) -> list[dict[str, Any]]:
    return [b.to_dict() for b in await run_in_threadpool(budget_store.list_budgets, writer)]


@router.get("/v1/budgets/status")
async def budgets_status(key: AdminKey, writer: WriterDep) -> list[dict[str, Any]]:
    """Every budget with its spend in the current period."""

    def run() -> list[dict[str, Any]]:
        return [_status(writer, b) for b in budget_store.list_budgets(writer)]

    return await run_in_threadpool(run)


@router.get("/v1/budgets/check")
async def budgets_check(key: IngestKey, writer: WriterDep) -> list[dict[str, Any]]:
    """For gateways (an ingest key suffices): every budget with its spend in the current period,
    without webhook URLs."""

    def run() -> list[dict[str, Any]]:
        now = datetime.now(timezone.utc)
        return [
            {**b.to_dict(), "webhook_url": None, "spend_usd": format_cost(budget_store.spend(writer, b, now))}
            for b in budget_store.list_budgets(writer)
        ]

    return await run_in_threadpool(run)


@router.get("/v1/budgets/{budget_id}")
async def budget_status(budget_id: str, key: AdminKey, writer: WriterDep) -> dict[str, Any]:
    budget = await run_in_threadpool(budget_store.get_budget, writer, budget_id)
    if budget is None:
        raise HTTPException(404, f"no budget with id or name {budget_id!r}")
    return await run_in_threadpool(_status, writer, budget)


@router.delete("/v1/budgets/{budget_id}", status_code=204)
async def delete_budget(budget_id: str, key: AdminKey, writer: WriterDep) -> None:
    if not await run_in_threadpool(budget_store.delete_budget, writer, budget_id):
        raise HTTPException(404, f"no budget with id or name {budget_id!r}")


def setup(app: FastAPI) -> None:
    """Check budgets after each stored ingest batch (the ingest route calls ``app.state.ingest_hooks``)."""

    def after_ingest(events: Sequence[UsageEvent]) -> None:
        try:
            alerts.check_events(app.state.writer, events)
        except Exception as exc:  # noqa: BLE001 - alerts must never fail an ingest that was stored
            logger.error("meterline collector: budget alert check failed: %s", exc)

    hooks = getattr(app.state, "ingest_hooks", None)
    if hooks is None:
        hooks = app.state.ingest_hooks = []
    hooks.append(after_ingest)
