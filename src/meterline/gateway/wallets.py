"""Prepaid wallets in the gateway: a customer with wallet grants is refused (HTTP 402 naming the wallet) once
its balance reaches zero, like a hard budget.

Per customer with grants, three counters (pico-USD, in Redis when the enforcer's counters are shared):
``base`` = the exact balance read from the database at first use (grants - billed usage, see
:func:`meterline.billing.service.wallet`), ``spent`` = what settled calls cost the customer since, and
``held`` = estimates of calls in flight (the larger of the enforcer's provider-cost estimate and the customer's
previous call's charge). Admission is refused when ``base + top-ups - spent - held``
(before the call's own estimate) is <= 0, so calls in flight together overspend by at most their own cost.

A settled call is counted at the customer's rule (override > plan > default rate card) at its highest unit
prices: no free allowance or tier discount, so the gateway may stop a customer early, never late. Grants
(top-ups) are re-read every ``refresh_s``. Threshold alerts: when 50/80/100 % of the granted amount is
used, a warning is logged and, if the customer's metadata has ``wallet_webhook_url``, a webhook is sent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from meterline.billing import service
from meterline.billing import store as billing_store
from meterline.billing.invoice import period_of
from meterline.billing.model import Rule
from meterline.billing.rating import Usage, choose_rule, event_charge
from meterline.billing.rating import plain_decimal as _s
from meterline.budgets import alerts
from meterline.core.event import UsageEvent
from meterline.gateway.counters import Counters
from meterline.gateway.enforcer import BudgetExceeded
from meterline.pricing import get_pricer
from meterline.store.base import BillingStore
from meterline.store.schema import PICO

logger = logging.getLogger("meterline")
THRESHOLDS = (50, 80, 100)


class WalletExhausted(BudgetExceeded):
    """The customer's prepaid wallet is used up (answered 402 Payment Required)."""

    status_code = 402

    def __init__(self, customer: str, balance_usd: Decimal) -> None:
        Exception.__init__(
            self,
            f"meterline wallet of customer {customer!r} is empty: balance {_s(balance_usd)} USD "
            "(add credit with `meterline wallets grant`)",
        )
        self.customer = customer


@dataclasses.dataclass
class _Wallet:
    granted: int  # pico-USD of active grants, as last read
    chain: Sequence[Sequence[Rule]]
    webhook: str | None


class WalletGuard:
    def __init__(
        self,
        store: BillingStore,
        counters: Counters,
        *,
        refresh_s: float = 5.0,
        send: alerts.Sender = alerts.post_webhook,
    ) -> None:
        self.store = store
        self.counters = counters
        self.refresh_s = refresh_s
        self.send = send
        self.dimension = billing_store.DEFAULT_DIMENSION
        self._wallets: dict[str, _Wallet] = {}
        self._loaded_at = -1e9
        self._lock = asyncio.Lock()
        self._ready: set[str] = set()
        self._holds: dict[str, tuple[str, int]] = {}
        self._alerted: set[tuple[str, int, int]] = set()
        self._last_charge: dict[str, int] = {}

    def _read(self) -> tuple[str, dict[str, _Wallet]]:
        now = datetime.now(timezone.utc)
        ctx = service.Context(self.store)
        customers = {c.id: c for c in billing_store.list_customers(self.store)}
        out: dict[str, _Wallet] = {}
        for cid in billing_store.wallet_customers(self.store):
            c = customers.get(cid)
            if c is None:
                continue
            granted = sum((g.amount for g in ctx.grants(cid) if g.active(now)), Decimal(0))
            today = now.astimezone(ZoneInfo(c.timezone)).date()
            segs = ctx.segments(c, period_of(now, c.timezone))
            seg = [s for s in segs if s.start <= today][-1]
            chain = [c.overrides, seg.plan.rules if seg.plan else (), ctx.default_rules(seg)]
            hook = c.metadata.get("wallet_webhook_url")
            out[cid] = _Wallet(int(granted * PICO), chain, hook if isinstance(hook, str) else None)
        return ctx.dimension, out

    async def wallets(self) -> dict[str, _Wallet]:
        if time.monotonic() - self._loaded_at > self.refresh_s:
            async with self._lock:
                if time.monotonic() - self._loaded_at > self.refresh_s:
                    try:
                        self.dimension, self._wallets = await asyncio.to_thread(self._read)
                    except Exception as exc:  # noqa: BLE001 - keep the last wallets; retry after refresh_s
                        logger.error("meterline gateway: reading wallets failed (keeping the last ones): %s", exc)
                    self._loaded_at = time.monotonic()
        return self._wallets

    async def _keys(self, cid: str, w: _Wallet) -> tuple[str, str, str, str]:
        base = f"wallet:{cid}"
        keys = (f"{base}:base", f"{base}:granted", f"{base}:spent", f"{base}:held")
        if cid not in self._ready:
            balance = await asyncio.to_thread(service.balance, self.store, cid)
            await self.counters.init(keys[0], int(balance * PICO), None)
            await self.counters.init(keys[1], w.granted, None)
            await self.counters.init(keys[2], 0, None)
            await self.counters.init(keys[3], 0, None)
            self._ready.add(cid)
        return keys

    async def available(self, cid: str) -> int:
        """Pico-USD left in the customer's wallet as the gateway counts it (None-safe: 0 without a wallet)."""
        w = (await self.wallets()).get(cid)
        if w is None:
            return 0
        k = await self._keys(cid, w)
        vals = [await self.counters.get(x) for x in k]
        return vals[0] + (w.granted - vals[1]) - vals[2] - vals[3]

    async def admit(
        self,
        call_id: str,
        identity: Mapping[str, Any],
        data: Mapping[str, Any],
        estimate: Callable[[Mapping[str, Any]], int],
    ) -> None:
        wallets = await self.wallets()  # first: it also reads which event field names the customer
        cid = identity.get(self.dimension)
        w = wallets.get(cid) if isinstance(cid, str) else None
        if w is None or not isinstance(cid, str):
            return
        k = await self._keys(cid, w)
        # hold what the customer's previous call cost when that is more than the provider-cost estimate,
        # so a burst of similar calls stops before the balance rather than after
        amount = max(estimate(data), self._last_charge.get(cid, 0))
        held = await self.counters.add(k[3], amount)
        base, granted, spent = [await self.counters.get(x) for x in k[:3]]
        left = base + (w.granted - granted) - spent - (held - amount)
        if left <= 0:
            await self.counters.add(k[3], -amount)
            raise WalletExhausted(cid, Decimal(left) / PICO)
        if call_id:
            self._holds[call_id] = (cid, amount)

    async def settle(self, call_id: str, event: UsageEvent) -> None:
        hold = self._holds.pop(call_id, None)
        if hold is None:
            return
        cid, amount = hold
        w = self._wallets.get(cid)
        k = (f"wallet:{cid}:base", f"wallet:{cid}:granted", f"wallet:{cid}:spent", f"wallet:{cid}:held")
        await self.counters.add(k[3], -amount)
        if w is None:
            return
        priced = dataclasses.replace(event, total_cost=None)
        get_pricer().price(priced)
        usage = Usage(
            priced.provider,
            priced.model,
            1,
            priced.input_tokens,
            priced.cache_read_tokens,
            priced.cache_write_tokens,
            priced.cache_write_1h_tokens,
            priced.output_tokens,
            priced.reasoning_tokens,
            provider_cost=priced.total_cost or Decimal(0),
        )
        charge = event_charge(choose_rule(priced.provider, priced.model, w.chain), usage)
        self._last_charge[cid] = int(charge * PICO)
        await self.counters.add(k[2], int(charge * PICO))
        self._maybe_alert(cid, w, await self.available(cid))

    async def release(self, call_id: str) -> None:
        hold = self._holds.pop(call_id, None)
        if hold is not None:
            await self.counters.add(f"wallet:{hold[0]}:held", -hold[1])

    def _maybe_alert(self, cid: str, w: _Wallet, left: int) -> None:
        if w.granted <= 0:
            return
        used_pct = (w.granted - left) * 100 / w.granted
        due = [t for t in THRESHOLDS if used_pct >= t and (cid, t, w.granted) not in self._alerted]
        for t in due:
            self._alerted.add((cid, t, w.granted))
            payload = {
                "type": "meterline.wallet.threshold",
                "customer": cid,
                "threshold_percent": t,
                "balance_usd": _s(Decimal(left) / PICO),
                "granted_usd": _s(Decimal(w.granted) / PICO),
            }
            logger.warning(
                "meterline wallet of %r: %d%% of its credit used (balance %s USD)", cid, t, payload["balance_usd"]
            )
            if w.webhook:
                hook = w.webhook
                asyncio.get_running_loop().run_in_executor(None, self.send, hook, payload)
