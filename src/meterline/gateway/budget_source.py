"""Where the gateway reads budgets and their stored spend: the database itself, or a collector.

``SQLBudgets``: a SQLite/PostgreSQL store (``METERLINE_BUDGETS``, or the destination when it is a
database); the gateway also claims and sends alerts. ``CollectorBudgets``: a collector destination
(``http(s)://…``) with the gateway's ingest key, through ``GET /v1/budgets/check``; alerts are the
collector's job (it checks thresholds after each ingest), so the gateway sends none itself.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from meterline.budgets import alerts
from meterline.budgets import store as budget_store
from meterline.store.base import BillingStore


class BudgetSource(Protocol):
    """Budget definitions and their stored spend, for the enforcer."""

    @property
    def sends_alerts(self) -> bool: ...

    def budget_list(self) -> list[budget_store.Budget]: ...

    def spend(self, budget: budget_store.Budget, now: datetime) -> Decimal: ...

    def alert(self, budget: budget_store.Budget, spent: Decimal, send: alerts.Sender) -> None: ...


class SQLBudgets:
    sends_alerts = True

    def __init__(self, store: BillingStore) -> None:
        self.store = store  # a database store: the gateway's prepaid wallets are read from it too (billing)

    def budget_list(self) -> list[budget_store.Budget]:
        return budget_store.list_budgets(self.store)

    def spend(self, budget: budget_store.Budget, now: datetime) -> Decimal:
        return budget_store.spend(self.store, budget, now)

    def alert(self, budget: budget_store.Budget, spent: Decimal, send: alerts.Sender) -> None:
        alerts.check(self.store, budget, spend_usd=spent, send=send)


class CollectorBudgets:
    sends_alerts = False

    def __init__(self, base_url: str, api_key: str | None, timeout: float = 3.0) -> None:
        self.url = base_url.rstrip("/") + "/v1/budgets/check"
        self.api_key = api_key
        self.timeout = timeout
        self._spend: dict[str, Decimal] = {}

    def _fetch(self) -> list[dict[str, Any]]:
        headers = {"Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(self.url, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                rows: list[dict[str, Any]] = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"{self.url} answered {exc.code}: {exc.read()[:300]!r}") from None
        return rows

    def budget_list(self) -> list[budget_store.Budget]:
        out = []
        for row in self._fetch():
            budget = budget_store.Budget(
                id=row["id"],
                name=row["name"],
                scope=row["scope"],
                scope_value=row["scope_value"],
                period=row["period"],
                limit_usd=Decimal(row["limit_usd"]),
                thresholds=tuple(row["thresholds"]),
                hard=bool(row["hard"]),
                created_at=float(row["created_at"]),
            )
            self._spend[budget.id] = Decimal(row["spend_usd"])
            out.append(budget)
        return out

    def spend(self, budget: budget_store.Budget, now: datetime) -> Decimal:
        if budget.id not in self._spend:
            self.budget_list()
        return self._spend.get(budget.id, Decimal(0))

    def alert(self, budget: budget_store.Budget, spent: Decimal, send: alerts.Sender) -> None:
        return None
