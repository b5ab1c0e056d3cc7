"""What the dashboard's Billing page and customer share links show, read from the billing service.

The dashboard (``meterline.server.dashboard.billing_view``) calls ``dashboard_source()`` and uses the
returned object's ``customers``, ``invoices``, ``wallet`` and ``printable`` methods. Everything here is
the same computation as the JSON API (``service.wallet``, ``service.preview``, the stored invoices), so
the page's numbers are the API's. Billing never imports the server: this module only returns plain values.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from meterline.billing import invoice as I
from meterline.billing import render
from meterline.billing import service as svc
from meterline.billing.model import BillingError
from meterline.store import billing as S
from meterline.store import billing_invoices as SI


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

    def customers(self, store: Any) -> list[dict[str, Any]]:
        """[{customer, name, plan, wallet_balance_usd}]; the balance is None for a customer without grants."""
        now = self.now()
        subs = S.subscriptions(store)
        with_wallet = set(S.wallet_customers(store))
        out = []
        for c in S.list_customers(store):
            local = now.astimezone(ZoneInfo(c.timezone)).date()
            balance = svc.wallet(store, c.id, now)["balance_usd"] if c.id in with_wallet else None
            out.append(
                {
                    "customer": c.id,
                    "name": c.name,
                    "plan": _plan_on(subs.get(c.id, []), local),
                    "wallet_balance_usd": balance,
                }
            )
        return out

    def invoices(self, store: Any, customer: str | None) -> list[dict[str, Any]]:
        """The current period's draft of each customer not finalized for it yet (or of ``customer`` only),
        then the finalized invoices, newest first; each {number, customer, period, status, total_usd, lines}."""
        now = self.now()
        customers = S.list_customers(store)
        if customer is not None:
            customers = [c for c in customers if c.id == customer]
        ctx = svc.Context(store)
        drafts = []
        done: dict[str, set[str]] = {}  # period -> customers finalized for it
        for c in customers:
            period = I.period_of(now, c.timezone)
            if period not in done:
                done[period] = SI.finalized_customers(store, period)
            if c.id in done[period]:
                continue
            inv = svc.draft(store, c.id, period, ctx).to_dict()
            if inv["requests"] or inv["lines"]:
                drafts.append(_row(inv))
        final = []
        for r in SI.list_invoices(store, customer=customer):
            body = SI.get_invoice(store, r["number"])
            if body is not None:
                final.append(_row(body))
        final.sort(key=lambda r: (r["period"], r["number"]), reverse=True)
        return drafts + final

    def wallet(self, store: Any, customer: str) -> dict[str, Any] | None:
        """The API's wallet (balance, grants with what remains of each), or None without a wallet."""
        if S.get_customer(store, customer) is None or not S.grants(store, customer):
            return None
        return svc.wallet(store, customer, self.now())

    def printable(
        self, store: Any, *, number: str | None = None, customer: str | None = None, period: str | None = None
    ) -> tuple[str, dict[str, Any]] | None:
        """(printable HTML, invoice) of a finalized invoice by number, or of ``customer``'s ``period``
        (its live draft, or the finalized invoice); None when there is no such invoice or customer.
        A bad period raises :class:`BillingError`."""
        if number is not None:
            body = SI.get_invoice(store, number)
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
    }


def dashboard_source() -> DashboardSource:
    return DashboardSource()
