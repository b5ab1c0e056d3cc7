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
    assert a["gen_ai.response.finish_reasons"] == ["end"]
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
