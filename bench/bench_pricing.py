"""Cost of pricing one event, in ONE run: meterline's cached path, its uncached resolution, and the baseline
``genai_prices.calc_price`` for the same usage. Pricing runs on the recorder thread, never on the caller's.

    PYTHONPATH=src python bench/bench_pricing.py [--events 20000]
"""

from __future__ import annotations

import argparse
import time
import warnings
from datetime import datetime, timedelta, timezone

from genai_prices import Usage, calc_price

from meterline.core.event import UsageEvent
from meterline.pricing import Pricer

WHEN = datetime(2026, 11, 20, 20, tzinfo=timezone.utc)
CASES = (  # (label, provider, model, genai provider, native id)
    ("openai gpt-4o-mini", "openai", "gpt-4o-mini", "openai", "gpt-4o-mini"),
    ("anthropic sonnet 4.5, 1h cache", "anthropic", "claude-sonnet-4-5", "anthropic", "claude-sonnet-4-5"),
    ("bedrock us. profile", "bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "aws", None),
    ("groq native id", "groq", "groq/openai/gpt-oss-120b", "groq", "openai/gpt-oss-120b"),
    ("perplexity sonar (request fee)", "perplexity", "sonar", "perplexity", "sonar"),
)


def _event(provider: str, model: str, when: datetime) -> UsageEvent:
    e = UsageEvent(
        provider=provider,
        model=model,
        start_time=when,
        input_tokens=1000,
        cache_read_tokens=500,
        cache_write_tokens=300,
        cache_write_1h_tokens=100,
        output_tokens=200,
        reasoning_tokens=50,
    )
    e.finalize_totals()
    return e


def _us(fn: object, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()  # type: ignore[operator]
    return (time.perf_counter() - start) / n * 1e6


def _case(provider: str, model: str, genai_provider: str, native: str | None, n: int) -> tuple[float, float, float]:
    pricer = Pricer()
    it = iter([_event(provider, model, WHEN) for _ in range(n)])
    pricer.price(_event(provider, model, WHEN))
    cached = _us(lambda: pricer.price(next(it)), n)
    k = max(n // 20, 50)
    uncached = _us(lambda: Pricer().price(_event(provider, model, WHEN)), k)
    usage = Usage(
        input_tokens=1800,
        cache_read_tokens=500,
        cache_write_tokens=300,
        cache_write_1h_tokens=100,
        output_tokens=200,
        output_reasoning_tokens=50,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = _us(
            lambda: calc_price(usage, native or model, provider_id=genai_provider, genai_request_timestamp=WHEN), k
        )
    return cached, uncached, base


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=20000)
    n = ap.parse_args().events
    print(f"{'case':<34} {'cached µs':>10} {'uncached µs':>12} {'calc_price µs':>14}")
    for label, provider, model, genai_provider, native in CASES:
        cached, uncached, base = _case(provider, model, genai_provider, native, n)
        print(f"{label:<34} {cached:>10.1f} {uncached:>12.1f} {base:>14.1f}")
    # time-of-day prices: a call every 10 minutes for 10 days crosses DeepSeek's windows 20 times
    pricer = Pricer()
    it = iter([WHEN + timedelta(minutes=10 * i) for i in range(n)])
    moving = _us(lambda: pricer.price(_event("deepseek", "deepseek-chat", next(it))), n)
    print(f"{'deepseek, instants across windows':<34} {moving:>10.1f} {'':>12} {'':>14}")


if __name__ == "__main__":
    main()
