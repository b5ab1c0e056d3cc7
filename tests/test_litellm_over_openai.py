"""Two layers, one call, one event: LiteLLM calls the OpenAI SDK underneath; with both instrumented (as
``meterline.instrument()`` does), only the LiteLLM layer records the provider call — sync, async and streamed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import litellm
import pytest

import meterline

MSGS = [{"role": "user", "content": "What is the weather in Paris today?"}]  # 9 tokens at the fake


@pytest.fixture
def both(meter_db: Any) -> Iterator[Any]:
    assert set(meterline.instrument("litellm", "openai")) == {"litellm", "openai"}
    yield meter_db
    meterline.uninstrument()


async def test_litellm_over_the_openai_sdk_is_one_event_per_call(both: Any, fake_provider: Any) -> None:
    kw: dict[str, Any] = {"model": "openai/gpt-4o-mini", "api_base": fake_provider.openai_base_url, "api_key": "k"}
    litellm.completion(messages=MSGS, **kw)
    await litellm.acompletion(messages=MSGS, **kw)
    for _ in litellm.completion(messages=MSGS, stream=True, **kw):
        pass
    async for _ in await litellm.acompletion(messages=MSGS, stream=True, **kw):
        pass
    litellm.embedding(model="openai/text-embedding-3-small", input=["a b c d"], api_base=kw["api_base"], api_key="k")
    assert len(fake_provider.requests) == 5
    events = both.events()
    assert [(e.integration, e.operation, e.stream) for e in events] == [
        ("litellm", "chat", False),
        ("litellm", "chat", False),
        ("litellm", "chat", True),
        ("litellm", "chat", True),
        ("litellm", "embedding", False),
    ]
    assert [(e.provider, e.input_tokens) for e in events] == [("openai", 9)] * 4 + [
        ("openai", 2)
    ]  # "a b c d": 7 chars -> 2
