"""OpenTelemetry: events carry the active span's trace and span ids, and each metered call is exported as a
gen_ai span to a real OTLP/HTTP receiver (a local server decoding with opentelemetry-proto)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import litellm
import pytest

import meterline
from conftest import MeterDB
from meterline.sdk import otel

pb = pytest.importorskip(
    "opentelemetry.proto.collector.trace.v1.trace_service_pb2",
    reason="opentelemetry-proto is not installed (pip install 'meterline[otel]')",
)
sdk_trace = pytest.importorskip("opentelemetry.sdk.trace", reason="opentelemetry-sdk is not installed")

SECRET = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789"
PRICES = [{"model": "gpt-4o-mini", "input_mtok": "0.15", "cache_read_mtok": "0.075", "output_mtok": "0.60"}]


class Receiver:
    """An OTLP/HTTP traces endpoint on 127.0.0.1 that decodes every ExportTraceServiceRequest it gets."""

    def __init__(self) -> None:
        self.requests: list[Any] = []
        self.raw: list[bytes] = []
        self.content_types: list[str] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                owner.raw.append(body)
                owner.content_types.append(self.headers.get("content-type", ""))
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                req = pb.ExportTraceServiceRequest()
                req.ParseFromString(body)
                owner.requests.append(req)
                out = pb.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def spans(self) -> list[Any]:
        return [s for r in self.requests for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans]

    def close(self) -> None:
        self.server.shutdown()


def attrs(span: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in span.attributes:
        v = kv.value
        kind = v.WhichOneof("value")
        out[kv.key] = [x.string_value for x in v.array_value.values] if kind == "array_value" else getattr(v, kind)
    return out


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def tracer(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)  # a disabled SDK makes invalid (all-zero) spans
    provider = sdk_trace.TracerProvider()
    return provider.get_tracer("app")


def test_events_carry_the_active_span_ids_and_the_export_lines_up(
    tmp_path: Path, fake_provider: Any, receiver: Receiver, tracer: Any
) -> None:
    db = MeterDB(tmp_path)
    db.init(prices=PRICES, otlp_endpoint=receiver.url, capture_content=True)
    meterline.instrument_litellm()
    fake_provider.set_usage(input=1000, output=200, cache_read=300)
    try:
        with tracer.start_as_current_span("handle-request") as span:
            ctx = span.get_span_context()
            litellm.completion(
                model="openai/gpt-4o-mini",
                messages=[{"role": "user", "content": f"key {SECRET}"}],
                api_base=fake_provider.openai_base_url,
                api_key="x",
                usage_metadata={"subscriber_id": "cust-1", "agent": "planner"},
            )
        litellm.completion(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "no span"}],
                           api_base=fake_provider.openai_base_url, api_key="x")  # fmt: skip
        events = db.events()
    finally:
        meterline.uninstrument("litellm")
        meterline.shutdown()
    in_span, outside = events
    assert in_span.trace_id == f"{ctx.trace_id:032x}" and in_span.parent_transaction_id == f"{ctx.span_id:016x}"
    assert outside.trace_id is None and outside.parent_transaction_id is None
    spans = {attrs(s)["meterline.event_id"]: s for s in receiver.spans()}
    assert set(spans) == {in_span.id, outside.id}
    s = spans[in_span.id]
    assert s.trace_id.hex() == in_span.trace_id and s.parent_span_id.hex() == in_span.parent_transaction_id
    assert s.kind == s.SpanKind.SPAN_KIND_CLIENT and s.name == "chat gpt-4o-mini"
    a = attrs(s)
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "gpt-4o-mini" and a["gen_ai.response.model"] == in_span.response_model
    assert a["gen_ai.usage.input_tokens"] == 1300  # semantic conventions: cached input included
    assert a["gen_ai.usage.cache_read.input_tokens"] == 300 and a["gen_ai.usage.output_tokens"] == 200
    assert a["meterline.cost.total"] == "0.0002925" == str(in_span.total_cost.normalize())
    assert a["meterline.subscriber_id"] == "cust-1" and a["gen_ai.agent.name"] == "planner"
    assert a["gen_ai.response.finish_reasons"] == ["stop"]  # OpenAI's own spelling, not meterline's "end"
    assert a["meterline.stop_reason"] == "end"
    assert (a["server.address"], a["server.port"]) == ("127.0.0.1", int(fake_provider.url.rsplit(":", 1)[1]))
    assert "[REDACTED:secret]" in a["gen_ai.input.messages"]
    assert not any(SECRET.encode() in body for body in receiver.raw)
    assert receiver.content_types == ["application/x-protobuf"] * len(receiver.raw)
    o = spans[outside.id]
    assert len(o.trace_id) == 16 and o.parent_span_id == b""


def test_business_ids_win_and_otel_ids_go_to_attributes(tmp_path: Path, tracer: Any) -> None:
    db = MeterDB(tmp_path)
    db.init()
    try:
        with tracer.start_as_current_span("outer") as span, meterline.metadata(trace_id="conv-42"):
            ctx = span.get_span_context()
            recorded = meterline.record(provider="openai", model="m")
            from datetime import datetime, timezone

            from meterline.core.event import UsageEvent
            from meterline.sdk import api as _api

            ev = UsageEvent(provider="openai", model="m", start_time=datetime.now(timezone.utc))
            _api.emit(ev, meterline.sdk.scopes.current_metadata())
        events = db.events()
    finally:
        meterline.shutdown()
    for stamped in events:
        assert stamped.id in (ev.id, recorded)
        assert stamped.trace_id == "conv-42"
        assert stamped.attributes["otel.trace_id"] == f"{ctx.trace_id:032x}"
        assert stamped.parent_transaction_id == f"{ctx.span_id:016x}"


def test_an_unreachable_receiver_is_counted_and_never_loses_the_event(tmp_path: Path) -> None:
    db = MeterDB(tmp_path)
    before = otel.export_stats()["failed"]
    db.init(otlp_endpoint="http://127.0.0.1:9")
    try:
        meterline.record(provider="openai", model="m", input_tokens=3)
        [e] = db.events()
    finally:
        meterline.shutdown()
    assert e.input_tokens == 3
    assert otel.export_stats()["failed"] == before + 1


def test_env_endpoint_and_json_encoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from meterline.core.event import UsageEvent

    monkeypatch.setenv("METERLINE_OTLP_ENDPOINT", "http://127.0.0.1:4318/")
    monkeypatch.setenv("METERLINE_OTLP_HEADERS", "x-tenant=a,authorization=Bearer%20t")
    exp = otel.exporter_from(None)
    assert exp is not None and exp.url == "http://127.0.0.1:4318/v1/traces"
    assert exp.headers == {"x-tenant": "a", "authorization": "Bearer t"}
    with pytest.raises(ValueError, match="otlp_endpoint 'localhost:4318'"):
        otel.OTLPExporter("localhost:4318")
    ev = UsageEvent.from_wire({"provider": "anthropic", "model": "claude", "start_time": "2026-01-01T00:00:00Z",
                               "operation": "embedding", "status": "error", "error_type": "RateLimit"})  # fmt: skip
    doc = json.loads(otel.encode_json([ev]))
    span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    a = {kv["key"]: kv["value"] for kv in span["attributes"]}
    assert a["gen_ai.operation.name"] == {"stringValue": "embeddings"} and a["error.type"] == {
        "stringValue": "RateLimit"
    }
    assert span["status"]["code"] == 2 and len(span["traceId"]) == 32


def test_spans_carry_the_providers_finish_reason_and_the_server_address(
    tmp_path: Path, fake_provider: Any, receiver: Receiver
) -> None:
    """OpenTelemetry GenAI conventions: ``gen_ai.response.finish_reasons`` in the provider's own words (OpenAI
    ``stop``/``length``/``tool_calls``, Anthropic ``end_turn``/``max_tokens``/``tool_use``), ``server.address``
    and ``server.port`` of the host the SDK client called."""
    import anthropic
    import openai

    db = MeterDB(tmp_path)
    db.init(otlp_endpoint=receiver.url)
    meterline.instrument_openai()
    meterline.instrument_anthropic()
    port = int(fake_provider.url.rsplit(":", 1)[1])
    try:
        oai = openai.OpenAI(base_url=fake_provider.openai_base_url, api_key="k", max_retries=0)
        ant = anthropic.Anthropic(base_url=fake_provider.anthropic_base_url, api_key="k", max_retries=0)
        msgs = [{"role": "user", "content": "hi"}]
        tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
        for reply, label in (({}, "end"), ({"stop": "max_tokens"}, "max"), ({"tool_use": True}, "tool")):
            fake_provider.set_reply(**reply)
            kw = {"tools": tools} if label == "tool" else {}
            oai.chat.completions.create(
                model="gpt-4o-mini", messages=msgs, usage_metadata={"agent": f"oai-{label}"}, **kw
            )
            akw = {"tools": [{"name": "f", "input_schema": {"type": "object"}}]} if label == "tool" else {}
            ant.messages.create(model="claude-3-5-haiku-20241022", max_tokens=20, messages=msgs,
                                usage_metadata={"agent": f"ant-{label}"}, **akw)  # fmt: skip
        fake_provider.fail_next(400)
        with pytest.raises(openai.BadRequestError):
            oai.chat.completions.create(model="gpt-4o-mini", messages=msgs, usage_metadata={"agent": "oai-error"})
        meterline.record(provider="anthropic", model="claude-3-5-haiku-20241022", stop_reason="end", agent="manual")
        events = {e.agent: e for e in db.events()}
    finally:
        meterline.uninstrument("openai")
        meterline.uninstrument("anthropic")
        meterline.shutdown()
    spans = {attrs(s)["gen_ai.agent.name"]: attrs(s) for s in receiver.spans()}
    assert set(spans) == set(events)
    finish = {agent: a.get("gen_ai.response.finish_reasons") for agent, a in spans.items()}
    assert finish == {
        "oai-end": ["stop"],
        "oai-max": ["length"],
        "oai-tool": ["tool_calls"],
        "ant-end": ["end_turn"],
        "ant-max": ["max_tokens"],
        "ant-tool": ["tool_use"],
        "oai-error": None,  # the provider gave no finish reason: error.type says what happened
        "manual": ["end_turn"],
    }
    assert spans["oai-error"]["error.type"] and spans["oai-error"]["meterline.stop_reason"] == "error"
    assert {agent: a["meterline.stop_reason"] for agent, a in spans.items()}["ant-end"] == "end"
    for agent, a in spans.items():
        if agent != "manual":  # the SDK clients' base_url (the fake provider), recorded as the event's api_base
            assert (a["server.address"], a["server.port"]) == ("127.0.0.1", port), agent
            assert events[agent].api_base is not None and events[agent].api_base.startswith(fake_provider.url)
    # no api_base known (a manual record): the provider's public host
    assert (spans["manual"]["server.address"], spans["manual"]["server.port"]) == ("api.anthropic.com", 443)


def test_server_address_from_api_base_and_finish_reasons_per_provider() -> None:
    from meterline.core.event import UsageEvent

    def ev(**kw: Any) -> UsageEvent:
        return UsageEvent.from_wire({"model": "m", "start_time": "2026-01-01T00:00:00Z", **kw})

    assert otel.server_address(ev(provider="openai", api_base="https://user:pw@gw.example.com/v1")) == (
        "gw.example.com",
        443,
    )
    assert otel.server_address(ev(provider="openai", api_base="http://[::1]:8080/v1")) == ("::1", 8080)
    assert otel.server_address(ev(provider="openai", api_base="http://proxy.internal/v1")) == ("proxy.internal", 80)
    assert otel.server_address(ev(provider="openai")) == ("api.openai.com", 443)
    assert otel.server_address(ev(provider="azure")) is None  # the host is the customer's resource
    assert otel.server_address(ev(provider="openai", api_base="http://h:99999/")) is None  # not a URL: no guess
    cases = {
        ("bedrock", "anthropic.claude-3-haiku", "content_filter"): "content_filtered",
        ("vertex_ai", "claude-3-5-sonnet@20240620", "end"): "end_turn",
        ("vertex_ai", "gemini-2.0-flash", "max_tokens"): "MAX_TOKENS",
        ("groq", "llama-3.1-8b", "tool_use"): "tool_calls",
        ("anthropic", "claude", "cancelled"): None,
    }
    for (provider, model, stop), expected in cases.items():
        assert otel.finish_reason(ev(provider=provider, model=model, stop_reason=stop)) == expected, provider
