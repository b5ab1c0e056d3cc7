"""The one place the dashboard reads billing (customers, wallets, invoices) from.

Billing lives in ``meterline.billing``; its ``dashboard_source()`` (``billing/dashboard.py``) returns an
object with the methods of :class:`BillingSource`. When billing has no customers and no invoices the
Billing page says "Billing is not configured" and share links show usage only. The import stays lazy so a
billing fault is logged and never takes the dashboard down.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from meterline.store.base import BillingStore

logger = logging.getLogger("meterline.server")
MODULE = "meterline.billing"


class BillingSource(Protocol):
    def customer_ids(self, store: BillingStore) -> list[str]:
        """Every billed customer's id, in order (the page shows a slice)."""
        ...

    def customers(self, store: BillingStore, ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """[{customer, name, plan, wallet_balance_usd, period, draft: <invoice row>}] of the customers named."""
        ...

    def invoices(self, store: BillingStore, customer: str | None) -> list[dict[str, Any]]:
        """[{number, customer, period, status (draft|final), subtotal_usd, credits_usd, total_usd, requests,
        lines}], one customer's current draft first, then finalized newest first (all customers': finalized
        only, without lines)."""
        ...

    def wallet(self, store: BillingStore, customer: str) -> dict[str, Any] | None:
        """{balance_usd, granted_usd, grants: [...]} or None."""
        ...

    def printable(
        self, store: BillingStore, *, number: str | None = None, customer: str | None = None, period: str | None = None
    ) -> tuple[str, dict[str, Any]] | None:
        """(printable HTML page, invoice body) of a finalized invoice or of a customer's period, or None."""
        ...


def _source() -> BillingSource | None:
    try:
        if importlib.util.find_spec(MODULE) is None:
            return None
    except ModuleNotFoundError:
        return None
    mod = importlib.import_module(MODULE)
    source = getattr(mod, "dashboard_source", None)  # the billing module's adapter, once it has one
    return source() if callable(source) else None


def overview(store: BillingStore, page: int = 0, invoice_page: int = 0, size: int = 50) -> dict[str, Any] | None:
    """{customers, invoices, paging} for the Billing page (one page of customers with their current period,
    one page of finalized invoices), or None when billing is not configured or has no data."""
    source = _source()
    if source is None:
        return None
    try:
        ids = source.customer_ids(store)
        invoices = source.invoices(store, None)
        if not ids and not invoices:
            return None
        customers = source.customers(store, ids[page * size : (page + 1) * size])
    except Exception as exc:  # noqa: BLE001 - a billing fault must not take the dashboard down
        logger.error("meterline dashboard: billing read failed: %s", exc)
        return None
    return {
        "customers": customers,
        "invoices": invoices[invoice_page * size : (invoice_page + 1) * size],
        "page": page,
        "more": (page + 1) * size < len(ids),
        "invoice_page": invoice_page,
        "more_invoices": (invoice_page + 1) * size < len(invoices),
        "customer_count": len(ids),
        "invoice_count": len(invoices),
    }


def for_customer(store: BillingStore, customer: str) -> dict[str, Any] | None:
    """One customer's wallet and invoices for a share link, or None without billing."""
    source = _source()
    if source is None:
        return None
    try:
        return {"wallet": source.wallet(store, customer), "invoices": source.invoices(store, customer)}
    except Exception as exc:  # noqa: BLE001
        logger.error("meterline dashboard: billing read failed: %s", exc)
        return None


def printable(
    store: BillingStore, *, number: str | None = None, customer: str | None = None, period: str | None = None
) -> tuple[str, dict[str, Any]] | None:
    """(printable HTML, invoice) by invoice number or by customer and period; None without billing or
    without such an invoice. A bad period raises ``ValueError`` (the caller answers 400)."""
    source = _source()
    if source is None:
        return None
    return source.printable(store, number=number, customer=customer, period=period)
