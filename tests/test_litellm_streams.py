"""LiteLLM streams, sync and async, over real HTTP to the fake provider: finished, abandoned and failed
streams are each metered exactly once, with the provider's token counts."""

from __future__ import annotations

import asyncio
import gc
import json
import math
from typing import Any

import litellm
import pytest

from _litellm_fixtures import USER, expected_cost, metered_fixture, wait_for_events  # noqa: F401 - fixture


def _openai(fake: Any) -> dict[str, Any]:
    return {"api_base": fake.openai_base_url, "api_key": "sk-test", "num_retries": 0, "max_retries": 0}


def _anthropic(fake: Any) -> dict[str, Any]:
    return {"api_base": fake.url, "api_key": "sk-ant-test", "num_retries": 0, "max_retries": 0}


def test_finished_sync_stream_asks_for_usage_and_reports_exact_tokens(metered, fake_provider) -> None:
    fake_provider.set_usage(input=400, output=60, cache_read=100)
    stream = litellm.completion(model="openai/gpt-4o-mini", messages=USER, stream=True, **_openai(fake_provider))
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text
    assert fake_provider.requests[-1].body["stream_options"] == {"include_usage": True}
    [e] = metered.events()
    assert (e.stream, e.status, e.stop_reason, e.operation) == (True, "success", "end", "chat")
    assert (e.input_tokens, e.cache_read_tokens, e.output_tokens, e.total_tokens) == (400, 100, 60, 560)
    assert e.total_cost == expected_cost("gpt-4o-mini", input=400, cache_read=100, output=60)
    assert e.time_to_first_token_ms is not None and 0 < e.time_to_first_token_ms <= e.duration_ms
    assert e.response_model == "gpt-4o-mini"


def test_stream_options_set_by_the_caller_are_left_alone(metered, fake_provider) -> None:
    stream = litellm.completion(
        model="openai/gpt-4o-mini",
        messages=USER,
        stream=True,
        stream_options={"include_usage": False},
        **_openai(fake_provider),
    )
    for _ in stream:
        pass
    assert fake_provider.requests[-1].body["stream_options"] == {"include_usage": False}
    [e] = metered.events()
    assert (e.status, e.total_tokens) == ("success", 0)  # the caller chose not to get usage


def test_finished_async_stream_and_router_stream(metered, fake_provider) -> None:
    fake_provider.set_usage(input=90, output=30)
    router = litellm.Router(
        model_list=[
            {
                "model_name": "fast",
                "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": fake_provider.openai_base_url},
            }
        ]
    )

    async def run() -> None:
        stream = await litellm.acompletion(
            model="openai/gpt-4o-mini",
            messages=USER,
            stream=True,
            usage_metadata={"agent": "direct"},
            **_openai(fake_provider),
        )
        async for _ in stream:
            pass
        routed = await router.acompletion(model="fast", messages=USER, stream=True, api_key="sk-test")
        async for _ in routed:
            pass

    asyncio.run(run())
    routed_sync = router.completion(model="fast", messages=USER, stream=True, api_key="sk-test")
    for _ in routed_sync:
        pass
    events = metered.events()
    assert sorted((e.agent or "", e.model_group or "") for e in events) == [("", "fast"), ("", "fast"), ("direct", "")]
    for e in events:
        assert (e.stream, e.status, e.input_tokens, e.output_tokens) == (True, "success", 90, 30)
        assert e.total_cost == expected_cost("gpt-4o-mini", input=90, output=30)
    assert all(r.body["stream_options"] == {"include_usage": True} for r in fake_provider.requests)
    assert all("usage_metadata" not in json.dumps(r.body) for r in fake_provider.requests)


def test_anthropic_stream_with_cache_tokens(metered, fake_provider) -> None:
    fake_provider.set_usage(input=25, output=80, cache_read=2000, cache_write=500)
    stream = litellm.completion(
        model="anthropic/claude-3-5-sonnet-20240620", messages=USER, stream=True, **_anthropic(fake_provider)
    )
    for _ in stream:
        pass
    assert "stream_options" not in fake_provider.requests[-1].body  # Anthropic reports usage on its own
    [e] = metered.events()
    assert (e.provider, e.stream, e.status) == ("anthropic", True, "success")
    assert (e.input_tokens, e.cache_read_tokens, e.cache_write_tokens, e.output_tokens) == (25, 2000, 500, 80)
    assert e.total_cost == expected_cost(
        "claude-3-5-sonnet-20240620", input=25, cache_read=2000, cache_write=500, output=80
    )


def test_text_completion_stream(metered, fake_provider) -> None:
    fake_provider.set_usage(input=12, output=9)
    stream = litellm.text_completion(
        model="openai/gpt-3.5-turbo-instruct", prompt="Say hi", stream=True, **_openai(fake_provider)
    )
    for _ in stream:
        pass
    [e] = metered.events()
    assert (e.operation, e.stream, e.status, e.input_tokens, e.output_tokens) == ("completion", True, "success", 12, 9)


def test_sync_stream_abandoned_after_the_first_chunk_is_one_cancelled_event(metered, fake_provider) -> None:
    fake_provider.set_usage(input=300, output=50)

    def read_one() -> str:
        stream = litellm.completion(model="openai/gpt-4o-mini", messages=USER, stream=True, **_openai(fake_provider))
        for chunk in stream:
            return chunk.choices[0].delta.content or ""  # the consumer stops; the stream is dropped
        return ""

    text = read_one()
    [e] = wait_for_events(metered, 1)
    assert (e.stream, e.status, e.stop_reason) == (True, "cancelled", "cancelled")
    assert e.time_to_first_token_ms is not None
    # OpenAI reports usage only in the final chunk, never read: estimated from what was sent, 4 characters a token
    prompt = USER[0]["content"]
    assert (e.usage_source, e.input_tokens, e.output_tokens) == (
        "estimated",
        math.ceil(len(prompt) / 4),
        math.ceil(len(text) / 4),
    )
    gc.collect()
    assert len(metered.events()) == 1


def test_async_stream_closed_or_dropped_early_is_one_cancelled_event_each(metered, fake_provider) -> None:
    fake_provider.set_usage(input=25, output=80, cache_read=2000)

    async def run() -> None:
        closed = await litellm.acompletion(
            model="anthropic/claude-3-5-sonnet-20240620", messages=USER, stream=True, **_anthropic(fake_provider)
        )
        async for _ in closed:
            break
        await closed.aclose()

        dropped = await litellm.acompletion(
            model="openai/gpt-4o-mini", messages=USER, stream=True, **_openai(fake_provider)
        )
        async for _ in dropped:
            break
        del dropped

    asyncio.run(run())
    events = wait_for_events(metered, 2)
    assert sorted((e.provider, e.status) for e in events) == [("anthropic", "cancelled"), ("openai", "cancelled")]
    [anthropic] = [e for e in events if e.provider == "anthropic"]
    # Anthropic's message_start reports the input side before any text: the usage seen so far is kept
    assert (anthropic.input_tokens, anthropic.cache_read_tokens) == (25, 2000)
    assert anthropic.total_cost == expected_cost(
        "claude-3-5-sonnet-20240620", input=25, cache_read=2000, output=anthropic.output_tokens
    )
    gc.collect()
    assert len(metered.events()) == 2


@pytest.mark.parametrize("mode", ["disconnect", "error_event"])
def test_stream_failing_mid_way_is_one_error_event_sync_and_async(metered, fake_provider, mode: str) -> None:
    fake_provider.fail_stream_after(3, times=2, mode=mode)
    raised: list[BaseException] = []
    stream = litellm.completion(model="openai/gpt-4o-mini", messages=USER, stream=True, **_openai(fake_provider))
    with pytest.raises(Exception) as sync_exc:
        for _ in stream:
            pass
    raised.append(sync_exc.value)

    async def run() -> None:
        stream = await litellm.acompletion(
            model="openai/gpt-4o-mini", messages=USER, stream=True, **_openai(fake_provider)
        )
        try:
            async for _ in stream:
                pass
        except Exception as exc:  # noqa: BLE001 - the test records what the caller got
            raised.append(exc)

    asyncio.run(run())
    assert len(raised) == 2
    events = wait_for_events(metered, 2)
    assert len(events) == 2
    for e, exc in zip(sorted(events, key=lambda e: e.start_time), raised, strict=True):
        assert (e.stream, e.status, e.stop_reason) == (True, "error", "error")
        assert e.error_type == type(exc).__name__
        assert e.error_message == str(exc)[:2000]
