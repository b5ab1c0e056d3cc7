"""The real clients people already run, pointed at a meterline collector by base URL only: lago-python-client,
LiteLLM's ``lago`` and ``openmeter`` callbacks, and OpenTelemetry (SDK + OTLP/HTTP exporter, and the
openai-v2 instrumentation over the openai SDK against the fake provider). One event per call, exact tokens,
none on a re-send."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from interop_support import Collector, by_integration, collector_fixture, tokens  # noqa: F401 - fixture
from meterline.interop.ingest import event_id

MSGS = [{"role": "user", "content": "What is the status of order 42?"}]


# -- lago-python-client ------------------------------------------------------------------------------
def test_lago_python_client_create_and_batch_create_resent_are_counted_once(collector: Collector) -> None:
    from lago_python_client.client import Client
    from lago_python_client.models.event import BatchEvent, Event

    client = Client(api_key=collector.key, api_url=f"{collector.url}/lago/")
    props = {"model": "gpt-4o-mini", "input_tokens": 1200, "output_tokens": 300, "cache_read_tokens": 800}
    one = Event(
        transaction_id="tx-1",
        external_subscription_id="sub_acme",
        code="llm_usage",
        timestamp="1793613600",
        properties=props,
    )
    created = client.events.create(one)
    assert created is not None and created.transaction_id == "tx-1" and created.external_subscription_id == "sub_acme"
    assert created.lago_id == event_id("lago", "tx-1")
    batch = BatchEvent(
        events=[
            Event(transaction_id=f"tx-{i}", external_subscription_id="sub_acme", code="llm_usage", properties=props)
            for i in (2, 3, 4)
        ]
    )
    client.events.batch_create(batch)
    # the client re-sends everything (a retry after a timeout): nothing is counted twice
    client.events.create(one)
    client.events.batch_create(batch)
    events = collector.wait(4)
    assert len(events) == 4
    assert {e.id for e in events} == {event_id("lago", f"tx-{i}") for i in (1, 2, 3, 4)}
    first = next(e for e in events if e.id == event_id("lago", "tx-1"))
    assert first.start_time.timestamp() == 1793613600
    assert (first.provider, first.model, first.subscription_id) == ("openai", "gpt-4o-mini", "sub_acme")
    assert tokens(first) == (1200, 800, 0, 300, 0)
    # priced by meterline (no cost sent): gpt-4o-mini 0.15 / 0.075 cached / 0.60 per 1M
    assert first.total_cost == Decimal("0.00018") + Decimal("0.00006") + Decimal("0.00018")
    assert first.attributes["lago.code"] == "llm_usage"


def test_lago_python_client_sees_lago_errors(collector: Collector) -> None:
    from lago_python_client.client import Client
    from lago_python_client.exceptions import LagoApiError
    from lago_python_client.models.event import Event

    client = Client(api_key=collector.key, api_url=f"{collector.url}/lago/")
    with pytest.raises(LagoApiError) as err:
        client.events.create(Event(transaction_id="tx-x", external_subscription_id="s", code="c", properties={}))
    assert err.value.status_code == 422
    assert err.value.response["error_details"] == {"properties.model": ["value_is_mandatory"]}
    bad = Client(api_key="wrong-key", api_url=f"{collector.url}/lago/")
    with pytest.raises(LagoApiError) as err:
        bad.events.create(Event(transaction_id="tx-y", external_subscription_id="s", code="c", properties={}))
    assert err.value.status_code == 401
    assert collector.events() == []


# -- LiteLLM's lago and openmeter callbacks ----------------------------------------------------------
@pytest.fixture
def litellm_callbacks() -> Iterator[Any]:
    import litellm

    saved = {
        name: list(getattr(litellm, name))
        for name in ("callbacks", "success_callback", "_async_success_callback", "failure_callback")
    }
    yield litellm
    for name, value in saved.items():
        setattr(litellm, name, value)
    from litellm.litellm_core_utils import logging_callback_manager as mgr

    getattr(litellm, "logging_callback_manager", mgr).__dict__.pop("_lago", None)


def test_litellm_lago_callback(collector: Collector, litellm_callbacks: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    litellm = litellm_callbacks
    monkeypatch.setenv("LAGO_API_BASE", f"{collector.url}/lago")
    monkeypatch.setenv("LAGO_API_KEY", collector.key)
    monkeypatch.setenv("LAGO_API_EVENT_CODE", "llm_usage")
    monkeypatch.setenv("LAGO_API_CHARGE_BY", "user_id")
    litellm.callbacks = ["lago"]
    replies = {}
    for user in ("u-1", "u-2"):
        replies[user] = litellm.completion(
            model="gpt-4o-mini",
            messages=MSGS,
            mock_response="Order 42 ships tomorrow.",
            metadata={"user_api_key_user_id": user},
        )
    events = by_integration(collector.wait(2), "lago")
    assert len(events) == 2
    assert sorted(e.subscription_id or "" for e in events) == ["u-1", "u-2"]
    for e in events:
        reply = replies[e.subscription_id or ""]
        assert (e.provider, e.model) == ("openai", "gpt-4o-mini")
        assert (e.input_tokens, e.output_tokens) == (reply.usage.prompt_tokens, reply.usage.completion_tokens)
        # LiteLLM's own response_cost, taken as sent
        assert e.total_cost == Decimal(repr(reply._hidden_params["response_cost"])).quantize(Decimal("1e-12"))
        assert e.pricing_source == "lago"


async def test_litellm_openmeter_callback(
    collector: Collector, litellm_callbacks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    litellm = litellm_callbacks
    monkeypatch.setenv("OPENMETER_API_ENDPOINT", f"{collector.url}/openmeter")
    monkeypatch.setenv("OPENMETER_API_KEY", collector.key)
    litellm.callbacks = ["openmeter"]
    replies = {
        "cust-7": litellm.completion(
            model="gpt-4o-mini", messages=MSGS, mock_response="Ships tomorrow.", user="cust-7"
        ),
        "cust-8": await litellm.acompletion(model="gpt-4o-mini", messages=MSGS, mock_response="Today.", user="cust-8"),
    }
    for _ in range(150):  # the async success hook runs on LiteLLM's logging worker, on this loop
        if len(collector.events()) >= 2:
            break
        await asyncio.sleep(0.1)
    events = by_integration(collector.wait(2), "openmeter")
    assert sorted(e.subscriber_id or "" for e in events) == ["cust-7", "cust-8"]
    for e in events:
        reply = replies[e.subscriber_id or ""]
        assert e.model == "gpt-4o-mini" and e.attributes["openmeter.source"] == "litellm-proxy"
        assert (e.input_tokens, e.output_tokens) == (reply.usage.prompt_tokens, reply.usage.completion_tokens)
        assert e.id == event_id("openmeter", f"litellm-proxy\x00{reply.id}")


# -- OpenTelemetry -----------------------------------------------------------------------------------
def _otel(collector: Collector, *, protobuf: bool = True) -> tuple[Any, Any]:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    exporter = OTLPSpanExporter(
        endpoint=f"{collector.url}/v1/traces",
        headers={"Authorization": f"Bearer {collector.key}"},
        compression=__import__("opentelemetry.exporter.otlp.proto.http", fromlist=["Compression"]).Compression.Gzip,
    )
    provider = TracerProvider(resource=Resource.create({"service.name": "shop", "deployment.environment": "prod"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_openai_v2_instrumentation_over_the_openai_sdk(collector: Collector, fake_provider: Any) -> None:
    import openai
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    provider, _ = _otel(collector)
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        client = openai.OpenAI(base_url=fake_provider.openai_base_url, api_key="k")
        replies = [client.chat.completions.create(model="gpt-4o-mini", messages=MSGS) for _ in range(2)]
        emb = client.embeddings.create(model="text-embedding-3-small", input="a b c d")
        with provider.get_tracer("app").start_as_current_span("GET /orders/42"):  # not gen_ai: ignored
            pass
    finally:
        instrumentor.uninstrument()
        provider.shutdown()
    events = collector.wait(3)
    assert len(events) == 3 and {e.integration for e in events} == {"otlp"}
    chats = [e for e in events if e.operation == "chat"]
    assert [(e.provider, e.model, e.input_tokens, e.output_tokens, e.stop_reason) for e in chats] == [
        ("openai", "gpt-4o-mini", r.usage.prompt_tokens, r.usage.completion_tokens, "end") for r in replies
    ]
    assert chats[0].input_tokens > 0 and chats[0].output_tokens > 0
    embedding = next(e for e in events if e.operation == "embedding")
    assert (embedding.model, embedding.input_tokens, embedding.output_tokens) == (
        "text-embedding-3-small",
        emb.usage.prompt_tokens,
        0,
    )
    assert all(e.environment == "prod" and e.attributes["service.name"] == "shop" for e in events)
    assert all(
        e.total_cost is not None and e.pricing_source and e.pricing_source.startswith("genai-prices") for e in events
    )


def _spans(provider: Any) -> None:
    """gen_ai spans as instrumentations emit them: current attribute names, older ones, a failure, an agent
    span (ignored: its child carries the usage) and a call span without a model (rejected)."""
    tracer = provider.get_tracer("gen_ai")
    with tracer.start_as_current_span("invoke_agent support") as agent:
        agent.set_attribute("gen_ai.operation.name", "invoke_agent")
        agent.set_attribute("gen_ai.usage.input_tokens", 99999)
        with tracer.start_as_current_span("chat claude-sonnet-4-5") as s:
            s.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "anthropic",
                    "gen_ai.request.model": "claude-sonnet-4-5",
                    "gen_ai.usage.input_tokens": 1500,  # includes the 1000 read + 200 written
                    "gen_ai.usage.cache_read.input_tokens": 1000,
                    "gen_ai.usage.cache_creation.input_tokens": 200,
                    "gen_ai.usage.output_tokens": 80,
                    "gen_ai.response.finish_reasons": ["end_turn"],
                    "meterline.subscriber_id": "cust-9",
                }
            )
    with tracer.start_as_current_span("openai.chat") as s:  # an older instrumentation
        s.set_attributes(
            {
                "gen_ai.system": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.prompt_tokens": 700,
                "gen_ai.usage.cache_read_input_tokens": 500,
                "gen_ai.usage.completion_tokens": 40,
                "gen_ai.usage.reasoning_tokens": 10,
            }
        )
    with tracer.start_as_current_span("chat gpt-4o-mini") as s:
        s.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "error.type": "429"})
        s.set_attribute("gen_ai.request.model", "gpt-4o-mini")
    with tracer.start_as_current_span("chat") as s:
        s.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 5})


@pytest.mark.parametrize("protobuf", [True, False], ids=["protobuf", "json"])
def test_otlp_current_and_older_gen_ai_names(collector: Collector, protobuf: bool) -> None:
    if protobuf:
        provider, _ = _otel(collector)
        _spans(provider)
        provider.shutdown()
    else:  # the same spans through the SDK's in-memory exporter, sent as OTLP/JSON
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        from collector_support import request

        mem = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(mem))
        _spans(provider)
        status, body = request(
            f"{collector.url}/v1/traces",
            "POST",
            _otlp_json(mem.get_finished_spans()),
            key=collector.key,
            gzip_body=True,
        )
        assert status == 200
        assert body["partialSuccess"]["rejectedSpans"] == "1"
        assert "gen_ai.request.model: required" in body["partialSuccess"]["errorMessage"]
    events = collector.wait(3)
    assert len(events) == 3
    claude = next(e for e in events if e.model == "claude-sonnet-4-5")
    assert tokens(claude) == (300, 1000, 200, 80, 0) and claude.total_tokens == 1580
    assert (claude.provider, claude.stop_reason, claude.subscriber_id) == ("anthropic", "end", "cust-9")
    older = next(e for e in events if e.model == "gpt-4o-mini" and e.status == "success")
    assert tokens(older) == (200, 500, 0, 40, 10) and older.provider == "openai"
    failed = next(e for e in events if e.status == "error")
    assert (failed.error_type, failed.stop_reason) == ("429", "error")
    assert claude.trace_id and len(claude.trace_id) == 32


def _otlp_json(spans: Any) -> dict[str, Any]:
    """OTLP/JSON encoding of SDK spans (the OpenTelemetry Collector's otlphttp exporter sends this form)."""

    def value(v: Any) -> dict[str, Any]:
        if isinstance(v, bool):
            return {"boolValue": v}
        if isinstance(v, int):
            return {"intValue": str(v)}
        if isinstance(v, float):
            return {"doubleValue": v}
        if isinstance(v, (list, tuple)):
            return {"arrayValue": {"values": [value(x) for x in v]}}
        return {"stringValue": str(v)}

    out = []
    for s in spans:
        out.append(
            {
                "traceId": f"{s.context.trace_id:032x}",
                "spanId": f"{s.context.span_id:016x}",
                "name": s.name,
                "kind": 3,
                "startTimeUnixNano": str(s.start_time),
                "endTimeUnixNano": str(s.end_time),
                "attributes": [{"key": k, "value": value(v)} for k, v in s.attributes.items()],
                "status": {"code": s.status.status_code.value},
            }
        )
    return {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": out}]}]}


def test_otlp_resent_export_is_counted_once(collector: Collector) -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider, exporter = _otel(collector)
    mem = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(mem))
    _spans(provider)
    exporter.export(mem.get_finished_spans())  # the exporter's retry of a batch already delivered
    provider.shutdown()
    time.sleep(0.2)
    assert len(collector.wait(3)) == 3
