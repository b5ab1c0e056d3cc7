"""Budget alerts: a webhook once per budget, period and threshold.

``check`` finds the thresholds a budget's spend has reached, *claims* each in the database
(``budget_alerts``, unique per budget/period/threshold) and sends the webhook only for claims it won, so
a restart, a second collector replica or a gateway process racing the collector never send it twice.
A webhook that fails after its claim is logged, not retried (at most once, never duplicated).
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from meterline.budgets import store as budget_store
from meterline.core.event import UsageEvent, format_cost

logger = logging.getLogger("meterline")

Sender = Callable[[str, Mapping[str, Any]], None]


def post_webhook(url: str, payload: Mapping[str, Any]) -> None:
    req = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            resp.read()
    except OSError as exc:
        logger.warning("meterline: budget alert webhook %s failed: %s", url, exc)


def reached(budget: budget_store.Budget, spend_usd: Decimal) -> list[int]:
    """Thresholds (percent) that ``spend_usd`` has reached."""
    return [t for t in budget.thresholds if spend_usd * 100 >= budget.limit_usd * t]


def payload(budget: budget_store.Budget, period: datetime, threshold: int, spend_usd: Decimal) -> dict[str, Any]:
    return {
        "type": "meterline.budget.threshold",
        "budget": budget.to_dict(),
        "threshold_percent": threshold,
        "period_start": period.astimezone(timezone.utc).isoformat().replace("+00:00", "Z"),
        "spend_usd": format_cost(spend_usd),
        "limit_usd": format_cost(budget.limit_usd),
        "exceeded": spend_usd >= budget.limit_usd,
    }


def check(
    store: budget_store.SQLStore,
    budget: budget_store.Budget,
    *,
    now: datetime | None = None,
    spend_usd: Decimal | None = None,
    send: Sender = post_webhook,
) -> list[int]:
    """Fire the reached, not yet fired thresholds of ``budget``; returns those fired by this call.
    ``spend_usd`` defaults to the spend computed from stored events."""
    now = now or datetime.now(timezone.utc)
    period = budget.period_start(now)
    spent = budget_store.spend(store, budget, now) if spend_usd is None else spend_usd
    fired = []
    for t in reached(budget, spent):
        if budget_store.claim_alert(store, budget, period, t, spent):
            fired.append(t)
            if budget.webhook_url:
                send(budget.webhook_url, payload(budget, period, t, spent))
            logger.warning("meterline: budget %r reached %d%% (%s of %s USD)", budget.name, t, spent, budget.limit_usd)
    return fired


def identity_of(event: UsageEvent) -> dict[str, Any]:
    return {field: getattr(event, field) for fields in budget_store.SCOPES.values() for field in fields}


def check_events(
    store: budget_store.SQLStore, events: Iterable[UsageEvent], *, send: Sender = post_webhook
) -> list[int]:
    """After ingest: check every budget that one of ``events`` counts against."""
    idents = [identity_of(e) for e in events]
    fired: list[int] = []
    if not idents:
        return fired
    for budget in budget_store.list_budgets(store):
        if any(budget.matches(i) for i in idents):
            fired += check(store, budget, send=send)
    return fired
