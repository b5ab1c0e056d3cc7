"""What the dashboard's Billing page and customer share links show, read from the billing service.

The dashboard (``meterline.server.dashboard.billing_view``) calls ``dashboard_source()`` and uses the
returned object's ``customers``, ``invoices``, ``wallet`` and ``printable`` methods. Everything here is
the same computation as the JSON API (``service.wallet``, ``service.preview``, the stored invoices), so
the page's numbers are the API's. Billing never imports the server: this module only returns plain values.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from meterline.billing import invoice as invoicing
from meterline.billing import invoice_store, render
from meterline.billing import service as svc
from meterline.billing import store as billing_store
from meterline.billing.model import BillingError
from meterline.store.base import BillingStore, SQLStore


def _plan_on(subs: list[Any], day: date) -> str | None:
    """The plan in force on ``day`` (the latest subscription started by then)."""
    started = [s for s in subs if s.start <= day]
    return max(started, key=lambda s: s.start).plan_id if started else None


class DashboardSource:
    """Customers, invoices (live drafts of the current period, then the finalized ones) and wallets."""

    def __init__(self, now: datetime | None = None) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now or datetime.now(timezone.utc)

    def customer_ids(self, store: SQLStore) -> list[str]:
        """Every billing customer's id, in id order (cheap: the page shows a slice of them)."""
        return [c.id for c in billing_store.list_customers(store)]

    def customers(self, store: BillingStore, ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """[{customer, name, plan, wallet_balance_usd, period, draft}] for the customers named (all when None):
        the plan in force today, the API's wallet balance (None without grants) and the current period's
        invoice as ``GET /v1/invoices/preview`` returns it (live draft, or the finalized one), as a row of
        :meth:`invoices`. Each customer costs a few indexed reads: show a page of them, not thousands."""
        now = self.now()
        wanted = None if ids is None else set(ids)
        listed = [c for c in billing_store.list_customers(store) if wanted is None or c.id in wanted]
        subs = billing_store.subscriptions(store)
        with_wallet = set(billing_store.wallet_customers(store))
        ctx = svc.Context(store)
        done: dict[str, set[str]] = {}  # period -> customers finalized for it
        out = []
        for c in listed:
            period = invoicing.period_of(now, c.timezone)
            if period not in done:
                done[period] = invoice_store.finalized_customers(store, period)
            if c.id in done[period]:
                current = svc.preview(store, c.id, period)
            else:
                current = svc.draft(store, c.id, period, ctx, now).to_dict()
            out.append(
                {
                    "customer": c.id,
                    "name": c.name,
                    "plan": _plan_on(subs.get(c.id, []), now.astimezone(ZoneInfo(c.timezone)).date()),
                    "wallet_balance_usd": svc.wallet(store, c.id, now)["balance_usd"] if c.id in with_wallet else None,
                    "period": period,
                    "draft": _row(current),
                }
            )
        return out

    def invoices(self, store: BillingStore, customer: str | None) -> list[dict[str, Any]]:
        """The current period's live draft (when not finalized yet and not empty), then the finalized invoices
        newest first, each {number, customer, period, status (draft|final), subtotal_usd, credits_usd,
        total_usd, requests, lines}; of one customer, or of all (then without drafts and lines: the
        Billing page shows drafts per customer, and reads the finalized list a page at a time)."""
        if customer is None:
            listed = invoice_store.list_invoices(store)
            listed.sort(key=lambda r: (r["period"], r["number"]), reverse=True)
            return [{**r, "status": "final", "requests": None, "lines": None} for r in listed]
        drafts = []
        c = billing_store.get_customer(store, customer)
        period = invoicing.period_of(self.now(), c.timezone) if c is not None else None
        if c is not None and period is not None and customer not in invoice_store.finalized_customers(store, period):
            current = svc.draft(store, customer, period).to_dict()
            if current["requests"] or current["lines"]:
                drafts.append(_row(current))
        final = []
        for r in invoice_store.list_invoices(store, customer=customer):
            body = invoice_store.get_invoice(store, r["number"])
            if body is not None:
                final.append(_row(body))
        final.sort(key=lambda r: (r["period"], r["number"]), reverse=True)
        return drafts + final

    def wallet(self, store: BillingStore, customer: str) -> dict[str, Any] | None:
        """The API's wallet (balance, grants with what remains of each), or None without a wallet."""
        if billing_store.get_customer(store, customer) is None or not billing_store.grants(store, customer):
            return None
        return svc.wallet(store, customer, self.now())

    def printable(
        self, store: BillingStore, *, number: str | None = None, customer: str | None = None, period: str | None = None
    ) -> tuple[str, dict[str, Any]] | None:
        """(printable HTML, invoice) of a finalized invoice by number, or of ``customer``'s ``period``
        (its live draft, or the finalized invoice); None when there is no such invoice or customer.
        A bad period raises :class:`BillingError`."""
        if number is not None:
            body = invoice_store.get_invoice(store, number)
        elif customer is not None and period is not None:
            try:
                body = svc.preview(store, customer, period)
            except BillingError as exc:
                if exc.field == "customer":
                    return None
                raise
        else:
            return None
        return (render.to_html(body), body) if body is not None else None


def _row(inv: dict[str, Any]) -> dict[str, Any]:
    status = "final" if inv.get("number") else "draft"
    return {
        "number": inv.get("number"),
        "customer": inv["customer"],
        "period": inv["period"],
        "status": status,
        "subtotal_usd": inv["subtotal_usd"],
        "credits_usd": inv["credits_usd"],
        "total_usd": inv["total_usd"],
        "requests": inv["requests"],
        "lines": inv["lines"],
        # calls without a provider price billed by markup (0): the page marks them (never a silent $0)
        "unpriced_billed_events": inv.get("unpriced_billed_events", 0),
        "unpriced_models": inv.get("unpriced_models", []),
    }


def dashboard_source() -> DashboardSource:
    return DashboardSource()
