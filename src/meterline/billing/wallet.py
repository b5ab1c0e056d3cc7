"""Prepaid wallets: the balance from grants and what was billed against them (pure, exact Decimal).

Grants are consumed first-to-expire first (grants without expiry last, older first among equals). A
grant's unused rest is lost when it expires. The balance is never negative: billed usage beyond every
active grant is the overspend, reported apart once (invoiced as ``total_usd``), not subtracted again.

Debits are (when, amount): the credit applied by each finalized invoice (at its period end) and the
live subtotal of the periods not finalized yet (at "now").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from meterline.billing.model import ZERO, Grant


@dataclasses.dataclass(frozen=True)
class WalletState:
    balance: Decimal
    granted: Decimal  # sum of the grants active now
    remaining: dict[str, Decimal]  # grant id -> unused amount (active grants)
    overspend: Decimal  # billed beyond every grant (>= 0)


def state(grants: Sequence[Grant], debits: Sequence[tuple[datetime, Decimal]], now: datetime) -> WalletState:
    left = {g.id: g.amount for g in grants}
    deficit = ZERO
    for when, amount in sorted(debits, key=lambda d: d[0]):
        usable = [g for g in grants if g.active(when) and left[g.id] > 0]
        usable.sort(key=lambda g: (g.expires_at is None, g.expires_at or g.granted_at, g.granted_at, g.id))
        for g in usable:
            if amount <= 0:
                break
            take = min(left[g.id], amount)
            left[g.id] -= take
            amount -= take
        deficit += amount
    active = [g for g in grants if g.active(now)]
    remaining = {g.id: left[g.id] for g in active}
    granted = sum((g.amount for g in active), ZERO)
    return WalletState(sum(remaining.values(), ZERO), granted, remaining, deficit)
