"""More OpenAI SDK paths on the real client over HTTP to the fake provider: Responses API streams, Azure,
unread streams collected by GC, async cancellation, threads, selective metering, content capture."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import openai
import pytest

import meterline
from meterline.testing import DEFAULT_REPLY, default_usage

# Fixed prices (USD per million tokens) so expected costs are computed here, independently of any price data.
IN, CACHED, OUT, EMB = Decimal("0.15"), Decimal("0.075"), Decimal("0.60"), Decimal("0.02")
PRICES = [
    {"model": "gpt-4o-mini", "input_mtok": "0.15", "cache_read_mtok": "0.075", "output_mtok": "0.60"},
    {"model": "gpt-3.5-turbo-instruct", "input_mtok": "1.5", "output_mtok": "2"},
    {"model": "text-embedding-3-small", "input_mtok": "0.02"},
]
MSGS = [{"role": "user", "content": "What is the weather in Paris today?"}]  # 35 characters -> 9 tokens
REPLY_WORDS = len(DEFAULT_REPLY.split())
M = Decimal(1_000_000)


def cost(inp: int = 0, cached: int = 0, out: int = 0) -> Decimal:
    return (inp * IN + cached * CACHED + out * OUT) / M


@pytest.fixture
def db(meter_db: Any) -> Iterator[Any]:
    meter_db.init(prices=PRICES)
    meterline.instrument_openai()
    yield meter_db
    meterline.uninstrument("openai")


def client(fake: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-test", max_retries=0)


def aclient(fake: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="sk-test", max_retries=0)


def test_stream_dropped_without_reading_still_records_one_event(db: Any, fake_provider: Any) -> None:
    s = client(fake_provider).chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True)
    del s
    gc.collect()
    [e] = db.events()
    assert (e.status, e.output_tokens) == ("cancelled", 0)


async def test_async_calls_and_streams(db: Any, fake_provider: Any) -> None:
    c = aclient(fake_provider)
    with meterline.metadata(subscriber_id="async-cust"):
        await c.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
        stream = await c.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True)
        words = [ch.choices[0].delta.content async for ch in stream]
    assert "".join(w or "" for w in words) == DEFAULT_REPLY
    await c.embeddings.create(model="text-embedding-3-small", input="hello")
    events = db.events()
    assert [(e.operation, e.stream, e.status) for e in events] == [
        ("chat", False, "success"),
        ("chat", True, "success"),
        ("embedding", False, "success"),
    ]
    assert [e.subscriber_id for e in events] == ["async-cust", "async-cust", None]
    assert all((e.input_tokens, e.output_tokens) == (9, REPLY_WORDS) for e in events[:2])


async def test_async_stream_closed_early_is_cancelled(db: Any, fake_provider: Any) -> None:
    stream = await aclient(fake_provider).chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True)
    async for _ in stream:
        break
    await stream.close()
    [e] = db.events()
    assert e.status == "cancelled"


async def test_async_failure_and_cancellation(db: Any, fake_provider: Any) -> None:
    c = aclient(fake_provider)
    fake_provider.fail_next(500)
    with pytest.raises(openai.InternalServerError):
        await c.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    fake_provider.delay(5)
    task = asyncio.ensure_future(c.chat.completions.create(model="gpt-4o-mini", messages=MSGS))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    fake_provider.delay(0)
    err, cancelled = db.events()
    assert (err.status, err.error_type) == ("error", "InternalServerError")
    assert (cancelled.status, cancelled.stop_reason) == ("cancelled", "cancelled")


def test_azure_client_is_provider_azure(db: Any, fake_provider: Any) -> None:
    az = openai.AzureOpenAI(
        azure_endpoint=fake_provider.url, api_key="x", api_version="2024-10-21", azure_deployment="gpt-4o-mini"
    )
    az.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    [e] = db.events()
    assert (e.provider, e.input_tokens, e.total_cost) == ("azure", 9, cost(9, 0, REPLY_WORDS))


def test_threads_share_one_client_exactly(db: Any, fake_provider: Any) -> None:
    c = client(fake_provider)

    def work(n: int) -> None:
        for i in range(25):
            with meterline.metadata(subscriber_id=f"t{n}"):
                c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x" * (4 * i)}])

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = db.events()
    assert len(events) == 200 and len({e.id for e in events}) == 200
    for n in range(8):
        mine = sorted(e.input_tokens for e in events if e.subscriber_id == f"t{n}")
        assert mine == list(range(25))  # each thread's own prompts: 4*i characters -> i tokens


def test_selective_metering(db: Any, fake_provider: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METERLINE_SELECTIVE_METERING", "true")
    c = client(fake_provider)
    c.chat.completions.create(model="gpt-4o-mini", messages=MSGS, usage_metadata={"agent": "skipped"})
    assert "usage_metadata" not in fake_provider.requests[-1].body  # removed even when not metered
    with meterline.meter(product_id="metered"):
        c.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    [e] = db.events()
    assert e.product_id == "metered"


def test_capture_content_is_off_by_default_and_redacted_when_on(meter_db: Any, fake_provider: Any) -> None:
    meterline.instrument_openai()
    try:
        client(fake_provider).chat.completions.create(model="gpt-4o-mini", messages=MSGS)
        [off] = meter_db.events()
        assert (off.input_messages, off.output_text) == (None, None)
        meter_db.init(prices=PRICES, capture_content=True, redact=lambda m, t: ("[redacted]", (t or "").upper()))
        client(fake_provider).chat.completions.create(model="gpt-4o-mini", messages=MSGS)
        on = [e for e in meter_db.events() if e.id != off.id]
        assert [(e.input_messages, e.output_text) for e in on] == [("[redacted]", DEFAULT_REPLY.upper())]
    finally:
        meterline.uninstrument("openai")


def test_default_usage_matches_the_prompt() -> None:
    assert default_usage({"messages": MSGS}).input == 9  # the count every test above relies on


def test_responses_api_plain_streamed_tool_use_and_incomplete(db: Any, fake_provider: Any) -> None:
    c = client(fake_provider)
    fake_provider.set_usage(input=80, output=20, cache_read=40, reasoning=5)
    r = c.responses.create(model="gpt-4o-mini", input="What is the weather in Paris today?")
    assert r.output_text == DEFAULT_REPLY
    with c.responses.stream(model="gpt-4o-mini", input="What is the weather in Paris today?") as s:
        text = "".join(ev.delta for ev in s if ev.type == "response.output_text.delta")
    assert text == DEFAULT_REPLY
    c.responses.create(model="gpt-4o-mini", input="x", extra_headers={"x-fake-tool-use": "1"})
    c.responses.create(model="gpt-4o-mini", input="x", extra_headers={"x-fake-stop": "max_tokens"})
    plain, streamed, tool, cut = db.events()
    for e in (plain, streamed):
        assert (e.input_tokens, e.cache_read_tokens, e.output_tokens, e.reasoning_tokens) == (80, 40, 20, 5)
        assert (e.status, e.stop_reason, e.total_cost) == ("success", "end", cost(80, 40, 20))
    assert (plain.stream, streamed.stream) == (False, True) and streamed.time_to_first_token_ms is not None
    assert (tool.stop_reason, tool.operation_subtype) == ("tool_use", "tool_use")
    assert cut.stop_reason == "max_tokens"


async def test_async_responses_stream(db: Any, fake_provider: Any) -> None:
    stream = await aclient(fake_provider).responses.create(model="gpt-4o-mini", input="Say hello", stream=True)
    kinds = [ev.type async for ev in stream]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    [e] = db.events()
    assert (e.stream, e.status, e.input_tokens, e.output_tokens) == (True, "success", 3, REPLY_WORDS)


def test_calls_a_meterline_gateway_metered_are_not_recorded_again(db: Any, fake_provider: Any) -> None:
    gateway = {"x-fake-response-headers": '{"x-meterline-metered": "gateway"}'}
    c = client(fake_provider)
    c.chat.completions.create(model="gpt-4o-mini", messages=MSGS, extra_headers=gateway)
    for _ in c.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True, extra_headers=gateway):
        pass
    fake_provider.fail_next(500)
    with pytest.raises(openai.InternalServerError):
        c.chat.completions.create(model="gpt-4o-mini", messages=MSGS, extra_headers=gateway)
    c.chat.completions.create(model="gpt-4o-mini", messages=MSGS)  # not through a gateway: recorded
    assert len(fake_provider.requests) == 4
    assert [e.status for e in db.events()] == ["success"]
