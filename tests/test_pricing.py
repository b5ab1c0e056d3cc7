"""Exact Decimal costs. Expected values are computed here from the published per-MTok prices."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from genai_prices import Usage, calc_price

from meterline.core.event import UsageEvent
from meterline.pricing import Pricer, PriceTableError, load_price_table
from meterline.pricing.overrides import parse_entries

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
M = Decimal(1_000_000)


def _event(provider: str, model: str, **tokens: int) -> UsageEvent:
    e = UsageEvent(provider=provider, model=model, start_time=NOW, **tokens)  # type: ignore[arg-type]
    e.finalize_totals()
    return e


def test_openai_components_add_up_and_match_genai_prices() -> None:
    e = _event("openai", "openai/gpt-4o-mini", input_tokens=1000, cache_read_tokens=500, output_tokens=200)
    Pricer().price(e)
    # gpt-4o-mini: $0.15 input, $0.075 cached input, $0.60 output per MTok
    assert e.input_cost == 1000 * Decimal("0.15") / M
    assert e.cache_read_cost == 500 * Decimal("0.075") / M
    assert e.cache_write_cost == 0
    assert e.output_cost == 200 * Decimal("0.6") / M
    assert e.total_cost == Decimal("0.0003075")
    ref = calc_price(
        Usage(input_tokens=1500, cache_read_tokens=500, output_tokens=200),
        "gpt-4o-mini",
        provider_id="openai",
        genai_request_timestamp=NOW,
    )
    assert e.total_cost == ref.total_price
    assert e.pricing_source is not None and e.pricing_source.startswith("genai-prices@")


def test_anthropic_1h_cache_writes_and_long_context_tier() -> None:
    e = _event(
        "anthropic",
        "claude-sonnet-4-5",
        input_tokens=100,
        cache_read_tokens=300_000,
        cache_write_tokens=50,
        cache_write_1h_tokens=20,
        output_tokens=20,
    )
    Pricer().price(e)
    # over 200k input tokens the whole request moves to the long-context tier: $6 / $0.6 / $7.5 / $12 (1h) / $22.5
    assert e.input_cost == 100 * Decimal(6) / M
    assert e.cache_read_cost == 300_000 * Decimal("0.6") / M
    assert e.cache_write_cost == (30 * Decimal("7.5") + 20 * Decimal(12)) / M
    assert e.output_cost == 20 * Decimal("22.5") / M
    assert e.total_cost == e.input_cost + e.cache_read_cost + e.cache_write_cost + e.output_cost


def test_bedrock_inference_profile_ids_price_like_the_model() -> None:
    for model in (
        "anthropic.claude-3-5-sonnet-20240620-v1:0",
        "us.anthropic.claude-3-5-sonnet-20240620-v1:0",
        "bedrock/eu.anthropic.claude-3-5-sonnet-20240620-v1:0",
    ):
        e = _event("bedrock", model, input_tokens=1000, output_tokens=100)
        Pricer().price(e)
        assert e.total_cost == (1000 * Decimal(3) + 100 * Decimal(15)) / M, model


def test_unknown_model_is_unpriced_never_zero() -> None:
    e = _event("openai", "my-private-model", input_tokens=10)
    Pricer().price(e)
    assert e.pricing_source == "unpriced"
    assert e.total_cost is None and e.input_cost is None


def test_override_table_wins_and_is_dated(tmp_path: Path) -> None:
    table = tmp_path / "prices.toml"
    table.write_text(
        '[[model]]\nmodel = "ft:gpt-4o-mini:acme*"\ninput_mtok = "1"\noutput_mtok = "2"\n'
        '[[model]]\nmodel = "ft:gpt-4o-mini:acme*"\ninput_mtok = "0.5"\noutput_mtok = "1"\nvalid_from = 2026-05-01\n'
        '[[model]]\nprovider = "openai"\nmodel = "gpt-4o-mini"\ninput_mtok = "0.1"\noutput_mtok = "0.4"\n'
    )
    pricer = Pricer(load_price_table(table))
    before = _event("openai", "ft:gpt-4o-mini:acme:2", input_tokens=1_000_000, output_tokens=1_000_000)
    before.start_time = datetime(2026, 4, 30, tzinfo=timezone.utc)
    pricer.price(before)
    after = _event("openai", "ft:gpt-4o-mini:acme:2", input_tokens=1_000_000, output_tokens=1_000_000)
    pricer.price(after)
    negotiated = _event("openai", "gpt-4o-mini", input_tokens=1_000_000, cache_read_tokens=1_000_000)
    pricer.price(negotiated)
    assert (before.total_cost, before.pricing_source) == (Decimal(3), "override")
    assert after.total_cost == Decimal("1.5")
    # no cache price in the table: cached tokens cost the input price
    assert negotiated.total_cost == Decimal("0.2")


def test_caller_supplied_cost_is_kept() -> None:
    e = _event("openai", "gpt-4o-mini", input_tokens=10)
    e.total_cost = Decimal("1.25")
    Pricer().price(e)
    assert (e.total_cost, e.pricing_source) == (Decimal("1.25"), "caller")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"input_mtok": "1"}, "price table entry 1: 'model' is required (a name or glob pattern)"),
        ({"model": "x"}, "price table entry 1 (x): needs input_mtok and/or output_mtok"),
        (
            {"model": "x", "input_mtok": "-1"},
            "price table entry 1 (x).input_mtok: must be a non-negative number, got '-1'",
        ),
        ({"model": "x", "input_mtok": "1", "colour": 1}, "price table entry 1: unknown field 'colour'"),
    ],
)
def test_bad_price_entries_are_named(entry: dict[str, object], message: str) -> None:
    with pytest.raises(PriceTableError) as info:
        parse_entries([entry])
    assert str(info.value) == message
