"""Every usage field each provider reports, read where the integrations read it (the reply readers), and the
counts the pricer needs beyond schema-v1 token classes carried on the event as documented attributes."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

from meterline.core import usage
from meterline.core.event import MAX_ATTRIBUTES, UsageEvent
from meterline.integrations import _openai_usage
from meterline.integrations._call import CallMeter
from meterline.pricing import Pricer
from meterline.sdk import api as _api

WHEN = datetime(2026, 11, 20, 20, tzinfo=timezone.utc)


def _meter(provider: str = "openai", model: str = "gpt-5.6") -> CallMeter:
    return CallMeter(provider=provider, model=model, integration="openai", stream=False)


def _event(u: usage.TokenUsage, provider: str, model: str) -> UsageEvent:
    e = UsageEvent(provider=provider, model=model, start_time=WHEN)
    usage.apply(e, u)
    return e


def test_openai_chat_reply_cache_writes_and_service_tier() -> None:
    meter = _meter()
    _openai_usage.completion(
        meter,
        {
            "model": "gpt-5.6-sol",
            "service_tier": "flex",
            "usage": {
                "prompt_tokens": 4000,
                "completion_tokens": 200,
                "total_tokens": 4200,
                "prompt_tokens_details": {"cached_tokens": 500, "cache_write_tokens": 3000},
                "completion_tokens_details": {"reasoning_tokens": 50},
            },
            "choices": [],
        },
    )
    t = meter.tokens
    assert (t.input_tokens, t.cache_read_tokens, t.cache_write_tokens, t.output_tokens) == (500, 500, 3000, 200)
    assert (t.reasoning_tokens, t.service_tier) == (50, "flex")
    e = _event(t, "openai", "gpt-5.6-sol")
    assert e.attributes == {"meterline.service_tier": "flex"}


def test_openai_responses_reply_counts_billed_tool_calls() -> None:
    meter = _meter()
    _openai_usage.response(
        meter,
        {
            "model": "gpt-5.1",
            "status": "completed",
            "service_tier": "default",
            "output": [
                {"type": "web_search_call"},
                {"type": "web_search_call"},
                {"type": "file_search_call"},
                {"type": "message"},
            ],
            "usage": {
                "input_tokens": 1000,
                "output_tokens": 100,
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 400},
                "output_tokens_details": {"reasoning_tokens": 0},
            },
        },
    )
    t = meter.tokens
    assert (t.input_tokens, t.cache_write_tokens, t.web_searches, t.storage_searches, t.code_executions) == (
        600,
        400,
        2,
        1,
        0,
    )
    e = _event(t, "openai", "gpt-5.1")
    Pricer().price(e)
    # gpt-5.1: $1.25 in, $10 out; $10 per 1,000 web searches, $2.5 per 1,000 file searches
    tokens = (600 * Decimal("1.25") + 400 * Decimal("1.25") + 100 * 10) / 1_000_000
    assert e.total_cost == tokens + 2 * Decimal(10) / 1000 + Decimal("2.5") / 1000


def test_anthropic_server_tool_use_and_service_tier() -> None:
    u = usage.from_anthropic(
        {
            "input_tokens": 10,
            "output_tokens": 5,
            "server_tool_use": {"web_search_requests": 3},
            "service_tier": "priority",
        }
    )
    assert (u.web_searches, u.service_tier) == (3, "priority")
    meter = _meter("anthropic", "claude-sonnet-4-5")
    meter.anthropic_event(
        {"type": "message_start", "message": {"model": "claude-sonnet-4-5", "usage": {"input_tokens": 10}}}
    )
    meter.anthropic_event(
        {
            "type": "message_delta",
            "delta": {},
            "usage": {"output_tokens": 9, "server_tool_use": {"web_search_requests": 2}},
        }
    )
    meter.resolve()  # the stream events' usage is read later, on the recorder's thread
    assert (meter.tokens.input_tokens, meter.tokens.output_tokens, meter.tokens.web_searches) == (10, 9, 2)


def test_deepseek_cache_hits_and_perplexity_reasoning_beside_completion() -> None:
    ds = usage.from_openai(
        {
            "prompt_tokens": 1000,
            "completion_tokens": 10,
            "prompt_cache_hit_tokens": 800,
            "prompt_cache_miss_tokens": 200,
        }
    )
    assert (ds.input_tokens, ds.cache_read_tokens) == (200, 800)
    px = usage.from_openai(
        {
            "prompt_tokens": 19,
            "completion_tokens": 8163,
            "total_tokens": 8182,
            "citation_tokens": 13000,
            "num_search_queries": 28,
            "reasoning_tokens": 73997,
        }
    )
    assert (px.output_tokens, px.reasoning_tokens, px.citation_tokens, px.web_searches) == (
        8163 + 73997 + 13000,
        73997,
        13000,
        28,
    )
    e = _event(px, "perplexity", "sonar-deep-research")
    Pricer().price(e)
    # $2 in, $8 out, $3 reasoning, $2 citation per MTok, $5 per 1,000 searches
    want = (19 * 2 + 8163 * 8 + 73997 * 3 + 13000 * 2) / Decimal(1_000_000) + 28 * Decimal(5) / 1000
    assert e.total_cost == want
    assert e.pricing_source is not None and "partial" not in e.pricing_source


def test_mistral_plain_openai_shape() -> None:
    u = usage.from_openai({"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19})
    assert (u.input_tokens, u.output_tokens, u.total_tokens, u.web_searches, u.service_tier) == (12, 7, 19, None, None)


def test_gemini_and_vertex_usage_metadata() -> None:
    u = usage.from_gemini(
        {
            "promptTokenCount": 1000,
            "cachedContentTokenCount": 600,
            "candidatesTokenCount": 50,
            "thoughtsTokenCount": 200,
            "toolUsePromptTokenCount": 30,
            "totalTokenCount": 1280,
        }
    )
    assert (u.input_tokens, u.cache_read_tokens, u.output_tokens, u.reasoning_tokens) == (430, 600, 250, 200)
    assert u.total_tokens == 1280
    snake = usage.from_gemini({"prompt_token_count": 10, "candidates_token_count": 2})
    assert (snake.input_tokens, snake.output_tokens) == (10, 2)


def test_bedrock_converse_service_tier_and_hostile_cache_details() -> None:
    u = usage.from_bedrock_converse(
        {
            "inputTokens": 5,
            "outputTokens": 1,
            "cacheWriteInputTokens": 10,
            "cacheDetails": [{"ttl": "1h", "inputTokens": "x"}, "junk", {"ttl": 3}, {"ttl": "1h", "inputTokens": -4}],
        },
        "flex",
    )
    assert (u.cache_write_tokens, u.cache_write_1h_tokens, u.service_tier) == (10, 0, "flex")


def test_reader_attributes_survive_the_users_metadata_and_stay_bounded() -> None:
    e = _event(usage.TokenUsage(input_tokens=1, web_searches=2, service_tier="batch"), "openai", "gpt-5.1")
    _api.apply_metadata(e, {"attributes": {"team": "a"}}, {})
    assert e.attributes == {"team": "a", "meterline.web_searches": 2, "meterline.service_tier": "batch"}
    full = {f"k{i}": i for i in range(MAX_ATTRIBUTES)}
    e2 = _event(usage.TokenUsage(input_tokens=1, web_searches=2), "openai", "gpt-5.1")
    _api.apply_metadata(e2, {"attributes": full}, {})
    assert e2.attributes == full  # the user's attributes win the bounded room


def test_hostile_reader_attributes_price_as_unreported() -> None:
    e = UsageEvent(
        provider="perplexity",
        model="sonar-deep-research",
        start_time=WHEN,
        input_tokens=10,
        attributes={"meterline.web_searches": "many", "meterline.service_tier": 5},
    )
    Pricer().price(e)
    assert e.total_cost == 10 * Decimal(2) / 1_000_000
    assert e.pricing_source is not None and e.pricing_source.endswith(";partial:web_searches")


def test_audio_and_image_token_splits_are_priced_like_genai_prices() -> None:
    from genai_prices import Usage, calc_price

    u = usage.from_openai(
        {
            "prompt_tokens": 1000,
            "completion_tokens": 500,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 600, "image_tokens": 100},
            "completion_tokens_details": {"audio_tokens": 300, "reasoning_tokens": 0},
        }
    )
    assert (u.input_audio_tokens, u.input_image_tokens, u.output_audio_tokens) == (600, 100, 300)
    e = _event(u, "openai", "gpt-realtime")
    Pricer().price(e)
    ref = calc_price(
        Usage(
            input_tokens=1000,
            input_audio_tokens=600,
            input_image_tokens=100,
            output_tokens=500,
            output_audio_tokens=300,
        ),
        "gpt-realtime",
        provider_id="openai",
        genai_request_timestamp=WHEN,
    )
    assert e.total_cost == ref.total_price
    assert e.input_cost == ref.input_price and e.output_cost == ref.output_price
    # an audio call whose reply did not split the counts: flagged partial, never priced as if all text
    plain = UsageEvent(provider="openai", model="gpt-realtime", start_time=WHEN, operation="audio", input_tokens=10)
    Pricer().price(plain)
    assert plain.pricing_source is not None and ";partial:" in plain.pricing_source
    assert "input_audio" in plain.pricing_source


def test_gemini_modality_details_and_more_audio_than_input_is_capped() -> None:
    u = usage.from_gemini(
        {
            "promptTokenCount": 100,
            "candidatesTokenCount": 10,
            "promptTokensDetails": [{"modality": "AUDIO", "tokenCount": 80}, {"modality": "TEXT", "tokenCount": 20}],
        }
    )
    assert (u.input_audio_tokens, u.input_tokens) == (80, 100)
    e = _event(u, "gemini", "gemini-2.5-flash")
    e.attributes["meterline.input_audio_tokens"] = 10_000  # hostile: more audio than input
    Pricer().price(e)
    # gemini-2.5-flash: audio input $1 / MTok: at most the 100 reported input tokens are audio
    assert e.input_cost == 100 * Decimal(1) / 1_000_000


def test_bedrock_invoke_model_claude_body_keeps_the_1h_split_and_converse_reply_its_tier(meter_db) -> None:
    import io
    import json

    from botocore.response import StreamingBody

    from meterline.integrations import bedrock

    body = json.dumps(
        {
            "model": "claude-sonnet-4-5-20250929",
            "stop_reason": "end_turn",
            "content": [],
            "usage": {
                "input_tokens": 10,
                "output_tokens": 5,
                "cache_creation_input_tokens": 3000,
                "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000},
            },
        }
    ).encode()
    meter = CallMeter(
        provider="bedrock", model="us.anthropic.claude-sonnet-4-5-20250929-v1:0", integration="bedrock", stream=False
    )
    bedrock._invoke(meter, {"body": StreamingBody(io.BytesIO(body), len(body))}, None)
    [invoked] = meter_db.events()  # the body is read on the recorder's thread
    assert (invoked.cache_write_tokens, invoked.cache_write_1h_tokens) == (3000, 2000)
    assert meter.tokens.cache_write_1h_tokens == 2000

    meter = CallMeter(
        provider="bedrock", model="us.anthropic.claude-sonnet-4-5-20250929-v1:0", integration="bedrock", stream=False
    )
    bedrock._converse(
        meter,
        {
            "usage": {
                "inputTokens": 1,
                "outputTokens": 1,
                "cacheWriteInputTokens": 300,
                "cacheDetails": [{"ttl": "1h", "inputTokens": 300}],
            },
            "serviceTier": {"type": "priority"},
            "stopReason": "end_turn",
            "output": {"message": {"content": []}},
        },
    )
    assert (meter.tokens.cache_write_1h_tokens, meter.tokens.service_tier) == (300, "priority")
    # both calls were metered with their split, and the tier reached the stored event
    events = sorted(meter_db.events(), key=lambda e: e.cache_write_1h_tokens)
    assert [e.cache_write_1h_tokens for e in events] == [300, 2000]
    assert events[0].attributes == {"meterline.service_tier": "priority"}
    assert events[1].cache_write_cost == 2000 * Decimal("6.6") / 1_000_000 + 1000 * Decimal("4.125") / 1_000_000
