"""Billing: customers, plans with rate cards and markup, prepaid wallets, invoices (see docs/guides/billing.md).

The rating, invoice and wallet logic is pure Python over Decimal (``model``, ``rating``, ``invoice``,
``wallet``, ``render``); ``service`` runs it on a store; ``reprice`` recomputes stored provider costs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from meterline.billing.model import BillingError, Customer, Grant, Plan, Rule, Subscription

if TYPE_CHECKING:
    from meterline.billing.overview import DashboardSource

__all__ = ["BillingError", "Customer", "Grant", "Plan", "Rule", "Subscription", "dashboard_source"]


def dashboard_source() -> DashboardSource:
    """The dashboard's view of billing (imported lazily: the pure billing model needs no store)."""
    from meterline.billing.overview import DashboardSource

    return DashboardSource()
