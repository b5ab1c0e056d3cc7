"""The real openai SDK over HTTP to the fake provider: chat (plain/streamed), completions, embeddings, responses."""

from __future__ import annotations

import gc
import json
import sys
import types
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest
from openai import _base_client
from openai.resources.chat.completions import completions as chat_completions

import meterline
from meterline.integrations import openai as ml_openai
from meterline.sdk.scopes import in_call as _in_call

MODEL = "gpt-test-1"
MTOK = Decimal(10**6)
IN, OUT, CACHED = Decimal("1.5"), Decimal("6"), Decimal("0.75")
PRICES = [{"provider": "openai", "model": MODEL, "input_mtok": "1.5", "output_mtok": "6", "cache_read_mtok": "0.75"}]
MSGS = [{"role": "user", "content": "What is the weather in Paris today?"}]  # 9 tokens
USAGE = {"input": 100, "output": 40, "cache_read": 30, "reasoning": 12}


@pytest.fixture
def db(meter_db: Any) -> Iterator[Any]:
    meter_db.init(prices=PRICES)
    ml_openai.instrument()
    yield meter_db
    ml_openai.uninstrument()


def client(fake: Any, **kw: Any) -> Any:
    return openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-fake", max_retries=0, **kw)


def aclient(fake: Any) -> Any:
    return openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="sk-fake", max_retries=0)


def check(e: Any, input: int, cache_read: int, output: int, reasoning: int = 0) -> None:
    assert (e.input_tokens, e.cache_read_tokens, e.output_tokens, e.reasoning_tokens) == (
        input,
        cache_read,
        output,
        reasoning,
    )
    assert e.total_tokens == input + cache_read + output
    want = (IN * input + CACHED * cache_read + OUT * output) / MTOK
    assert (e.total_cost, e.pricing_source) == (want, "override")


def test_chat_create_cached_and_reasoning_tokens(db: Any, fake_provider: Any) -> None:
    fake_provider.set_usage(**USAGE)
    with meterline.metadata(product_id="p"):
        r = client(fake_provider).chat.completions.create(
            model=MODEL, messages=MSGS, usage_metadata={"subscriber": {"id": "c1"}}
        )
    assert r.usage.prompt_tokens == 130  # OpenAI counts cached tokens inside prompt_tokens
    assert fake_provider.requests[-1].body == {"model": MODEL, "messages": MSGS}
    (e,) = db.events()
    assert (e.provider, e.integration, e.operation, e.stop_reason, e.subscriber_id, e.product_id) == (
        "openai",
        "openai",
        "chat",
        "end",
        "c1",
        "p",
    )
    check(e, 100, 30, 40, 12)


def test_chat_stream_gets_usage_without_changing_what_the_user_sees(db: Any, fake_provider: Any) -> None:
    fake_provider.set_usage(**USAGE)
    c = client(fake_provider)
    chunks = list(c.chat.completions.create(model=MODEL, messages=MSGS, stream=True))
    assert fake_provider.requests[-1].body["stream_options"] == {"include_usage": True}
    assert all(ch.choices for ch in chunks) and all(ch.usage is None for ch in chunks)
    bare = httpx.post(
        fake_provider.openai_base_url + "/chat/completions", json={"model": MODEL, "messages": MSGS, "stream": True}
    )
    assert len(chunks) == bare.text.count("data: {")  # exactly the chunks of a stream without include_usage
    asked = list(
        c.chat.completions.create(model=MODEL, messages=MSGS, stream=True, stream_options={"include_usage": True})
    )
    assert asked[-1].choices == [] and asked[-1].usage.completion_tokens == 40  # the user's own usage chunk
    events = db.events()
    assert [(e.stream, e.status, e.stop_reason) for e in events] == [(True, "success", "end")] * 2
    for e in events:
        assert e.time_to_first_token_ms is not None
        check(e, 100, 30, 40, 12)


def test_stream_helper_raw_response_embeddings_completions(db: Any, fake_provider: Any) -> None:
    c = client(fake_provider)
    with c.chat.completions.stream(model=MODEL, messages=MSGS, usage_metadata={"agent": "h"}) as s:
        s.get_final_completion()
    raw = c.chat.completions.with_raw_response.create(model=MODEL, messages=MSGS)
    raw.parse()
    c.embeddings.create(model=MODEL, input=["abcd", "efgh"], usage_metadata={"agent": "emb"})
    c.completions.create(model=MODEL, prompt="12345678")
    assert "usage_metadata" not in json.dumps(fake_provider.requests[-2].body)
    events = db.events()
    assert [(e.operation, e.stream, e.agent) for e in events] == [
        ("chat", True, "h"),
        ("chat", False, None),
        ("embedding", False, "emb"),
        ("completion", False, None),
    ]
    check(events[0], 9, 0, 6)
    check(events[2], 2, 0, 0)
    check(events[3], 2, 0, 6)


def test_responses_api(db: Any, fake_provider: Any) -> None:
    reply = {
        "id": "resp_1",
        "object": "response",
        "created_at": 1,
        "model": MODEL,
        "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"},
        "output": [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": 500,
            "input_tokens_details": {"cached_tokens": 200},
            "output_tokens": 80,
            "output_tokens_details": {"reasoning_tokens": 50},
            "total_tokens": 580,
        },
    }
    fake_provider.fail_next(status=200, body=reply)  # the fake answers this JSON verbatim
    r = client(fake_provider).responses.create(model=MODEL, input="hi", usage_metadata={"agent": "resp"})
    assert r.usage is not None and r.usage.input_tokens == 500
    assert (
        fake_provider.requests[-1].path == "/v1/responses" and "usage_metadata" not in fake_provider.requests[-1].body
    )
    (e,) = db.events()
    assert (e.operation, e.stop_reason, e.agent, e.response_model) == ("chat", "max_tokens", "resp", MODEL)
    check(e, 300, 200, 80, 50)


def test_tool_calls_errors_and_abandoned_stream(db: Any, fake_provider: Any) -> None:
    c = client(fake_provider)
    c.chat.completions.create(model=MODEL, messages=MSGS, extra_headers={"x-fake-tool-use": "1"})
    fake_provider.fail_next(status=429)
    with pytest.raises(openai.RateLimitError) as info:
        c.chat.completions.create(model=MODEL, messages=MSGS)
    assert info.value.status_code == 429
    fake_provider.fail_stream_after(2)
    with pytest.raises((openai.APIConnectionError, httpx.HTTPError)):
        list(c.chat.completions.create(model=MODEL, messages=MSGS, stream=True))
    stream = c.chat.completions.create(model=MODEL, messages=MSGS, stream=True)
    next(iter(stream))
    stream.close()
    unread = c.chat.completions.create(model=MODEL, messages=MSGS, stream=True)
    del unread
    gc.collect()
    got = [(e.status, e.stop_reason, e.operation_subtype, e.error_type) for e in db.events()]
    assert got[0] == ("success", "tool_use", "tool_use", None)
    assert got[1] == ("error", "error", None, "RateLimitError")
    assert got[2][:2] == ("error", "error")
    assert got[3:] == [("cancelled", "cancelled", None, None)] * 2
    # OpenAI reports usage only at a stream's end: an abandoned stream's counts are estimated from what was
    # sent (the 35-character prompt -> 9 tokens; the first chunk read carried no text)
    closed, dropped = db.events()[3:]
    for e in (closed, dropped):
        assert (e.usage_source, e.input_tokens, e.output_tokens) == ("estimated", 9, 0)
        assert e.total_cost == 9 * Decimal(PRICES[0]["input_mtok"]) / 10**6


async def test_async_chat_stream_and_embeddings(db: Any, fake_provider: Any) -> None:
    fake_provider.set_usage(**USAGE)
    c = aclient(fake_provider)
    await c.chat.completions.create(model=MODEL, messages=MSGS, usage_metadata={"agent": "a"})
    stream = await c.chat.completions.create(model=MODEL, messages=MSGS, stream=True)
    assert all([ch.choices async for ch in stream])
    await c.embeddings.create(model=MODEL, input="abcd")
    events = db.events()
    assert [(e.operation, e.stream, e.agent) for e in events] == [
        ("chat", False, "a"),
        ("chat", True, None),
        ("embedding", False, None),
    ]
    check(events[1], 100, 30, 40, 12)


def test_uninstrument_exact_and_old_clients(meter_db: Any, fake_provider: Any) -> None:
    before = (_base_client.SyncAPIClient.__dict__["request"], chat_completions.Completions.__dict__["create"])
    old = client(fake_provider)
    assert "openai" in meterline.instrument("openai")
    ml_openai.instrument()
    old.chat.completions.create(model=MODEL, messages=MSGS)
    assert ml_openai.uninstrument() is True and ml_openai.uninstrument() is False
    assert (_base_client.SyncAPIClient.__dict__["request"], chat_completions.Completions.__dict__["create"]) == before
    old.chat.completions.create(model=MODEL, messages=MSGS)
    assert len(meter_db.events()) == 1


def test_not_counted_twice_under_litellm(db: Any, fake_provider: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    litellm = pytest.importorskip("litellm")
    kw = {"model": f"openai/{MODEL}", "api_base": fake_provider.openai_base_url, "api_key": "k", "messages": MSGS}
    token = _in_call.set(True)  # LiteLLM's integration marks the call it meters
    try:
        litellm.completion(**kw)
    finally:
        _in_call.reset(token)
    # fallback: LiteLLM integration loaded, call made from inside LiteLLM's code
    monkeypatch.setitem(sys.modules, "meterline.integrations.litellm", types.ModuleType("stub"))
    litellm.completion(**kw)
    assert len(fake_provider.requests) == 2
    assert db.events() == []
    inactive = types.ModuleType("stub")
    inactive.is_instrumented = lambda: False  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "meterline.integrations.litellm", inactive)
    litellm.completion(**kw)  # the LiteLLM integration is loaded but off: the SDK integration meters it
    monkeypatch.delitem(sys.modules, "meterline.integrations.litellm")
    litellm.completion(**kw)  # without the LiteLLM integration, the SDK integration meters it
    assert [e.integration for e in db.events()] == ["openai", "openai"]
