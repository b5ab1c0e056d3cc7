"""Hard budgets under 50-way concurrency, through the real Enforcer with in-process and Redis counters:
a budget worth 10 calls admits close to 10 whatever the first estimate, and the overshoot stays within
the cost of the calls in flight, also when real usage is far above the estimate."""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from conftest import TEST_REDIS_PREFIX, TEST_REDIS_URL
from meterline.budgets import store as budget_store
from meterline.core.event import UsageEvent
from meterline.gateway.counters import Counters, LocalCounters, RedisCounters
from meterline.gateway.enforcer import BudgetExceeded, Enforcer
from meterline.store.backend import open_stores

CALL = Decimal("0.012")  # gpt-4o-mini, 20,000 output tokens at $0.60 per million
OUTPUT_TOKENS = 20_000


@dataclass
class Run:
    admitted: int
    rejected: int
    spent: Decimal
    max_in_flight: int
    limit: Decimal

    @property
    def overshoot(self) -> Decimal:
        return max(self.spent - self.limit, Decimal(0))


def counters_for(kind: str) -> Counters:
    if kind == "local":
        return LocalCounters()
    return RedisCounters(TEST_REDIS_URL, prefix=f"{TEST_REDIS_PREFIX}{uuid.uuid4().hex}")


async def concurrent_calls(
    enforcer: Enforcer, n: int, *, seed: int = 7, model: str = "gpt-4o-mini", tokens: int = OUTPUT_TOKENS
) -> tuple[int, int, int]:
    """``n`` calls at once (random 20-80 ms upstream time); (admitted, rejected, most calls in flight)."""
    rng = random.Random(seed)
    in_flight = 0
    peak = 0

    async def one(i: int) -> bool:
        nonlocal in_flight, peak
        try:
            await enforcer.admit(f"c{i}", {"team_id": "team-a"}, {"model": model, "messages": []})
        except BudgetExceeded:
            return False
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(rng.uniform(0.02, 0.08))
        in_flight -= 1
        event = UsageEvent(provider="openai", model="gpt-4o-mini", start_time=datetime.now(timezone.utc),
                           output_tokens=tokens)  # fmt: skip
        await enforcer.settle(f"c{i}", event)
        return True

    results = await asyncio.gather(*(one(i) for i in range(n)))
    return results.count(True), results.count(False), peak


def run_shape(tmp_path: Path, kind: str, *, reserve: Decimal, limit: Decimal, adaptive: bool = True) -> Run:
    store, reader = open_stores(f"sqlite:///{tmp_path / f'b-{uuid.uuid4().hex[:6]}.db'}")
    reader.close()
    budget_store.create_budget(store, {"name": "team-a", "scope": "team", "scope_value": "team-a", "period": "total",
                            "limit_usd": str(limit), "thresholds": [100]})  # fmt: skip
    counters = counters_for(kind)

    async def scenario() -> Run:
        enforcer = Enforcer(store, counters, default_reserve_usd=reserve, send=lambda u, p: None, adaptive=adaptive)
        admitted, rejected, peak = await concurrent_calls(enforcer, 50)
        [key] = enforcer._initialised  # the budget's counter base key
        spent_pico = await counters.get(f"{key}:spent")
        held = await counters.get(f"{key}:held")
        assert held == 0  # every estimate was released
        await counters.close()
        return Run(admitted, rejected, Decimal(spent_pico) / Decimal(10) ** 12, peak, limit)

    try:
        return asyncio.run(scenario())
    finally:
        store.close()


@pytest.mark.parametrize("kind", ["local", "redis"])
def test_a_budget_worth_10_calls_admits_close_to_10_when_the_guess_is_too_high(kind: str, tmp_path: Path) -> None:
    # the static guess reserves the whole budget for each call (the 1 admitted of 50)
    limit = CALL * 10
    before = run_shape(tmp_path, kind, reserve=limit, limit=limit, adaptive=False)
    assert before.admitted == 1
    run = run_shape(tmp_path, kind, reserve=limit, limit=limit)
    assert 8 <= run.admitted <= 10 + run.max_in_flight
    assert run.admitted + run.rejected == 50
    assert run.spent == CALL * run.admitted
    assert run.overshoot <= CALL * run.max_in_flight


@pytest.mark.parametrize("kind", ["local", "redis"])
def test_overshoot_stays_within_calls_in_flight_when_usage_is_far_above_the_guess(kind: str, tmp_path: Path) -> None:
    limit = Decimal("0.05")  # worth 4 calls of $0.012; the guess is 12x too low
    before = run_shape(tmp_path, kind, reserve=Decimal("0.001"), limit=limit, adaptive=False)
    assert before.admitted >= 20  # the old rule: $0.24+ spent on a $0.05 limit
    run = run_shape(tmp_path, kind, reserve=Decimal("0.001"), limit=limit)
    assert 4 <= run.admitted <= 6
    assert run.overshoot <= CALL * run.max_in_flight
    assert run.spent <= limit + CALL * 2


def test_estimate_learns_per_model_group() -> None:
    e = Enforcer(object.__new__(type("S", (), {"budget_list": None})), LocalCounters(),
                 default_reserve_usd=Decimal("0.10"))  # fmt: skip
    assert e.estimate_learned("a", {"model": "a"}) == (100_000_000_000, False)
    e.learn("a", 12_000_000_000)
    assert e.estimate_learned("a", {"model": "a"}) == (12_000_000_000, True)
    e.learn("a", 24_000_000_000)  # a higher real cost is learned fast
    assert e.estimate_learned("a", {"model": "a"}) == (18_000_000_000, True)
    assert e.estimate_learned("b", {"model": "b"}) == (100_000_000_000, False)  # per group
