"""Hard budgets under concurrency: calls admitted and overshoot, learning enforcer vs the static rule.

N concurrent calls (default 50) against one hard budget, through the real ``Enforcer`` (in-process
counters, or Redis with ``--redis``), each call taking 20-80 ms upstream and costing a known amount
(gpt-4o-mini, 20,000 output tokens = $0.012). Shapes: the first estimate 10x too high, right, 12x too
low. Baseline in the same run: ``Enforcer(adaptive=False)``, the rule before learning (static estimate,
immediate refusal).

    PYTHONPATH=src python bench/bench_budgets.py [--calls 50] [--redis redis://127.0.0.1:6379/0]

Goal: a budget worth N calls admits >= 0.8 N; overshoot <= the cost of the calls in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import uuid
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

from meterline.budgets import store as budget_store
from meterline.core.event import UsageEvent
from meterline.gateway.counters import Counters, LocalCounters, RedisCounters
from meterline.gateway.enforcer import BudgetExceeded, Enforcer
from meterline.store.backend import open_stores

CALL = Decimal("0.012")
SHAPES = [  # (name, budget worth N calls, first estimate as a multiple of the real cost)
    ("guess 10x too high", 10, Decimal(10)),
    ("guess right", 10, Decimal(1)),
    ("guess 12x too low", 4, Decimal(1) / 12),
    ("guess 12x too low", 10, Decimal(1) / 12),
    ("guess 10x too high", 40, Decimal(10)),
]


async def run(
    root: Path, calls: int, worth: int, ratio: Decimal, adaptive: bool, redis: str | None
) -> dict[str, object]:
    store, reader = open_stores(f"sqlite:///{root / f'{uuid.uuid4().hex}.db'}")
    reader.close()
    limit = CALL * worth + Decimal("0.001")  # just above N calls: the (N+1)th call is the first one too many
    budget_store.create_budget(store, {"name": "b", "scope": "team", "scope_value": "t", "period": "total",
                            "limit_usd": str(limit), "thresholds": [100]})  # fmt: skip
    counters: Counters = (
        RedisCounters(redis, prefix=f"meterline-bench-{uuid.uuid4().hex}") if redis else LocalCounters()
    )
    enforcer = Enforcer(store, counters, default_reserve_usd=CALL * ratio, send=lambda u, p: None, adaptive=adaptive)
    rng = random.Random(1)
    in_flight = peak = 0

    async def one(i: int) -> bool:
        nonlocal in_flight, peak
        try:
            await enforcer.admit(f"c{i}", {"team_id": "t"}, {"model": "gpt-4o-mini"})
        except BudgetExceeded:
            return False
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(rng.uniform(0.02, 0.08))
        in_flight -= 1
        event = UsageEvent(provider="openai", model="gpt-4o-mini", start_time=datetime.now(timezone.utc),
                           output_tokens=20_000)  # fmt: skip
        await enforcer.settle(f"c{i}", event)
        return True

    loop = asyncio.get_running_loop()
    t0 = loop.time()
    admitted = (await asyncio.gather(*(one(i) for i in range(calls)))).count(True)
    elapsed = loop.time() - t0
    await counters.close()
    store.close()
    spent = CALL * admitted
    return {"admitted": admitted, "spent": spent, "limit": limit, "overshoot": max(spent - limit, Decimal(0)),
            "peak": peak, "seconds": elapsed}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=50)
    p.add_argument("--redis", help="Redis URL for shared counters (default: in-process counters)")
    args = p.parse_args()
    print(f"{args.calls} concurrent calls of ${CALL} each; counters: {'redis' if args.redis else 'in-process'}")
    header = f"{'shape':<20} {'worth':>5} {'rule':<9} {'admitted':>8} {'spent $':>8} {'limit $':>8} "
    print(header + f"{'overshoot $':>11} {'in flight':>9} {'<= in flight':>12} {'seconds':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, worth, ratio in SHAPES:
            for adaptive in (False, True):
                r = asyncio.run(run(Path(tmp), args.calls, worth, ratio, adaptive, args.redis))
                bound = r["overshoot"] <= CALL * r["peak"]  # type: ignore[operator]
                print(
                    f"{name:<20} {worth:>5} {'learning' if adaptive else 'static':<9} {r['admitted']:>8} "
                    f"{r['spent']:>8} {r['limit']:>8} {r['overshoot']:>11} {r['peak']:>9} {bound!s:>12} "
                    f"{r['seconds']:>7.2f}"
                )


if __name__ == "__main__":
    main()
