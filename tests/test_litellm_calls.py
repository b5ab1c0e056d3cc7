"""LiteLLM integration, non-streamed calls, on the real litellm package: mock_response and real HTTP to the
fake provider (OpenAI and Anthropic shapes). Exact token counts, Decimal costs, event counts, metadata."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from decimal import Decimal
from typing import Any

import litellm
import pytest
from litellm import completion  # imported BEFORE meterline instruments LiteLLM: must be metered too

import meterline
from _litellm_fixtures import USER, expected_cost, metered_fixture  # noqa: F401 - the metered fixture
from meterline.core import errors as _errors
from meterline.core.metadata import hash_credential
from meterline.sdk.scopes import in_call as _in_call


def _openai(fake: Any) -> dict[str, Any]:
    return {"api_base": fake.openai_base_url, "api_key": "sk-test", "num_retries": 0, "max_retries": 0}


def test_completion_imported_before_instrument_is_metered_with_exact_usage_and_cost(metered, fake_provider) -> None:
    fake_provider.set_usage(input=1000, output=200, cache_read=300, reasoning=50)
    response = completion(model="openai/gpt-4o-mini", messages=USER, **_openai(fake_provider))
    assert response.usage.prompt_tokens == 1300  # OpenAI counts cached tokens inside prompt_tokens
    [e] = metered.events()
    assert (e.provider, e.model, e.response_model, e.operation, e.status) == (
        "openai",
        "gpt-4o-mini",
        "gpt-4o-mini",
        "chat",
        "success",
    )
    assert (e.input_tokens, e.cache_read_tokens, e.output_tokens, e.reasoning_tokens, e.total_tokens) == (
        1000,
        300,
        200,
        50,
        1500,
    )
    assert e.total_cost == expected_cost("gpt-4o-mini", input=1000, cache_read=300, output=200)
    assert e.total_cost == Decimal("0.0002925")
    assert (e.integration, e.stream, e.stop_reason, e.pricing_source) == ("litellm", False, "end", "override")
    assert e.duration_ms is not None and e.duration_ms > 0


def test_anthropic_cache_tokens_are_not_counted_twice(metered, fake_provider) -> None:
    usage = {"input": 120, "output": 300, "cache_read": 4000, "cache_write": 1500}
    response = litellm.completion(
        model="anthropic/claude-3-5-sonnet-20240620",
        api_base=fake_provider.url,
        api_key="sk-ant-test",
        messages=USER,
        extra_headers={"x-fake-usage": json.dumps(usage)},
    )
    assert response.usage.prompt_tokens == 5620  # LiteLLM folds both cache counts into prompt_tokens
    [e] = metered.events()
    assert (e.provider, e.model) == ("anthropic", "claude-3-5-sonnet-20240620")
    assert (e.input_tokens, e.cache_read_tokens, e.cache_write_tokens, e.output_tokens) == (120, 4000, 1500, 300)
    assert e.total_tokens == 5920
    assert e.total_cost == expected_cost(
        "claude-3-5-sonnet-20240620", input=120, cache_read=4000, cache_write=1500, output=300
    )
    assert e.cache_write_cost == Decimal("1500") * Decimal("3.75") / Decimal(1_000_000)


def test_every_entry_point_sync_and_async_is_metered_once(metered, fake_provider) -> None:
    fake_provider.set_usage(input=50, output=10)
    kw = _openai(fake_provider)
    litellm.completion(model="openai/gpt-4o-mini", messages=USER, **kw)
    litellm.text_completion(model="openai/gpt-3.5-turbo-instruct", prompt="Say hi", **kw)
    litellm.embedding(model="openai/text-embedding-3-small", input=["a", "b"], **kw)

    async def run() -> None:
        await litellm.acompletion(model="openai/gpt-4o-mini", messages=USER, **kw)
        await litellm.atext_completion(model="openai/gpt-3.5-turbo-instruct", prompt="Say hi", **kw)
        await litellm.aembedding(model="openai/text-embedding-3-small", input=["a", "b"], **kw)

    asyncio.run(run())
    events = metered.events()
    ops = sorted((e.operation, e.model) for e in events)
    assert ops == [
        ("chat", "gpt-4o-mini"),
        ("chat", "gpt-4o-mini"),
        ("completion", "gpt-3.5-turbo-instruct"),
        ("completion", "gpt-3.5-turbo-instruct"),
        ("embedding", "text-embedding-3-small"),
        ("embedding", "text-embedding-3-small"),
    ]
    assert len(fake_provider.requests) == 6
    for e in events:
        assert (e.provider, e.status, e.integration) == ("openai", "success", "litellm")
        if e.operation == "embedding":
            assert (e.input_tokens, e.output_tokens) == (50, 0)
            assert e.total_cost == expected_cost("text-embedding-3-small", input=50)
        else:
            assert (e.input_tokens, e.output_tokens) == (50, 10)
            assert e.total_cost == expected_cost(e.model, input=50, output=10)


def test_mock_response_calls_count_exactly(metered) -> None:
    for i in range(25):
        litellm.completion(model="gpt-4o-mini", messages=USER, mock_response=f"reply {i}")

    async def run() -> None:
        await asyncio.gather(
            *(litellm.acompletion(model="gpt-4o-mini", messages=USER, mock_response="ok") for _ in range(25))
        )

    asyncio.run(run())
    events = metered.events()
    assert len(events) == 50
    assert len({e.id for e in events}) == 50
    # LiteLLM's mock usage: 10 prompt + 20 completion tokens
    assert {(e.input_tokens, e.output_tokens) for e in events} == {(10, 20)}
    assert sum((e.total_cost for e in events), Decimal(0)) == 50 * expected_cost("gpt-4o-mini", input=10, output=20)


def test_usage_metadata_never_reaches_the_provider(metered, fake_provider) -> None:
    meta = {"subscriber_id": "cust-1", "attributes": {"ticket": 7}}
    kw = _openai(fake_provider)
    litellm.completion(model="openai/gpt-4o-mini", messages=USER, usage_metadata=meta, drop_params=True, **kw)
    litellm.embedding(model="openai/text-embedding-3-small", input=["x"], usage_metadata=meta, **kw)
    litellm.text_completion(model="openai/gpt-3.5-turbo-instruct", prompt="hi", usage_metadata=meta, **kw)

    async def run() -> None:
        await litellm.acompletion(model="openai/gpt-4o-mini", messages=USER, usage_metadata=meta, **kw)
        await litellm.aembedding(model="openai/text-embedding-3-small", input=["x"], usage_metadata=meta, **kw)

    asyncio.run(run())
    bodies = [r.body for r in fake_provider.requests]
    assert len(bodies) == 5
    for body in bodies:
        assert "usage_metadata" not in json.dumps(body)
        assert "cust-1" not in json.dumps(body)
    events = metered.events()
    assert [e.subscriber_id for e in events] == ["cust-1"] * 5
    assert [e.attributes for e in events] == [{"ticket": 7}] * 5


def test_usage_metadata_reaches_the_body_without_meterline(fake_provider) -> None:
    """The reason meterline strips it: LiteLLM forwards unknown kwargs to the provider."""
    litellm.completion(
        model="openai/gpt-4o-mini", messages=USER, usage_metadata={"agent": "x"}, **_openai(fake_provider)
    )
    assert "usage_metadata" in json.dumps(fake_provider.requests[-1].body)


def test_metadata_precedence_call_over_inner_over_outer_over_env(metered, monkeypatch) -> None:
    monkeypatch.setenv("METERLINE_ENVIRONMENT", "from-env")
    monkeypatch.setenv("METERLINE_REGION", "eu-west-1")
    outer = meterline.metadata(agent="outer", product_id="p-outer", environment="outer-env", tags=["a"])
    with outer, meterline.metadata(agent="inner", tags=["b"]):
        litellm.completion(
            model="gpt-4o-mini",
            messages=USER,
            mock_response="x",
            usage_metadata={"agent": "call", "task_type": "t-call", "tags": ["c"]},
        )
        litellm.completion(model="gpt-4o-mini", messages=USER, mock_response="y")
    litellm.completion(model="gpt-4o-mini", messages=USER, mock_response="z")
    a, b, c = sorted(metered.events(), key=lambda e: e.start_time)
    assert (a.agent, a.task_type, a.product_id, a.environment, a.region) == (
        "call",
        "t-call",
        "p-outer",
        "outer-env",
        "eu-west-1",
    )
    assert a.tags == ["a", "b", "c"]
    assert (b.agent, b.task_type, b.product_id, b.tags) == ("inner", None, "p-outer", ["a", "b"])
    assert (c.agent, c.product_id, c.environment, c.region) == (None, None, "from-env", "eu-west-1")


def test_revenium_spellings_and_credential_hashing(metered, fake_provider) -> None:
    litellm.completion(
        model="openai/gpt-4o-mini",
        messages=USER,
        usage_metadata={
            "subscriber": {
                "id": "u-9",
                "email": "u9@acme.test",
                "credential": {"name": "prod-key", "value": "sk-SECRET"},
            },
            "organizationId": "acme",
            "product.name": "search",
            "taskType": "lookup",
            "traceId": "tr-1",
            "responseQualityScore": 0.8,
        },
        **_openai(fake_provider),
    )
    [e] = metered.events()
    assert (e.subscriber_id, e.subscriber_email, e.credential_name) == ("u-9", "u9@acme.test", "prod-key")
    assert (e.organization_id, e.product_id, e.task_type, e.trace_id) == ("acme", "search", "lookup", "tr-1")
    assert e.response_quality_score == 0.8
    assert e.credential_hash == hash_credential("sk-SECRET")
    assert "sk-SECRET" not in json.dumps(e.to_wire())
    assert "sk-SECRET" not in json.dumps(fake_provider.requests[-1].body)


def test_scope_is_read_on_the_callers_task(metered) -> None:
    async def one(customer: str) -> None:
        with meterline.metadata(subscriber_id=customer):
            await asyncio.sleep(0)
            await litellm.acompletion(model="gpt-4o-mini", messages=USER, mock_response=customer)

    async def run() -> None:
        await asyncio.gather(*(one(f"c{i}") for i in range(20)))

    asyncio.run(run())
    assert sorted(e.subscriber_id or "" for e in metered.events()) == sorted(f"c{i}" for i in range(20))


def test_bad_usage_metadata_field_is_dropped_and_the_call_goes_through(metered) -> None:
    response = litellm.completion(
        model="gpt-4o-mini", messages=USER, mock_response="ok", usage_metadata={"retry_number": "soon", "agent": "a"}
    )
    assert response.choices[0].message.content == "ok"
    [e] = metered.events()
    assert (e.agent, e.retry_number) == ("a", None)


def test_failed_call_is_one_error_event_and_the_exception_is_unchanged(metered, fake_provider) -> None:
    fake_provider.fail_next(429)
    with pytest.raises(litellm.RateLimitError) as metered_exc:
        litellm.completion(model="openai/gpt-4o-mini", messages=USER, **_openai(fake_provider))
    meterline.uninstrument("litellm")
    fake_provider.fail_next(429)
    with pytest.raises(litellm.RateLimitError) as bare_exc:
        litellm.completion(model="openai/gpt-4o-mini", messages=USER, **_openai(fake_provider))
    assert str(metered_exc.value) == str(bare_exc.value)
    assert metered_exc.value.status_code == bare_exc.value.status_code == 429
    [e] = metered.events()
    assert (e.status, e.stop_reason, e.error_type, e.provider, e.model) == (
        "error",
        "error",
        "RateLimitError",
        "openai",
        "gpt-4o-mini",
    )
    assert e.error_message == str(metered_exc.value)
    assert (e.total_tokens, e.total_cost) == (0, Decimal(0))


def test_async_failure_and_mock_exception(metered) -> None:
    async def run() -> None:
        with pytest.raises(litellm.InternalServerError, match="boom"):
            await litellm.acompletion(model="gpt-4o-mini", messages=USER, mock_response=Exception("boom"))

    asyncio.run(run())
    with pytest.raises(litellm.InternalServerError, match="bang"):
        litellm.text_completion(model="gpt-3.5-turbo-instruct", prompt="x", mock_response=Exception("bang"))
    events = metered.events()
    assert sorted((e.operation, e.status, e.error_type) for e in events) == [
        ("chat", "error", "InternalServerError"),
        ("completion", "error", "InternalServerError"),
    ]
    assert all("boom" in (e.error_message or "") or "bang" in (e.error_message or "") for e in events)


def _router(fake: Any) -> litellm.Router:
    return litellm.Router(
        model_list=[
            {
                "model_name": "fast",
                "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": fake.openai_base_url, "api_key": "x"},
                "model_info": {"id": "deploy-1"},
            }
        ],
        num_retries=1,
        retry_after=0,
    )


def test_router_meters_each_attempt_sync_and_async(metered, fake_provider) -> None:
    fake_provider.set_usage(input=70, output=7)
    router = _router(fake_provider)
    fake_provider.fail_next(500)
    router.completion(model="fast", messages=USER, usage_metadata={"agent": "sync"})

    async def run() -> None:
        fake_provider.fail_next(500)
        await router.acompletion(model="fast", messages=USER, usage_metadata={"agent": "async"})

    asyncio.run(run())
    events = metered.events()
    assert len(fake_provider.requests) == 4
    assert sorted((e.agent, e.status) for e in events) == [
        ("async", "error"),
        ("async", "success"),
        ("sync", "error"),
        ("sync", "success"),
    ]
    for e in events:
        assert (e.model_group, e.deployment_id, e.provider, e.model) == ("fast", "deploy-1", "openai", "gpt-4o-mini")
        expected = expected_cost("gpt-4o-mini", input=70, output=7) if e.status == "success" else Decimal(0)
        assert e.total_cost == expected
    assert all("usage_metadata" not in json.dumps(r.body) for r in fake_provider.requests)


def test_calls_made_by_a_proxy_for_a_client_are_left_to_the_proxy_integration(metered) -> None:
    litellm.completion(
        model="gpt-4o-mini",
        messages=USER,
        mock_response="x",
        proxy_server_request={"url": "http://proxy/chat/completions", "body": {}},
    )
    litellm.completion(model="gpt-4o-mini", messages=USER, mock_response="x")
    assert len(metered.events()) == 1


def test_selective_metering_and_outer_layers(metered, monkeypatch) -> None:
    monkeypatch.setenv("METERLINE_SELECTIVE_METERING", "true")
    litellm.completion(model="gpt-4o-mini", messages=USER, mock_response="outside")
    with meterline.meter(agent="metered"):
        litellm.completion(model="gpt-4o-mini", messages=USER, mock_response="inside")
    monkeypatch.delenv("METERLINE_SELECTIVE_METERING")
    token = _in_call.set(True)  # an outer layer (e.g. a gateway) is already metering this call
    try:
        litellm.completion(model="gpt-4o-mini", messages=USER, mock_response="nested")
    finally:
        _in_call.reset(token)
    [e] = metered.events()
    assert e.agent == "metered"


def test_in_call_is_set_while_litellm_calls_the_provider_and_reset_after(metered, fake_provider) -> None:
    from litellm.integrations.custom_logger import CustomLogger

    class SeesInCall(CustomLogger):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[bool] = []

        def log_pre_api_call(self, model: Any, messages: Any, kwargs: Any) -> None:
            self.seen.append(_in_call.get())

    probe = SeesInCall()
    litellm.callbacks = [probe]
    try:
        litellm.completion(model="openai/gpt-4o-mini", messages=USER, **_openai(fake_provider))
        assert _in_call.get() is False
        fake_provider.fail_next(500)
        with pytest.raises(litellm.InternalServerError):
            litellm.completion(model="openai/gpt-4o-mini", messages=USER, **_openai(fake_provider))
        assert _in_call.get() is False

        async def run() -> bool:
            await litellm.acompletion(model="openai/gpt-4o-mini", messages=USER, **_openai(fake_provider))
            return _in_call.get()

        assert asyncio.run(run()) is False
    finally:
        litellm.callbacks = []
    assert probe.seen == [True, True, True]
    assert len(metered.events()) == 3


def test_instrument_is_idempotent_and_uninstrument_restores_the_exact_originals(tmp_path) -> None:
    import litellm.utils as lu
    from litellm.caching.caching_handler import LLMCachingHandler
    from litellm.litellm_core_utils.litellm_logging import Logging
    from litellm.litellm_core_utils.streaming_handler import CustomStreamWrapper

    from conftest import MeterDB
    from meterline.integrations import litellm as integration

    targets = [
        (lu, "function_setup"),
        (lu, "update_response_metadata"),
        (lu, "_restore_correlation_context_if_supported"),
        (Logging, "failure_handler"),
        (LLMCachingHandler, "sync_get_cache"),
        (LLMCachingHandler, "async_get_cache"),
        (CustomStreamWrapper, "__next__"),
        (CustomStreamWrapper, "__anext__"),
        (CustomStreamWrapper, "aclose"),
        (CustomStreamWrapper, "__del__"),
    ]
    before = [owner.__dict__[name] for owner, name in targets]
    db = MeterDB(tmp_path)
    db.init()
    try:
        assert meterline.instrument("litellm") == ["litellm"]
        patched = [owner.__dict__[name] for owner, name in targets]
        assert all(p is not b for p, b in zip(patched, before, strict=True))
        meterline.instrument_litellm()  # idempotent: nothing wrapped twice
        assert [owner.__dict__[name] for owner, name in targets] == patched
        litellm.completion(model="gpt-4o-mini", messages=USER, mock_response="metered")
        assert integration.uninstrument() is True
        assert [owner.__dict__[name] for owner, name in targets] == before
        assert integration.uninstrument() is False
        assert meterline.uninstrument("litellm") == []
        litellm.completion(model="gpt-4o-mini", messages=USER, mock_response="not metered")
        assert len(db.events()) == 1
        meterline.instrument()  # every installed integration, litellm included
        assert integration.is_instrumented()
        litellm.completion(model="gpt-4o-mini", messages=USER, mock_response="metered again")
        assert len(db.events()) == 2
    finally:
        meterline.uninstrument()
        meterline.shutdown()
    assert [owner.__dict__[name] for owner, name in targets] == before


@pytest.mark.allow_internal_errors
def test_a_meterline_bug_never_breaks_the_call(metered, monkeypatch) -> None:
    from meterline.integrations._litellm_call import LiteLLMCall

    monkeypatch.setenv("METERLINE_RAISE_INTERNAL", "0")

    def broken(self: Any, logging_obj: Any, result: Any) -> None:
        raise RuntimeError("meterline bug")

    monkeypatch.setattr(LiteLLMCall, "finish_result", broken)
    response = litellm.completion(model="gpt-4o-mini", messages=USER, mock_response="still fine")
    assert response.choices[0].message.content == "still fine"
    assert _errors.internal_errors() == 1
    assert "meterline bug" in str(_errors.last_internal_error())
    assert _in_call.get() is False


def test_async_call_cancelled_mid_flight_is_one_cancelled_event(metered, fake_provider) -> None:
    fake_provider.delay(2.0)

    async def run() -> None:
        task = asyncio.ensure_future(
            litellm.acompletion(model="openai/gpt-4o-mini", messages=USER, **_openai(fake_provider))
        )
        while not fake_provider.requests:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    try:
        asyncio.run(run())
    finally:
        fake_provider.delay(0)
    [e] = metered.events()
    assert (e.status, e.stop_reason, e.provider, e.model) == ("cancelled", "cancelled", "openai", "gpt-4o-mini")


def test_stop_reasons_and_tool_use(metered, fake_provider) -> None:
    kw = _openai(fake_provider)
    fake_provider.set_reply(tool_use=True)
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}]
    litellm.completion(model="openai/gpt-4o-mini", messages=USER, tools=tools, usage_metadata={"agent": "tool"}, **kw)
    fake_provider.set_reply(stop="max_tokens")
    litellm.completion(model="openai/gpt-4o-mini", messages=USER, usage_metadata={"agent": "long"}, **kw)
    litellm.completion(
        model="anthropic/claude-3-5-sonnet-20240620",
        messages=USER,
        usage_metadata={"agent": "anthropic-long"},
        api_base=fake_provider.url,
        api_key="x",
    )
    fake_provider.set_reply()
    litellm.completion(model="openai/gpt-4o-mini", messages=USER, usage_metadata={"agent": "end"}, **kw)
    got = {e.agent: (e.stop_reason, e.operation_subtype) for e in metered.events()}
    assert got == {
        "tool": ("tool_use", "tool_use"),
        "long": ("max_tokens", None),
        "anthropic-long": ("max_tokens", None),
        "end": ("end", None),
    }


def test_anthropic_one_hour_cache_writes_are_kept_apart(metered, fake_provider) -> None:
    fake_provider.set_usage(input=10, output=5, cache_write=1000, cache_write_1h=400)
    litellm.completion(
        model="anthropic/claude-3-5-sonnet-20240620", messages=USER, api_base=fake_provider.url, api_key="x"
    )
    [e] = metered.events()
    assert (e.input_tokens, e.cache_write_tokens, e.cache_write_1h_tokens, e.output_tokens) == (10, 1000, 400, 5)


def test_capture_content_stores_prompt_and_reply_only_when_asked(tmp_path, fake_provider) -> None:
    from conftest import MeterDB

    db = MeterDB(tmp_path)
    db.init(capture_content=True, redact=lambda messages, text: (messages, (text or "").upper()))
    meterline.instrument_litellm()
    try:
        fake_provider.set_reply(text="the order shipped")
        litellm.completion(model="openai/gpt-4o-mini", messages=USER, **_openai(fake_provider))
        [e] = db.events()
    finally:
        meterline.uninstrument("litellm")
        meterline.shutdown()
    assert e.input_messages == USER
    assert e.output_text == "THE ORDER SHIPPED"


def test_content_is_not_stored_by_default(metered, fake_provider) -> None:
    litellm.completion(model="openai/gpt-4o-mini", messages=USER, **_openai(fake_provider))
    [e] = metered.events()
    assert (e.input_messages, e.output_text) == (None, None)


class _GatewayHandler(http.server.BaseHTTPRequestHandler):
    """A stand-in for a meterline gateway: answers OpenAI chat calls and says it metered them."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        header = None if self.headers.get("x-no-gateway-header") else "gateway"
        body = json.dumps(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1,
                "model": "gpt-4o-mini",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13},
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        if header:
            self.send_header("x-meterline-metered", header)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_calls_a_meterline_gateway_already_metered_are_not_counted_again(metered) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _GatewayHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        reply = litellm.completion(model="openai/gpt-4o-mini", messages=USER, api_base=base, api_key="k")
        assert reply.choices[0].message.content == "hi"
        litellm.completion(
            model="openai/gpt-4o-mini",
            messages=USER,
            api_base=base,
            api_key="k",
            extra_headers={"x-no-gateway-header": "1"},
        )
    finally:
        server.shutdown()
        server.server_close()
    [e] = metered.events()  # only the call whose upstream did not meter it
    assert (e.input_tokens, e.output_tokens) == (11, 2)


def test_sync_calls_from_many_threads_keep_their_own_scope(metered) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def call(i: int) -> None:
        with meterline.metadata(subscriber_id=f"t{i}"):
            litellm.completion(
                model="gpt-4o-mini", messages=USER, mock_response="ok", usage_metadata={"retry_number": i}
            )

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(call, range(40)))
    events = metered.events()
    assert sorted((e.subscriber_id or "", e.retry_number) for e in events) == sorted((f"t{i}", i) for i in range(40))


def test_the_event_is_built_on_the_recorders_thread_not_the_callers(metered, monkeypatch) -> None:
    """Issue 18: on the caller's thread only timings and references; usage, model and the event itself are
    read and made on the recorder's thread, and they are the same as before (exact tokens, one event each)."""
    from meterline.integrations._litellm_call import LiteLLMCall

    threads: list[str] = []
    original = LiteLLMCall._event

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(LiteLLMCall, "_event", spy)
    litellm.completion(model="gpt-4o-mini", messages=USER, mock_response="one two three")
    for _ in litellm.completion(model="gpt-4o-mini", messages=USER, mock_response="four five", stream=True):
        pass
    events = sorted(metered.events(), key=lambda e: e.stream)
    assert [(e.stream, e.status, e.output_tokens > 0) for e in events] == [
        (False, "success", True),
        (True, "success", True),
    ]
    assert threads == ["meterline-recorder", "meterline-recorder"]
