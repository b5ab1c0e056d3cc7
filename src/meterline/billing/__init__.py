"""Billing: customers, plans with rate cards and markup, prepaid wallets, invoices (see docs/billing.md).

The rating, invoice and wallet logic is pure Python over Decimal (``model``, ``rating``, ``invoice``,
``wallet``, ``render``); ``service`` runs it on a store; ``reprice`` recomputes stored provider costs.
"""

from __future__ import annotations

from meterline.billing.model import BillingError, Customer, Grant, Plan, Rule, Subscription

__all__ = ["BillingError", "Customer", "Grant", "Plan", "Rule", "Subscription"]
