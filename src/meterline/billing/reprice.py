"""Re-pricing: compute the provider cost of stored events again with the current price tables.

Typical use: a model was ``unpriced`` (no price known when its calls were recorded); after adding a price
override for it, ``meterline reprice --since 2026-11-01 --model my-model`` fills in its costs. Events whose
cost was given by the caller (``pricing_source = caller``) keep it. Finalized invoices are not changed;
a difference for a finalized period shows up on the next invoice as an adjustment line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from meterline.core.event import UsageEvent
from meterline.pricing import Pricer
from meterline.store import reprice as reprice_store
from meterline.store.base import Store
from meterline.store.schema import to_pico

_COSTS = ("input_cost", "cache_read_cost", "cache_write_cost", "output_cost", "total_cost")


@dataclasses.dataclass
class ModelChange:
    provider: str
    model: str
    events: int = 0
    changed: int = 0
    old_cost: Decimal = Decimal(0)
    new_cost: Decimal = Decimal(0)
    old_unpriced: int = 0
    new_unpriced: int = 0
    customer: str | None = None  # set when changes are grouped per customer (``reprice_open``)

    def to_dict(self) -> dict[str, Any]:
        from meterline.billing.rating import _s

        return {
            **({"customer": self.customer} if self.customer is not None else {}),
            "provider": self.provider,
            "model": self.model,
            "events": self.events,
            "changed": self.changed,
            "old_cost_usd": _s(self.old_cost),
            "new_cost_usd": _s(self.new_cost),
            "old_unpriced": self.old_unpriced,
            "new_unpriced": self.new_unpriced,
        }


def reprice_events(
    events: Iterable[UsageEvent], pricer: Pricer, customer_field: str | None = None
) -> tuple[list[ModelChange], list[tuple[Any, ...]]]:
    """Per (provider, model), or per (customer, provider, model) when ``customer_field`` names the event field
    that holds the customer, what changes, and the rows to write (pure: no store access)."""
    changes: dict[tuple[str, str, str | None], ModelChange] = {}
    rows: list[tuple[Any, ...]] = []
    for e in events:
        who = None if customer_field is None else str(getattr(e, customer_field, None) or "")
        ch = changes.setdefault((e.provider, e.model, who), ModelChange(e.provider, e.model, customer=who))
        ch.events += 1
        old = e.total_cost
        ch.old_cost += old or 0
        ch.old_unpriced += old is None
        if e.pricing_source == "caller":
            ch.new_cost += old or 0
            ch.new_unpriced += old is None
            continue
        fresh = dataclasses.replace(e, **dict.fromkeys(_COSTS), pricing_source=None)  # type: ignore[arg-type]
        pricer.price(fresh)
        ch.new_cost += fresh.total_cost or 0
        ch.new_unpriced += fresh.total_cost is None
        if [getattr(fresh, c) for c in _COSTS] != [getattr(e, c) for c in _COSTS] or (
            fresh.pricing_source != e.pricing_source
        ):
            ch.changed += 1
            costs = [None if getattr(fresh, c) is None else to_pico(getattr(fresh, c)) for c in _COSTS]
            rows.append((*costs, fresh.pricing_source, e.id))
    return sorted(changes.values(), key=lambda c: (c.customer or "", c.provider, c.model)), rows


def reprice(
    store: Store, since: datetime, *, model: str | None = None, pricer: Pricer | None = None, dry_run: bool = False
) -> list[ModelChange]:
    """Re-price the events since ``since`` (of one model, when given); write unless ``dry_run``."""
    from meterline.pricing import get_pricer

    filters = {"model": model} if model else None
    changes, rows = reprice_events(
        store.iter_events(filters=filters, start=since, page_size=5000), pricer or get_pricer()
    )
    if rows and not dry_run:
        reprice_store.update_costs(store, rows)
    return changes


def finalized_until(store: Store) -> datetime | None:
    """The end of the latest finalized invoice period: events before it belong to finalized invoices."""
    from meterline.billing.store import INVOICES
    from meterline.core.timeutil import from_micros

    rows = store.fetch(f"SELECT MAX(period_end) FROM {INVOICES}")
    return from_micros(int(rows[0][0])) if rows and rows[0][0] is not None else None


def reprice_open(
    store: Store, *, pricer: Pricer | None = None, dry_run: bool = False, now: datetime | None = None
) -> tuple[datetime | None, list[ModelChange]]:
    """Re-price the events of periods not yet finalized (after the latest finalized invoice period), per customer
    and model; write the new costs and record the change in the price history unless ``dry_run``. Finalized
    invoices never change. Returns (the instant open periods start, or None when nothing is finalized; changes)."""
    from datetime import timezone

    from meterline.billing.store import customer_dimension
    from meterline.pricing import get_pricer
    from meterline.store import price_history

    pricer = pricer or get_pricer()
    since = finalized_until(store)
    dimension = customer_dimension(store)
    changes, rows = reprice_events(store.iter_events(start=since, page_size=5000), pricer, customer_field=dimension)
    if not dry_run:
        if rows:
            reprice_store.update_costs(store, rows)
        detail = {
            "open_since": since.isoformat() if since else None,
            "customer_dimension": dimension,
            "changed_events": len(rows),
            "changes": [c.to_dict() for c in changes if c.changed],
        }
        price_history.record(store, "reprice", pricer.genai_source, detail, now or datetime.now(timezone.utc))
    return since, changes
