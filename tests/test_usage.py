"""The normalisers: one test per provider shape, numbers as the providers report them."""

from __future__ import annotations

from meterline.core import usage


def test_openai_cached_tokens_are_inside_prompt_tokens() -> None:
    u = usage.from_openai(
        {
            "prompt_tokens": 1200,
            "completion_tokens": 300,
            "total_tokens": 1500,
            "prompt_tokens_details": {"cached_tokens": 1000},
            "completion_tokens_details": {"reasoning_tokens": 120},
        }
    )
    assert (u.input_tokens, u.cache_read_tokens, u.cache_write_tokens) == (200, 1000, 0)
    assert (u.output_tokens, u.reasoning_tokens, u.total_tokens) == (300, 120, 1500)


def test_litellm_anthropic_shape_counts_cache_inside_prompt_tokens() -> None:
    # LiteLLM's Usage for an Anthropic reply: prompt_tokens = input + cache read + cache creation
    u = usage.from_openai(
        {
            "prompt_tokens": 160,
            "completion_tokens": 20,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 50,
            "prompt_tokens_details": {"cached_tokens": 100},
        }
    )
    assert (u.input_tokens, u.cache_read_tokens, u.cache_write_tokens, u.output_tokens) == (10, 100, 50, 20)
    assert u.total_tokens == 180


def test_anthropic_reports_cache_apart_with_1h_split() -> None:
    u = usage.from_anthropic(
        {
            "input_tokens": 10,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 50,
            "cache_creation": {"ephemeral_5m_input_tokens": 30, "ephemeral_1h_input_tokens": 20},
            "output_tokens": 7,
        }
    )
    assert (u.input_tokens, u.cache_read_tokens, u.cache_write_tokens, u.cache_write_1h_tokens) == (10, 100, 50, 20)
    assert u.total_tokens == 167


def test_bedrock_converse_shape() -> None:
    u = usage.from_bedrock_converse(
        {"inputTokens": 11, "outputTokens": 5, "totalTokens": 26, "cacheReadInputTokens": 7, "cacheWriteInputTokens": 3}
    )
    assert (u.input_tokens, u.cache_read_tokens, u.cache_write_tokens, u.output_tokens, u.total_tokens) == (
        11,
        7,
        3,
        5,
        26,
    )


def test_missing_and_garbage_values_count_as_zero() -> None:
    u = usage.from_openai({"prompt_tokens": None, "completion_tokens": "x"})
    assert u.total_tokens == 0
    assert usage.from_anthropic(None).total_tokens == 0


def test_pydantic_usage_is_read_as_its_fields_and_extras() -> None:
    # usage.plain(): the readers take a pydantic model's __dict__ and __pydantic_extra__ (no failing getattr per
    # missing spelling); the counts are those of the same usage as a dict, extras (LiteLLM, proxies) included.
    from openai.types import CompletionUsage
    from openai.types.completion_usage import CompletionTokensDetails, PromptTokensDetails

    from meterline.core.usage import from_openai, plain

    raw = {
        "prompt_tokens": 120,
        "completion_tokens": 30,
        "total_tokens": 150,
        "prompt_tokens_details": {"cached_tokens": 100, "audio_tokens": 7},
        "completion_tokens_details": {"reasoning_tokens": 12},
        "cache_creation_input_tokens": 5,  # not a CompletionUsage field: kept as a pydantic extra
    }
    model = CompletionUsage.model_validate(raw)
    assert isinstance(model.prompt_tokens_details, PromptTokensDetails)
    assert isinstance(model.completion_tokens_details, CompletionTokensDetails)
    assert plain(model)["cache_creation_input_tokens"] == 5
    got = from_openai(model, "Flex")
    assert got == from_openai(raw, "Flex")
    assert (got.input_tokens, got.cache_read_tokens, got.cache_write_tokens) == (15, 100, 5)
    assert (got.output_tokens, got.reasoning_tokens, got.input_audio_tokens) == (30, 12, 7)
    assert got.service_tier == "flex"
    assert plain(None) is None and plain(raw) is raw and plain("x") == "x"
