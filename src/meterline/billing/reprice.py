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

    def to_dict(self) -> dict[str, Any]:
        from meterline.billing.rating import _s

        return {
            "provider": self.provider,
            "model": self.model,
            "events": self.events,
            "changed": self.changed,
            "old_cost_usd": _s(self.old_cost),
            "new_cost_usd": _s(self.new_cost),
            "old_unpriced": self.old_unpriced,
            "new_unpriced": self.new_unpriced,
        }


def reprice_events(events: Iterable[UsageEvent], pricer: Pricer) -> tuple[list[ModelChange], list[tuple[Any, ...]]]:
    """Per (provider, model) what changes, and the rows to write (pure: no store access)."""
    changes: dict[tuple[str, str], ModelChange] = {}
    rows: list[tuple[Any, ...]] = []
    for e in events:
        ch = changes.setdefault((e.provider, e.model), ModelChange(e.provider, e.model))
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
    return sorted(changes.values(), key=lambda c: (c.provider, c.model)), rows


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
