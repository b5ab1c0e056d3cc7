"""Hard budgets in the gateway: reserve an estimate at admission, settle with the real cost after.

Admission of a call that counts against a budget: ``held += estimate``; the call is admitted when the
budget is not spent and ``spent + held`` *before* its own estimate is below a hard limit. So calls in
flight together can overshoot a budget by at most the cost of the calls already admitted, never more.
After the call: ``spent += real cost``, ``held -= estimate`` (a failed call only releases its estimate).

Under concurrency (see docs/guides/gateway.md "Budgets under concurrency"):
- The estimate learns: per model group, an EWMA of the real cost of settled calls replaces the static
  guess (prompt characters / 4 input tokens + ``max_tokens`` or 256 output tokens) once one call settled.
- A call that would be refused only because *other calls in flight* hold the rest of the budget waits
  (up to ``admit_wait_s``) for them to settle instead of being refused at once: their real cost may be
  below their estimate. A budget that is really spent refuses at once.
- While a model group's cost is unknown (nothing settled yet) and the budget is tight (less than
  ``COLD_FACTOR`` static estimates left), its calls go one at a time: a guess that is far too low
  cannot let dozens of calls in together before the first real cost is known.

Counters live in Redis when ``METERLINE_REDIS_URL`` is set (shared by every proxy process), else in
this process. A period's ``spent`` starts from the spend already stored (first use per process; Redis
``SET NX`` keeps the first value). Definitions are re-read every ``METERLINE_BUDGETS_REFRESH_S`` (5 s)
off the event loop. Alerts: after settling, thresholds reached are claimed and sent from a thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import sys
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, cast

from meterline.budgets import alerts
from meterline.budgets import store as budget_store
from meterline.core.event import UsageEvent
from meterline.core.timeutil import to_micros
from meterline.gateway.budget_source import BudgetSource, CollectorBudgets, SQLBudgets
from meterline.gateway.counters import Counters, counters_from_url
from meterline.pricing import get_pricer
from meterline.store.base import BillingStore
from meterline.store.schema import PICO

logger = logging.getLogger("meterline")

DEFAULT_OUTPUT_TOKENS = 256  # reserved when a request sets no max_tokens
COLD_FACTOR = 1000  # a budget is "tight" for an unlearned model group below this many static estimates
EWMA_UP, EWMA_DOWN = 0.5, 0.2  # learn a higher real cost faster than a lower one


class _Wait(Exception):
    """The budget's rest is held by calls in flight: try again when they settle."""

    def __init__(self, budget: budget_store.Budget, spent: int) -> None:
        super().__init__(budget.name)
        self.budget = budget
        self.spent = spent


class BudgetExceeded(Exception):
    def __init__(self, budget: budget_store.Budget, spent_usd: Decimal) -> None:
        super().__init__(
            f"meterline budget {budget.name!r} exceeded: {budget.scope} {budget.scope_value!r} spent "
            f"{spent_usd.normalize():f} of {budget.limit_usd.normalize():f} USD ({budget.period})"
        )
        self.budget = budget


@dataclasses.dataclass(frozen=True)
class _Hold:
    budget: budget_store.Budget
    spent_key: str
    held_key: str
    amount: int  # pico-USD
    since: float = 0.0  # time.monotonic() at admission
    group: str = ""  # the request's model group: its settled cost teaches the estimate


class Enforcer:
    def __init__(
        self,
        store: BillingStore | BudgetSource,
        counters: Counters,
        *,
        refresh_s: float = 5.0,
        default_reserve_usd: Decimal = Decimal("0.01"),
        hold_ttl_s: float = 600.0,
        send: alerts.Sender = alerts.post_webhook,
        admit_wait_s: float = 10.0,
        poll_s: float = 0.02,
        adaptive: bool = True,
    ) -> None:
        # a database store, or a budget source (meterline.gateway.budget_source)
        self.source: BudgetSource = cast(BudgetSource, store) if hasattr(store, "budget_list") else SQLBudgets(store)
        self.counters = counters
        self.refresh_s = refresh_s
        self.default_reserve = int(default_reserve_usd * PICO)
        self.send = send
        self.hold_ttl_s = hold_ttl_s
        self._swept_at = time.monotonic()
        self._budgets: list[budget_store.Budget] = []
        self._loaded_at = -1e9
        self._load_lock = asyncio.Lock()
        self._initialised: set[str] = set()
        self._holds: dict[str, list[_Hold]] = {}
        self._alerted: set[tuple[str, str, int]] = set()
        self.admit_wait_s = admit_wait_s
        self.poll_s = poll_s
        self._learned: dict[str, float] = {}  # model group -> EWMA of the real cost per call, pico-USD
        # False: the static estimate and an immediate refusal (the rule before learning; a bench baseline)
        self.adaptive = adaptive
        self.wallets: Any = None  # prepaid wallets (meterline.gateway.wallets.WalletGuard), checked first

    # -- definitions ----------------------------------------------------------------------------
    async def budgets(self) -> list[budget_store.Budget]:
        if time.monotonic() - self._loaded_at > self.refresh_s:
            async with self._load_lock:
                if time.monotonic() - self._loaded_at > self.refresh_s:
                    try:
                        self._budgets = await asyncio.to_thread(self.source.budget_list)
                    except Exception as exc:  # noqa: BLE001 - keep the last definitions; retry after refresh_s
                        logger.error("meterline gateway: reading budgets failed (keeping the last ones): %s", exc)
                    self._loaded_at = time.monotonic()
        return self._budgets

    async def _keys(self, budget: budget_store.Budget, now: datetime) -> tuple[str, str]:
        start = budget.period_start(now)
        base = f"budget:{budget.id}:{to_micros(start)}"
        spent_key, held_key = f"{base}:spent", f"{base}:held"
        if base not in self._initialised:
            stored = await asyncio.to_thread(self.source.spend, budget, now)
            ttl = None if budget.period == "total" else 40 * 86400  # outlives any period it counts
            await self.counters.init(spent_key, int(stored * PICO), ttl)
            await self.counters.init(held_key, 0, ttl)
            self._initialised.add(base)
        return spent_key, held_key

    # -- the three steps of a call --------------------------------------------------------------
    async def admit(self, call_id: str, identity: Mapping[str, Any], data: Mapping[str, Any]) -> None:
        if self.wallets is not None:
            await self.wallets.admit(call_id, identity, data, self.estimate)
        try:
            await self._admit_budgets(call_id, identity, data)
        except BaseException:
            if self.wallets is not None:  # a budget refused the call: its wallet hold goes too
                await self.wallets.release(call_id)
            raise

    async def _admit_budgets(self, call_id: str, identity: Mapping[str, Any], data: Mapping[str, Any]) -> None:
        applicable = [b for b in await self.budgets() if b.matches(identity)]
        if not applicable:
            return
        group = str(data.get("model") or "")
        deadline = time.monotonic() + self.admit_wait_s
        while True:
            await self._sweep()  # holds of calls that never settled must not make anyone wait
            amount, learned = self.estimate_learned(group, data)
            try:
                holds = await self._hold(applicable, amount, learned, group)
                break
            except _Wait as wait:
                if time.monotonic() >= deadline:
                    raise BudgetExceeded(wait.budget, Decimal(wait.spent) / PICO) from None
                await asyncio.sleep(self.poll_s)
        if call_id:
            self._holds[call_id] = holds

    def _must_wait(self, spent: int, others: int, amount: int, learned: bool, limit: int) -> bool:
        if not self.adaptive:
            return False
        if others <= 0:
            return False  # nothing else in flight: the call is admitted while the budget is not spent
        if spent + others >= limit:
            return True  # the rest is held by calls in flight; they may cost less than their estimates
        return not learned and spent + others + amount * COLD_FACTOR >= limit

    async def _hold(self, applicable: list[budget_store.Budget], amount: int, learned: bool, group: str) -> list[_Hold]:
        """Reserve ``amount`` on every applicable budget, or raise BudgetExceeded / _Wait (nothing held)."""
        now = datetime.now(timezone.utc)
        holds: list[_Hold] = []
        try:
            for budget in applicable:
                spent_key, held_key = await self._keys(budget, now)
                limit = budget.limit_pico
                if budget.hard:  # look first without holding: waiters must not inflate ``held`` for others
                    spent, others = await self.counters.get(spent_key), await self.counters.get(held_key)
                    if spent >= limit:
                        raise BudgetExceeded(budget, Decimal(spent) / PICO)
                    if self._must_wait(spent, others, amount, learned, limit):
                        raise _Wait(budget, spent)
                held = await self.counters.add(held_key, amount)
                holds.append(_Hold(budget, spent_key, held_key, amount, time.monotonic(), group))
                if budget.hard:
                    spent = await self.counters.get(spent_key)
                    if spent >= limit:
                        raise BudgetExceeded(budget, Decimal(spent) / PICO)
                    if self._must_wait(spent, held - amount, amount, learned, limit):
                        raise _Wait(budget, spent)
                    if not self.adaptive and spent + held - amount >= limit:
                        raise BudgetExceeded(budget, Decimal(spent) / PICO)
        except BaseException:
            for h in holds:
                await self.counters.add(h.held_key, -h.amount)
            raise
        return holds

    async def _sweep(self) -> None:
        """Release holds of calls that never settled (a client that abandons a stream fires no LiteLLM
        hook at all), so their estimates do not block a budget for ever."""
        now = time.monotonic()
        if now - self._swept_at < min(60.0, self.hold_ttl_s):
            return
        self._swept_at = now
        stale = [cid for cid, hs in self._holds.items() if hs and now - hs[0].since > self.hold_ttl_s]
        for cid in stale:
            await self.release(cid)

    async def settle(self, call_id: str, event: UsageEvent) -> None:
        if self.wallets is not None:
            await self.wallets.settle(call_id, event)
        holds = self._holds.pop(call_id, None)
        if not holds:
            return
        priced = dataclasses.replace(event, total_cost=None)
        get_pricer().price(priced)
        cost = int((priced.total_cost or Decimal(0)) * PICO)
        self.learn(holds[0].group, cost)
        for h in holds:
            spent = await self.counters.add(h.spent_key, cost)
            await self.counters.add(h.held_key, -h.amount)
            self._maybe_alert(h.budget, Decimal(spent) / PICO)

    async def release(self, call_id: str) -> None:
        if self.wallets is not None:
            await self.wallets.release(call_id)
        for h in self._holds.pop(call_id, None) or ():
            await self.counters.add(h.held_key, -h.amount)

    # -- helpers --------------------------------------------------------------------------------
    def _maybe_alert(self, budget: budget_store.Budget, spent: Decimal) -> None:
        if not self.source.sends_alerts:
            return
        period = budget.period_start().isoformat()
        due = [t for t in alerts.reached(budget, spent) if (budget.id, period, t) not in self._alerted]
        if not due:
            return
        self._alerted.update((budget.id, period, t) for t in due)

        def run() -> None:
            try:
                self.source.alert(budget, spent, self.send)
            except Exception as exc:  # noqa: BLE001 - an alert failure must not disturb the proxy
                logger.error("meterline: budget alert check for %r failed: %s", budget.name, exc)

        asyncio.get_running_loop().run_in_executor(None, run)

    def learn(self, group: str, cost: int) -> None:
        """Fold a settled call's real cost (pico-USD) into its model group's estimate."""
        before = self._learned.get(group)
        if before is None:
            self._learned[group] = float(cost)
        else:
            alpha = EWMA_UP if cost > before else EWMA_DOWN
            self._learned[group] = before + alpha * (cost - before)

    def estimate_learned(self, group: str, data: Mapping[str, Any]) -> tuple[int, bool]:
        """(pico-USD to reserve, whether it comes from settled calls). A request with an explicit
        ``max_tokens`` never reserves more than its static estimate (an upper bound on its output)."""
        learned = self._learned.get(group) if self.adaptive else None
        static = self.estimate(data)
        if learned is None:
            return static, False
        amount = max(int(learned), 1)
        if data.get("max_tokens") or data.get("max_completion_tokens"):
            amount = min(amount, static)
        return amount, True

    def estimate(self, data: Mapping[str, Any]) -> int:
        """Pico-USD to reserve: the prompt's characters / 4 as input tokens plus ``max_tokens`` output
        (256 when unset), at the price of the model group's first deployment; else a fixed amount."""
        provider, model = _deployment(str(data.get("model") or ""))
        if not provider or not model:
            return self.default_reserve
        text = sum(len(json.dumps(data.get(k), default=str)) for k in ("messages", "prompt", "input", "system"))
        out = data.get("max_tokens") or data.get("max_completion_tokens") or DEFAULT_OUTPUT_TOKENS
        probe = UsageEvent(
            provider=provider,
            model=model,
            start_time=datetime.now(timezone.utc),
            input_tokens=text // 4 + 1,
            output_tokens=int(out) if isinstance(out, int) else DEFAULT_OUTPUT_TOKENS,
        )
        get_pricer().price(probe)
        if probe.total_cost is None:
            return self.default_reserve
        return int(probe.total_cost * PICO)


def _deployment(model_group: str) -> tuple[str | None, str | None]:
    """(provider, model) of the proxy router's first deployment for ``model_group``."""
    proxy = sys.modules.get("litellm.proxy.proxy_server")  # only inside a running proxy: never import it here
    llm_router = getattr(proxy, "llm_router", None)
    if llm_router is None or not model_group:
        return None, None
    for dep in llm_router.get_model_list(model_name=model_group) or ():
        name = str((dep.get("litellm_params") or {}).get("model") or "")
        if "/" in name:
            provider, model = name.split("/", 1)
            return provider, model
    return None, None


def enforcer_from_env() -> Enforcer | None:
    """The enforcer for this process: budgets from ``METERLINE_BUDGETS`` (a database URL; ``off``
    disables), else from the meterline destination (a database, or a collector with the ingest key)."""
    from meterline.core.config import destination_kind, resolve_destination
    from meterline.store.backend import open_stores

    spec = os.environ.get("METERLINE_BUDGETS", "").strip()
    if spec.lower() in ("off", "none", "false", "0", "no"):
        return None
    source: CollectorBudgets | SQLBudgets
    if not spec and destination_kind(dest := resolve_destination(None)) == "http":
        source = CollectorBudgets(dest, os.environ.get("METERLINE_API_KEY"))
    else:
        writer, reader = open_stores(spec or resolve_destination(None), pool_size=2)
        if reader is not writer:
            reader.close()
        source = SQLBudgets(writer)
    prefix = os.environ.get("METERLINE_REDIS_PREFIX", "meterline")
    counters = counters_from_url(os.environ.get("METERLINE_REDIS_URL"), prefix)
    refresh = float(os.environ.get("METERLINE_BUDGETS_REFRESH_S", "5"))
    reserve = Decimal(os.environ.get("METERLINE_GATEWAY_RESERVE_USD", "0.01"))
    hold_ttl = float(os.environ.get("METERLINE_GATEWAY_HOLD_TTL_S", "600"))
    wait = float(os.environ.get("METERLINE_GATEWAY_ADMIT_WAIT_S", "10"))
    enforcer = Enforcer(
        source, counters, refresh_s=refresh, default_reserve_usd=reserve, hold_ttl_s=hold_ttl, admit_wait_s=wait
    )
    if isinstance(source, SQLBudgets):  # prepaid wallets are read from the database
        from meterline.gateway.wallets import WalletGuard

        enforcer.wallets = WalletGuard(source.store, counters, refresh_s=refresh)
    return enforcer
