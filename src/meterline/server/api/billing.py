"""Billing over HTTP: customers, plans, subscriptions, wallets, invoices, credit notes (see docs/guides/billing.md).

Writes need an ``admin`` key; reads (previews, invoices, wallets) a ``read`` key. Money is exact decimal
strings. Invoices come as JSON, or ``?format=csv|html``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from meterline.billing import invoice_store, render
from meterline.billing import service as svc
from meterline.billing import store as billing_store
from meterline.billing.model import BillingError, FinalizeRefused, parse_customer
from meterline.core.event import DIMENSIONS
from meterline.server.billing_schemas import (
    BillingSettingsIn,
    CreditNoteIn,
    CustomerIn,
    CustomerPatch,
    GrantIn,
    PlanIn,
    SubscriptionIn,
)
from meterline.server.deps import AdminKey, ReadKey, WriterDep

router = APIRouter(tags=["billing"])
T = TypeVar("T")


async def _run(fn: Callable[..., T], *args: Any, **kw: Any) -> T:
    try:
        return await run_in_threadpool(fn, *args, **kw)
    except FinalizeRefused as exc:
        raise HTTPException(409, str(exc)) from None  # refused: the period runs, or unpriced usage
    except BillingError as exc:
        raise HTTPException(404 if str(exc.reason).startswith("no ") else 400, str(exc)) from None


def _format(body: dict[str, Any], fmt: str) -> Response | dict[str, Any]:
    if fmt == "json":
        return body
    if fmt == "csv":
        return PlainTextResponse(render.to_csv(body), media_type="text/csv")
    if fmt == "html":
        return HTMLResponse(render.to_html(body))
    raise HTTPException(400, f"format: must be one of {', '.join(render.FORMATS)}; got {fmt!r}")


# -- customers -------------------------------------------------------------------------------------
@router.post("/v1/customers", status_code=201)
async def create_customer(body: CustomerIn, key: AdminKey, writer: WriterDep) -> dict[str, Any]:
    def run() -> dict[str, Any]:
        c = parse_customer(body.model_dump())
        if billing_store.get_customer(writer, c.id) is not None:
            raise HTTPException(409, f"id: a customer {c.id!r} already exists")
        billing_store.save_customer(writer, c)
        return c.to_dict()

    return await _run(run)


@router.get("/v1/customers")
async def list_customers(key: ReadKey, writer: WriterDep) -> list[dict[str, Any]]:
    return [c.to_dict() for c in await _run(billing_store.list_customers, writer)]


@router.get("/v1/customers/{customer_id}")
async def get_customer(customer_id: str, key: ReadKey, writer: WriterDep) -> dict[str, Any]:
    c = await _run(billing_store.get_customer, writer, customer_id)
    if c is None:
        raise HTTPException(404, f"no customer {customer_id!r}")
    subs = await _run(billing_store.subscriptions, writer, customer_id)
    return {
        **c.to_dict(),
        "subscriptions": [{"plan": s.plan_id, "start": s.start.isoformat()} for s in subs.get(customer_id, [])],
    }


@router.patch("/v1/customers/{customer_id}")
async def update_customer(customer_id: str, body: CustomerPatch, key: AdminKey, writer: WriterDep) -> dict[str, Any]:
    def run() -> dict[str, Any]:
        old = billing_store.get_customer(writer, customer_id)
        if old is None:
            raise BillingError("customer", f"no customer {customer_id!r}")
        c = parse_customer(body.model_dump(exclude_none=True), existing=old)
        billing_store.save_customer(writer, c)
        return c.to_dict()

    return await _run(run)


@router.post("/v1/customers/{customer_id}/subscriptions", status_code=201)
async def subscribe(customer_id: str, body: SubscriptionIn, key: AdminKey, writer: WriterDep) -> dict[str, Any]:
    sub = await _run(svc.subscribe, writer, customer_id, body.plan, body.start)
    return {"customer": sub.customer_id, "plan": sub.plan_id, "start": sub.start.isoformat()}


# -- plans -----------------------------------------------------------------------------------------
@router.post("/v1/plans", status_code=201)
async def create_plan(body: PlanIn, key: AdminKey, writer: WriterDep) -> dict[str, Any]:
    spec = body.model_dump(exclude_none=True)
    return (await _run(billing_store.add_plan_version, writer, spec)).to_dict()


@router.get("/v1/plans")
async def list_plans(key: ReadKey, writer: WriterDep) -> list[dict[str, Any]]:
    plans = await _run(billing_store.plan_versions, writer)
    return [p.to_dict() for versions in plans.values() for p in versions]


# -- wallets ---------------------------------------------------------------------------------------
@router.get("/v1/wallets/{customer_id}")
async def get_wallet(customer_id: str, key: ReadKey, writer: WriterDep) -> dict[str, Any]:
    return await _run(svc.wallet, writer, customer_id)


@router.post("/v1/wallets/{customer_id}/grants", status_code=201)
async def add_grant(customer_id: str, body: GrantIn, key: AdminKey, writer: WriterDep) -> dict[str, Any]:
    expires = None
    if body.expires_at:
        try:
            expires = datetime.fromisoformat(body.expires_at.replace("Z", "+00:00"))
        except ValueError:
            raise HTTPException(400, f"expires_at: not an ISO time: {body.expires_at!r}") from None
        if expires.tzinfo is None:
            raise HTTPException(400, "expires_at: needs a time zone (e.g. 2027-01-01T00:00:00Z)")
    g = await _run(svc.grant, writer, customer_id, body.amount_usd, expires_at=expires, note=body.note)
    return g.to_dict()


# -- invoices --------------------------------------------------------------------------------------
@router.get("/v1/invoices/preview", response_model=None)
async def preview(
    key: ReadKey, writer: WriterDep, customer: str, period: str, format: str = "json"
) -> Response | dict[str, Any]:
    return _format(await _run(svc.preview, writer, customer, period), format)


@router.post(
    "/v1/invoices/finalize",
    responses={
        409: {"description": "refused: the period has not ended (use force) or usage is unpriced (allow_unpriced)"}
    },
)
async def finalize(
    key: AdminKey,
    writer: WriterDep,
    period: str,
    customer: Annotated[list[str] | None, Query()] = None,
    force: bool = False,
    allow_unpriced: bool = False,
) -> dict[str, Any]:
    invoices = await _run(svc.finalize, writer, period, customers=customer, force=force, allow_unpriced=allow_unpriced)
    return {
        "period": period,
        "finalized": len(invoices),
        "invoices": [{"number": i.number, "customer": i.customer.id, "total_usd": str(i.total)} for i in invoices],
    }


@router.get("/v1/invoices")
async def list_invoices(
    key: ReadKey, writer: WriterDep, customer: str | None = None, period: str | None = None
) -> list[dict[str, Any]]:
    return await _run(invoice_store.list_invoices, writer, customer=customer, period=period)


@router.get("/v1/invoices/{number}", response_model=None)
async def get_invoice(number: str, key: ReadKey, writer: WriterDep, format: str = "json") -> Response | dict[str, Any]:
    body = await _run(invoice_store.get_invoice, writer, number)
    if body is None:
        raise HTTPException(404, f"no finalized invoice {number!r}")
    return _format(body, format)


@router.post("/v1/invoices/{number}/credit-notes", status_code=201)
async def credit_note(number: str, body: CreditNoteIn, key: AdminKey, writer: WriterDep) -> dict[str, Any]:
    return await _run(svc.credit_note, writer, number, body.amount_usd, body.reason)


@router.get("/v1/invoices/{number}/credit-notes")
async def list_credit_notes(number: str, key: ReadKey, writer: WriterDep) -> list[dict[str, Any]]:
    return await _run(invoice_store.credit_notes, writer, number)


# -- settings --------------------------------------------------------------------------------------
@router.get("/v1/billing/settings")
async def get_settings(key: ReadKey, writer: WriterDep) -> dict[str, Any]:
    def run() -> dict[str, Any]:
        return {
            "customer_dimension": billing_store.customer_dimension(writer),
            "auto_create_customers": billing_store.get_setting(writer, "auto_create_customers", "false") == "true",
        }

    return await _run(run)


@router.put("/v1/billing/settings")
async def put_settings(body: BillingSettingsIn, key: AdminKey, writer: WriterDep) -> dict[str, Any]:
    if body.customer_dimension is not None and body.customer_dimension not in DIMENSIONS:
        raise HTTPException(
            400,
            f"customer_dimension: must be an event dimension such as subscriber_id, "
            f"organization_id, team_id, api_key_alias; got {body.customer_dimension!r}",
        )

    def run() -> None:
        if body.customer_dimension is not None:
            billing_store.set_customer_dimension(writer, body.customer_dimension)
        if body.auto_create_customers is not None:
            billing_store.set_setting(
                writer, "auto_create_customers", "true" if body.auto_create_customers else "false"
            )

    await _run(run)
    return await get_settings(key, writer)
