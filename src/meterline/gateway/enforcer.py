"""Budget enforcement in the proxy (placeholder until budgets land)."""

from __future__ import annotations

from typing import Any


class BudgetExceeded(Exception):
    pass


def enforcer_from_env() -> Any:
    return None
