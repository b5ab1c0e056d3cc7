"""Shared set-up for the Anthropic SDK and Bedrock tests: fixed prices and expected costs computed here,
independently of meterline's pricer."""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Any

MTOK = Decimal(10**6)
# USD per million tokens; deliberately not genai-prices' numbers, so a silent fallback would show.
IN, OUT, CACHE_READ, CACHE_WRITE_5M, CACHE_WRITE_1H = (
    Decimal("2"),
    Decimal("10"),
    Decimal("0.2"),
    Decimal("2.5"),
    Decimal("4"),
)
_RATES = {
    "input_mtok": str(IN),
    "output_mtok": str(OUT),
    "cache_read_mtok": str(CACHE_READ),
    "cache_write_mtok": str(CACHE_WRITE_5M),
    "cache_write_1h_mtok": str(CACHE_WRITE_1H),
}
ANTHROPIC_MODEL = "claude-test-1"
BEDROCK_MODEL = "us.anthropic.claude-test-1-v1:0"  # the override is for the base id: prefix must be stripped
PRICES: list[dict[str, Any]] = [
    {"provider": "anthropic", "model": ANTHROPIC_MODEL, **_RATES},
    {"provider": "bedrock", "model": "anthropic.claude-test-1-v1:0", **_RATES},
]
MSGS = [{"role": "user", "content": "What is the weather in Paris today?"}]  # 35 chars -> 9 input tokens


def expected_cost(
    input: int = 0, output: int = 0, cache_read: int = 0, cache_write: int = 0, cache_write_1h: int = 0
) -> dict[str, Decimal]:
    parts = {
        "input_cost": IN * input / MTOK,
        "cache_read_cost": CACHE_READ * cache_read / MTOK,
        "cache_write_cost": (CACHE_WRITE_5M * (cache_write - cache_write_1h) + CACHE_WRITE_1H * cache_write_1h) / MTOK,
        "output_cost": OUT * output / MTOK,
    }
    parts["total_cost"] = sum(parts.values(), Decimal(0))
    return parts


def assert_cost(event: Any, **usage: int) -> None:
    want = expected_cost(**usage)
    got = {k: getattr(event, k) for k in want}
    assert got == want, f"costs {got} != {want}"
    assert event.pricing_source == "override"


def assert_tokens(
    event: Any, input: int, output: int, cache_read: int = 0, cache_write: int = 0, cache_1h: int = 0
) -> None:
    got = (
        event.input_tokens,
        event.output_tokens,
        event.cache_read_tokens,
        event.cache_write_tokens,
        event.cache_write_1h_tokens,
        event.total_tokens,
    )
    assert got == (input, output, cache_read, cache_write, cache_1h, input + output + cache_read + cache_write)


def aws_env() -> None:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "x")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "x")
