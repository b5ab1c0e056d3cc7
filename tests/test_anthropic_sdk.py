"""The real anthropic SDK over HTTP to the fake provider: every messages call metered once, exact tokens and costs."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import pytest

import meterline
from anthropic_support import ANTHROPIC_MODEL, MSGS, PRICES, assert_cost, assert_tokens
from meterline.integrations import anthropic as ml_anthropic

CACHE = {"input": 10, "output": 20, "cache_read": 300, "cache_write": 50, "cache_write_1h": 20}


@pytest.fixture
def db(meter_db: Any) -> Iterator[Any]:
    meter_db.init(prices=PRICES)
    ml_anthropic.instrument()
    yield meter_db
    ml_anthropic.uninstrument()


def client(fake: Any, **kw: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key="sk-fake", max_retries=0, **kw)


def aclient(fake: Any, **kw: Any) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=fake.anthropic_base_url, api_key="sk-fake", max_retries=0, **kw)


def create(c: Any, **kw: Any) -> Any:
    return c.messages.create(model=ANTHROPIC_MODEL, max_tokens=100, messages=MSGS, **kw)


def test_create_exact_cache_tokens_and_costs_5m_vs_1h(db: Any, fake_provider: Any) -> None:
    fake_provider.set_usage(**CACHE)
    m = create(client(fake_provider))
    assert m.usage.cache_creation is not None and m.usage.cache_creation.ephemeral_1h_input_tokens == 20
    (e,) = db.events()
    assert (e.provider, e.model, e.response_model, e.integration) == (
        "anthropic",
        ANTHROPIC_MODEL,
        ANTHROPIC_MODEL,
        "anthropic",
    )
    assert (e.status, e.stop_reason, e.stream, e.operation, e.operation_subtype) == (
        "success",
        "end",
        False,
        "chat",
        None,
    )
    assert_tokens(e, 10, 20, 300, 50, 20)
    # 30 tokens written at the 5-minute rate, 20 at the 1-hour rate
    assert_cost(e, input=10, output=20, cache_read=300, cache_write=50, cache_write_1h=20)
    assert e.time_to_first_token_ms is None and e.duration_ms is not None and e.duration_ms > 0


def test_usage_metadata_removed_and_merged_with_scopes(db: Any, fake_provider: Any) -> None:
    c = client(fake_provider)
    with meterline.metadata(subscriber_id="outer", product_id="search", agent="a1"):
        create(
            c,
            usage_metadata={"subscriber": {"id": "cust-9", "email": "c@x.io"}, "organizationName": "acme"},
            extra_headers={"x-keep": "1"},
        )
    req = fake_provider.requests[-1]
    assert "usage_metadata" not in req.body and "usage_metadata" not in json.dumps(req.body)
    assert "x-meterline-usage-metadata" not in req.headers and req.headers["x-keep"] == "1"
    (e,) = db.events()
    assert (e.subscriber_id, e.subscriber_email, e.organization_id, e.product_id, e.agent) == (
        "cust-9",
        "c@x.io",
        "acme",
        "search",
        "a1",
    )


def test_stream_create_iterated_to_the_end(db: Any, fake_provider: Any) -> None:
    fake_provider.set_usage(**CACHE)
    events = list(create(client(fake_provider), stream=True, usage_metadata={"trace_id": "t-1"}))
    assert events[0].type == "message_start" and events[-1].type == "message_stop"
    assert "usage_metadata" not in fake_provider.requests[-1].body
    (e,) = db.events()
    assert (e.status, e.stream, e.stop_reason, e.trace_id) == ("success", True, "end", "t-1")
    assert e.time_to_first_token_ms is not None and 0 < e.time_to_first_token_ms <= e.duration_ms
    assert_tokens(e, 10, 20, 300, 50, 20)
    assert_cost(e, input=10, output=20, cache_read=300, cache_write=50, cache_write_1h=20)


@pytest.mark.parametrize("mode", ["text_stream", "events", "final_message", "until_done"])
def test_messages_stream_helper_each_way_of_reading(db: Any, fake_provider: Any, mode: str) -> None:
    fake_provider.set_usage(input=7, output=6)
    c = client(fake_provider)
    with c.messages.stream(model=ANTHROPIC_MODEL, max_tokens=50, messages=MSGS, usage_metadata={"agent": "s"}) as s:
        if mode == "text_stream":
            assert "".join(s.text_stream) == "Hello from the meterline fake provider."
        elif mode == "events":
            assert [ev.type for ev in s][-1] == "message_stop"
        elif mode == "until_done":
            s.until_done()
        final = s.get_final_message()
    assert final.usage.output_tokens == 6
    (e,) = db.events()
    assert (e.status, e.stream, e.agent, e.stop_reason) == ("success", True, "s", "end")
    assert_tokens(e, 7, 6)
    assert_cost(e, input=7, output=6)


def test_beta_messages_and_parse(db: Any, fake_provider: Any) -> None:
    c = client(fake_provider)
    fake_provider.set_usage(input=3, output=4, cache_read=5)
    c.beta.messages.create(model=ANTHROPIC_MODEL, max_tokens=10, messages=MSGS, usage_metadata={"task_type": "b"})
    assert fake_provider.requests[-1].path.startswith("/v1/messages")
    with c.beta.messages.stream(model=ANTHROPIC_MODEL, max_tokens=10, messages=MSGS) as s:
        s.get_final_message()
    c.messages.parse(model=ANTHROPIC_MODEL, max_tokens=10, messages=MSGS, usage_metadata={"task_type": "p"})
    assert "usage_metadata" not in fake_provider.requests[-1].body
    events = db.events()
    assert [(e.stream, e.task_type, e.status) for e in events] == [
        (False, "b", "success"),
        (True, None, "success"),
        (False, "p", "success"),
    ]
    for e in events:
        assert_tokens(e, 3, 4, 5)
        assert_cost(e, input=3, output=4, cache_read=5)


def test_with_raw_response_plain_and_streamed(db: Any, fake_provider: Any) -> None:
    fake_provider.set_usage(input=8, output=2)
    c = client(fake_provider)
    raw = c.messages.with_raw_response.create(
        model=ANTHROPIC_MODEL, max_tokens=5, messages=MSGS, usage_metadata={"agent": "r"}
    )
    assert raw.headers["request-id"].startswith("req_") and raw.parse().usage.input_tokens == 8
    raw_stream = c.messages.with_raw_response.create(model=ANTHROPIC_MODEL, max_tokens=5, messages=MSGS, stream=True)
    assert [ev.type for ev in raw_stream.parse()][-1] == "message_stop"
    events = db.events()
    assert [(e.stream, e.status, e.agent) for e in events] == [(False, "success", "r"), (True, "success", None)]
    for e in events:
        assert_tokens(e, 8, 2)


def test_stop_reasons_and_tool_use(db: Any, fake_provider: Any) -> None:
    c = client(fake_provider)
    create(c, extra_headers={"x-fake-stop": "max_tokens"})
    create(c, stop_sequences=["END"], extra_headers={"x-fake-stop": "stop_sequence"})
    tools = [{"name": "lookup", "input_schema": {"type": "object"}}]
    create(c, tools=tools, extra_headers={"x-fake-tool-use": "1"})
    with c.messages.stream(
        model=ANTHROPIC_MODEL, max_tokens=5, messages=MSGS, tools=tools, extra_headers={"x-fake-tool-use": "1"}
    ) as s:  # type: ignore[arg-type]
        s.get_final_message()
    # a refusal, answered with HTTP 200 by the fake's verbatim body
    refusal = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": ANTHROPIC_MODEL,
        "content": [],
        "stop_reason": "refusal",
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 0},
    }
    fake_provider.fail_next(status=200, body=refusal)
    assert create(c).stop_reason == "refusal"
    got = [(e.stop_reason, e.operation_subtype, e.stream) for e in db.events()]
    assert got == [
        ("max_tokens", None, False),
        ("stop_sequence", None, False),
        ("tool_use", "tool_use", False),
        ("tool_use", "tool_use", True),
        ("content_filter", None, False),
    ]


def test_http_errors_one_error_event_and_the_same_exception(db: Any, fake_provider: Any) -> None:
    c = client(fake_provider)
    fake_provider.fail_next(status=429, retry_after=0)
    with pytest.raises(anthropic.RateLimitError) as info:
        create(c, usage_metadata={"subscriber_id": "s-err"})
    assert type(info.value) is anthropic.RateLimitError and info.value.status_code == 429
    fake_provider.fail_next(status=529)
    with pytest.raises(anthropic.APIStatusError) as over:
        create(c)
    assert over.value.status_code == 529
    events = db.events()
    assert [(e.status, e.stop_reason, e.error_type, e.subscriber_id) for e in events] == [
        ("error", "error", "RateLimitError", "s-err"),
        ("error", "error", "OverloadedError", None),
    ]
    assert "rate_limit_error" in (events[0].error_message or "")
    assert all(e.total_tokens == 0 and e.total_cost == 0 for e in events)


def test_retried_call_is_one_event(db: Any, fake_provider: Any) -> None:
    fake_provider.fail_next(status=429, retry_after=0)
    create(anthropic.Anthropic(base_url=fake_provider.anthropic_base_url, api_key="k", max_retries=2))
    assert len(fake_provider.requests) == 2
    (e,) = db.events()
    assert e.status == "success" and e.input_tokens == 9


def test_timeout_is_an_error_event(db: Any, fake_provider: Any) -> None:
    fake_provider.delay(1.0)
    with pytest.raises(anthropic.APITimeoutError):
        create(client(fake_provider, timeout=0.2))
    (e,) = db.events()
    assert (e.status, e.error_type) == ("error", "APITimeoutError")


@pytest.mark.parametrize("mode", ["error_event", "disconnect"])
def test_stream_failing_midway_is_one_error_event_with_usage_so_far(db: Any, fake_provider: Any, mode: str) -> None:
    fake_provider.set_usage(input=40, output=9, cache_read=7)
    fake_provider.fail_stream_after(3, mode=mode)
    seen = []
    with pytest.raises((anthropic.APIStatusError, anthropic.APIConnectionError, httpx2.HTTPError)) as info:
        for ev in create(client(fake_provider), stream=True):
            seen.append(ev.type)
    assert seen[0] == "message_start"
    (e,) = db.events()
    assert (e.status, e.stream) == ("error", True)
    assert e.error_type == type(info.value).__name__
    assert_tokens(e, 40, 1, 7)  # message_start's usage: output 1 so far


def test_abandoned_streams_are_cancelled_once(db: Any, fake_provider: Any) -> None:
    fake_provider.set_usage(input=5, output=8)
    c = client(fake_provider)
    # 1. break after one event, then drop the stream
    stream = create(c, stream=True)
    for _ in stream:
        break
    del stream
    gc.collect()
    # 2. close explicitly after one event: the event is emitted at close()
    stream = create(c, stream=True)
    next(iter(stream))
    stream.close()
    stream.close()
    assert len(db.events()) == 2
    # 3. never iterated, garbage collected
    create(c, stream=True)
    gc.collect()
    # 4. the stream helper left after the first text
    with c.messages.stream(model=ANTHROPIC_MODEL, max_tokens=5, messages=MSGS) as s:
        for _text in s.text_stream:
            break
    events = db.events()
    assert [(e.status, e.stop_reason) for e in events] == [("cancelled", "cancelled")] * 4
    assert [e.output_tokens for e in events] == [1, 1, 0, 1]
    assert [e.input_tokens for e in events] == [5, 5, 0, 5]
    assert_cost(events[0], input=5, output=1)


async def test_async_create_stream_and_helper(db: Any, fake_provider: Any) -> None:
    fake_provider.set_usage(**CACHE)
    c = aclient(fake_provider)
    await c.messages.create(model=ANTHROPIC_MODEL, max_tokens=5, messages=MSGS, usage_metadata={"agent": "async"})
    assert "usage_metadata" not in fake_provider.requests[-1].body
    stream = await c.messages.create(model=ANTHROPIC_MODEL, max_tokens=5, messages=MSGS, stream=True)
    assert [ev.type async for ev in stream][-1] == "message_stop"
    async with c.messages.stream(
        model=ANTHROPIC_MODEL, max_tokens=5, messages=MSGS, usage_metadata={"agent": "h"}
    ) as s:
        await s.get_final_message()
    raw = await c.beta.messages.with_raw_response.create(model=ANTHROPIC_MODEL, max_tokens=5, messages=MSGS)
    await raw.parse()
    events = db.events()
    assert [(e.stream, e.agent, e.status) for e in events] == [
        (False, "async", "success"),
        (True, None, "success"),
        (True, "h", "success"),
        (False, None, "success"),
    ]
    for e in events:
        assert_tokens(e, 10, 20, 300, 50, 20)
        assert_cost(e, input=10, output=20, cache_read=300, cache_write=50, cache_write_1h=20)


async def test_async_errors_and_abandoned_stream(db: Any, fake_provider: Any) -> None:
    c = aclient(fake_provider)
    fake_provider.fail_next(status=500)
    with pytest.raises(anthropic.InternalServerError):
        await c.messages.create(model=ANTHROPIC_MODEL, max_tokens=5, messages=MSGS)
    stream = await c.messages.create(model=ANTHROPIC_MODEL, max_tokens=5, messages=MSGS, stream=True)
    async for _ in stream:
        break
    await stream.close()
    fake_provider.fail_stream_after(2, mode="error_event")
    with pytest.raises(anthropic.APIStatusError):
        async with c.messages.stream(model=ANTHROPIC_MODEL, max_tokens=5, messages=MSGS) as s:
            await s.get_final_message()
    events = db.events()
    assert [(e.status, e.error_type) for e in events] == [
        ("error", "InternalServerError"),
        ("cancelled", None),
        ("error", "APIStatusError"),
    ]
    assert events[1].input_tokens == 9 and events[2].input_tokens == 9


def test_with_streaming_response(db: Any, fake_provider: Any) -> None:
    fake_provider.set_usage(input=4, output=3)
    c = client(fake_provider)
    with c.messages.with_streaming_response.create(model=ANTHROPIC_MODEL, max_tokens=5, messages=MSGS) as resp:
        assert json.loads(b"".join(resp.iter_bytes()))["usage"]["input_tokens"] == 4
    with c.messages.with_streaming_response.create(
        model=ANTHROPIC_MODEL, max_tokens=5, messages=MSGS, stream=True
    ) as resp:
        assert [ev.type for ev in resp.parse()][-1] == "message_stop"
    events = db.events()
    assert [(e.stream, e.status) for e in events] == [(False, "success"), (True, "success")]
    for e in events:
        assert_tokens(e, 4, 3)


def test_calls_a_meterline_gateway_metered_are_not_recorded_again(db: Any, fake_provider: Any) -> None:
    import anthropic as _anthropic

    gateway = {"x-fake-response-headers": '{"x-meterline-metered": "gateway"}'}
    c = _anthropic.Anthropic(base_url=fake_provider.anthropic_base_url, api_key="k", max_retries=0)
    msgs = [{"role": "user", "content": "hi"}]
    c.messages.create(model="claude-3-5-sonnet-20240620", max_tokens=10, messages=msgs, extra_headers=gateway)
    with c.messages.stream(
        model="claude-3-5-sonnet-20240620", max_tokens=10, messages=msgs, extra_headers=gateway
    ) as s:
        s.get_final_message()
    c.messages.create(model="claude-3-5-sonnet-20240620", max_tokens=10, messages=msgs)
    assert len(fake_provider.requests) == 3
    assert len(db.events()) == 1


def test_the_event_is_built_on_the_recorders_thread_not_the_callers(
    db: Any, fake_provider: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 18: the caller's thread only takes the call's timings; the event is made on the recorder's."""
    import threading

    from meterline.integrations._call import CallMeter

    threads: list[str] = []
    original = CallMeter._event

    def spy(self: CallMeter, *args: Any) -> Any:
        threads.append(threading.current_thread().name)
        return original(self, *args)

    monkeypatch.setattr(CallMeter, "_event", spy)
    fake_provider.set_usage(input=11, output=7)
    create(client(fake_provider))
    with client(fake_provider).messages.stream(model=ANTHROPIC_MODEL, max_tokens=100, messages=MSGS) as s:
        s.until_done()
    events = db.events()
    assert sorted((e.stream, e.input_tokens, e.output_tokens) for e in events) == [(False, 11, 7), (True, 11, 7)]
    assert threads == ["meterline-recorder", "meterline-recorder"]
