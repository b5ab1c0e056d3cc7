"""The six pricing defects of issue 16, one test each (each failed before its fix), plus the rules around them:
never another provider's price silently, partial costs flagged, service tiers, Vertex list prices."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

from genai_prices import Usage, calc_price

from meterline.core import usage
from meterline.core.event import UsageEvent
from meterline.pricing import Pricer

M = Decimal(1_000_000)
EVENING = datetime(2026, 11, 2, 20, 0, tzinfo=timezone.utc)  # DeepSeek off-peak
NOON = datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc)  # DeepSeek peak (00:30-16:30 UTC)


def _event(provider: str, model: str, when: datetime = EVENING, **fields: object) -> UsageEvent:
    e = UsageEvent(provider=provider, model=model, start_time=when, **fields)  # type: ignore[arg-type]
    e.finalize_totals()
    return e


def _priced(provider: str, model: str, when: datetime = EVENING, **fields: object) -> UsageEvent:
    e = _event(provider, model, when, **fields)
    Pricer().price(e)
    return e


# 1. time-of-day prices: the call's own instant, cached per validity window (not per day)
def test_deepseek_off_peak_price_at_the_calls_own_instant_and_not_cached_per_day() -> None:
    # the reference's own time-of-day windows: without the shipped correction that prices deepseek-chat as
    # deepseek-v4-flash from 2026-04-24 (tests/test_price_corrections.py)
    pricer = Pricer(corrections=())
    peak = _event("deepseek", "deepseek-chat", NOON, input_tokens=1_000_000)
    off = _event("deepseek", "deepseek-chat", EVENING, input_tokens=1_000_000)
    pricer.price(peak)
    pricer.price(off)  # same pricer, same day: the cache must not hand back the noon price
    assert peak.total_cost == Decimal("0.27")
    assert off.total_cost == Decimal("0.135")
    # and the other way round, on a fresh pricer (the first price seen of the day must not stick either)
    pricer = Pricer(corrections=())
    off2 = _event("deepseek", "deepseek-chat", EVENING, input_tokens=1_000_000)
    peak2 = _event("deepseek", "deepseek-chat", NOON, input_tokens=1_000_000)
    pricer.price(off2)
    pricer.price(peak2)
    assert (off2.total_cost, peak2.total_cost) == (Decimal("0.135"), Decimal("0.27"))


def test_window_edges_are_exact_to_the_microsecond() -> None:
    pricer = Pricer(corrections=())  # the reference's windows, as above
    start = datetime(2026, 11, 2, 0, 30, tzinfo=timezone.utc)
    before = _event("deepseek", "deepseek-chat", start.replace(minute=29, second=59, microsecond=999_999))
    at = _event("deepseek", "deepseek-chat", start)
    for e in (at, before):
        e.input_tokens = 1_000_000
        pricer.price(e)
    assert (before.total_cost, at.total_cost) == (Decimal("0.135"), Decimal("0.27"))


# 2. provider-native model ids keep their prefix; another provider's price is never used silently
def test_groq_and_together_native_ids_are_priced_under_their_own_provider() -> None:
    for provider, model in (
        ("groq", "openai/gpt-oss-120b"),
        ("groq", "groq/openai/gpt-oss-120b"),
        ("together_ai", "openai/gpt-oss-120b"),
        ("together_ai", "together_ai/openai/gpt-oss-120b"),
    ):
        e = _priced(provider, model, input_tokens=1_000_000, output_tokens=1_000_000)
        genai_provider = "groq" if provider == "groq" else "together"
        ref = calc_price(
            Usage(input_tokens=1_000_000, output_tokens=1_000_000),
            "openai/gpt-oss-120b",
            provider_id=genai_provider,
            genai_request_timestamp=EVENING,
        )
        assert e.total_cost == ref.total_price, (provider, model)
        assert e.pricing_source is not None and "fallback" not in e.pricing_source, (provider, model)
    assert _priced("groq", "openai/gpt-oss-120b", input_tokens=1_000_000, output_tokens=1_000_000).total_cost == (
        Decimal("0.75")
    )


def test_routing_prefixes_are_stripped_only_for_their_own_provider() -> None:
    from meterline.pricing.pricer import normalise_model

    assert normalise_model("openai", "openai/gpt-4o") == "gpt-4o"
    assert normalise_model("anthropic", "anthropic/claude-sonnet-4-5") == "claude-sonnet-4-5"
    assert normalise_model("azure", "azure/my-deployment") == "my-deployment"
    assert normalise_model("groq", "openai/gpt-oss-120b") == "openai/gpt-oss-120b"
    assert normalise_model("groq", "groq/openai/gpt-oss-120b") == "openai/gpt-oss-120b"
    assert normalise_model("together_ai", "together_ai/openai/gpt-oss-20b") == "openai/gpt-oss-20b"
    assert normalise_model("openrouter", "openrouter/anthropic/claude-sonnet-4.5") == "anthropic/claude-sonnet-4.5"


def test_a_price_from_another_provider_is_marked_as_a_fallback() -> None:
    # no provider "acme-cloud" in genai-prices: the model's own vendor price is used, and the event says so
    e = _priced("acme-cloud", "gpt-4o-mini", input_tokens=1_000_000)
    assert e.total_cost == Decimal("0.15")
    assert e.pricing_source is not None and e.pricing_source.endswith(";fallback:openai")
    # Azure prices OpenAI models at OpenAI's list price (genai-prices' own rule): visible too
    az = _priced("azure", "gpt-4o", input_tokens=1_000_000)
    assert az.pricing_source is not None and az.pricing_source.endswith(";fallback:openai")


# 3. OpenAI cache writes (chat and Responses), billed at the cache-write price
def test_openai_cache_write_tokens_are_read_and_priced() -> None:
    chat = usage.from_openai(
        {
            "prompt_tokens": 4000,
            "completion_tokens": 200,
            "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 3000},
        }
    )
    responses = usage.from_openai(
        {"input_tokens": 4000, "output_tokens": 200, "input_tokens_details": {"cache_write_tokens": 3000}}
    )
    litellm = usage.from_openai(
        {"prompt_tokens": 4000, "completion_tokens": 200, "prompt_tokens_details": {"cache_creation_tokens": 3000}}
    )
    for u in (chat, responses, litellm):
        assert (u.input_tokens, u.cache_write_tokens, u.output_tokens, u.total_tokens) == (1000, 3000, 200, 4200)
    e = _event("openai", "gpt-5.6")
    usage.apply(e, chat)
    Pricer().price(e)
    ref = calc_price(
        Usage(input_tokens=4000, cache_write_tokens=3000, output_tokens=200),
        "gpt-5.6",
        provider_id="openai",
        genai_request_timestamp=EVENING,
    )
    assert e.total_cost == ref.total_price
    assert e.cache_write_cost == 3000 * Decimal(5) / M  # 1.25 x the $4 input price


# 4. separate reasoning prices
def test_reasoning_tokens_use_the_reasoning_price() -> None:
    e = _priced(
        "perplexity",
        "sonar-deep-research",
        input_tokens=100,
        output_tokens=300,
        reasoning_tokens=200,
        attributes={"meterline.web_searches": 0},
    )
    assert e.output_cost == (100 * 8 + 200 * 3) / M
    ref = calc_price(
        Usage(input_tokens=100, output_tokens=300, output_reasoning_tokens=200),
        "sonar-deep-research",
        provider_id="perplexity",
        genai_request_timestamp=EVENING,
    )
    assert e.total_cost == ref.total_price


# 5. per-request and per-unit fees; what cannot be computed is flagged partial, never quietly lower
def test_per_request_fee_is_charged() -> None:
    e = _priced("perplexity", "sonar", input_tokens=100, output_tokens=100)
    # the default (low) search context fee, $5 per 1,000 requests (https://docs.perplexity.ai/getting-started/pricing)
    assert e.total_cost == Decimal("0.0002") + Decimal(5) / 1000
    assert e.pricing_source is not None and "partial" not in e.pricing_source


def test_web_searches_are_charged_when_reported_and_flagged_partial_when_not() -> None:
    u = usage.from_openai(
        {"prompt_tokens": 100, "completion_tokens": 300, "reasoning_tokens": 200, "num_search_queries": 4}
    )
    assert (u.output_tokens, u.reasoning_tokens, u.web_searches) == (500, 200, 4)
    e = _event("perplexity", "sonar-deep-research")
    usage.apply(e, u)
    Pricer().price(e)
    assert e.total_cost == (100 * 2 + 300 * 8 + 200 * 3) / M + 4 * Decimal(5) / 1000
    unknown = _priced("perplexity", "sonar-deep-research", input_tokens=100, output_tokens=100)
    assert unknown.pricing_source is not None and unknown.pricing_source.endswith(";partial:web_searches")
    assert unknown.total_cost == (100 * 2 + 100 * 8) / M  # what is known, flagged: not a silent lower price


def test_units_meterline_cannot_count_make_the_cost_partial() -> None:
    e = _priced("mistral", "mistral-ocr-2512", input_tokens=10, operation="other")
    assert e.pricing_source is not None and ";partial:" in e.pricing_source


# 6. Bedrock Converse 1-hour cache writes
def test_bedrock_converse_cache_details_split_1h_writes() -> None:
    u = usage.from_bedrock_converse(
        {
            "inputTokens": 1000,
            "outputTokens": 100,
            "cacheReadInputTokens": 0,
            "cacheWriteInputTokens": 3000,
            "cacheDetails": [{"ttl": "1h", "inputTokens": 3000}],
        }
    )
    assert (u.cache_write_tokens, u.cache_write_1h_tokens) == (3000, 3000)
    model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    e = _event("bedrock", model)
    usage.apply(e, u)
    Pricer().price(e)
    ref = calc_price(
        Usage(input_tokens=4000, cache_write_tokens=3000, cache_write_1h_tokens=3000, output_tokens=100),
        model,
        provider_id="aws",
        genai_request_timestamp=EVENING,
    )
    assert e.total_cost == ref.total_price
    assert e.cache_write_cost == 3000 * Decimal("6.6") / M
    mixed = usage.from_bedrock_converse(
        {
            "inputTokens": 1,
            "outputTokens": 1,
            "cacheWriteInputTokens": 500,
            "cacheDetails": [{"ttl": "5m", "inputTokens": 200}, {"ttl": "1h", "inputTokens": 300}],
        }
    )
    assert (mixed.cache_write_tokens, mixed.cache_write_1h_tokens) == (500, 300)


# also: service tiers, Vertex list prices
def test_service_tier_reported_by_the_call_selects_the_tier_price() -> None:
    u = usage.from_openai({"prompt_tokens": 1_000_000, "completion_tokens": 0})
    for tier, context in (("flex", {"service_tier": "flex"}), ("priority", {"service_tier": "priority"})):
        e = _event("openai", "gpt-5.1")
        usage.apply(e, u)
        e.attributes["meterline.service_tier"] = tier
        Pricer().price(e)
        ref = calc_price(
            Usage(input_tokens=1_000_000),
            "gpt-5.1",
            provider_id="openai",
            genai_request_timestamp=EVENING,
            price_context=context,
        )
        assert e.total_cost == ref.total_price, tier
        assert e.total_cost != Decimal("1.25"), tier
    batch = _event("openai", "gpt-5.1", input_tokens=1_000_000, attributes={"meterline.service_tier": "batch"})
    Pricer().price(batch)
    assert batch.total_cost == Decimal("0.625")


def test_vertex_is_priced_with_google_cloud_list_prices() -> None:
    e = _priced("vertex_ai", "vertex_ai/claude-sonnet-4-5@20250929", input_tokens=100_000)
    assert e.total_cost == Decimal("0.3")
    assert e.pricing_source is not None and "fallback" not in e.pricing_source


def test_updated_genai_prices_data_replaces_cached_prices() -> None:
    from genai_prices import data_snapshot

    pricer = Pricer()
    before = _priced("openai", "gpt-4o-mini", input_tokens=1_000_000)
    assert before.total_cost == Decimal("0.15")
    bundled = data_snapshot.get_snapshot()
    providers = [p for p in bundled.providers if p.id != "openai"]
    data_snapshot.set_custom_snapshot(data_snapshot.DataSnapshot(providers=providers, from_auto_update=True))
    try:
        e = _event("openai", "gpt-4o-mini", input_tokens=1_000_000)
        pricer.price(e)
        # OpenAI's list is gone from the new data: the cached old price is not used any more
        assert (e.total_cost, e.pricing_source) == (None, "unpriced")
    finally:
        data_snapshot.set_custom_snapshot(None)
    again = _event("openai", "gpt-4o-mini", input_tokens=1_000_000)
    pricer.price(again)
    assert (again.total_cost, again.pricing_source) == (Decimal("0.15"), before.pricing_source)
