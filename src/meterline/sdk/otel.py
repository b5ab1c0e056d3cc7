"""OpenTelemetry: trace ids on events, and each metered call exported as a gen_ai span over OTLP/HTTP.

Trace correlation (caller's thread, only when the app has imported ``opentelemetry``): with an active,
valid span, an event without a ``trace_id`` gets the span's trace id (32 hex digits) and, without a
``parent_transaction_id``, the span's id (16 hex digits), so the collector's trace view and the user's
tracing backend show the same ids. When business metadata already set those fields, the OTel ids go to
``attributes["otel.trace_id"]`` / ``attributes["otel.span_id"]`` instead.

Export (recorder's thread): :class:`ExportingSink` wraps the destination's sink; after a batch is written,
each event becomes one span of kind CLIENT, child of the span that was active at call time, named
``"{gen_ai.operation.name} {gen_ai.request.model}"`` with the GenAI semantic conventions' attributes
(``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.request.model``, ``gen_ai.response.model``,
``gen_ai.usage.input_tokens`` (all input, cached included, as the conventions define it),
``gen_ai.usage.output_tokens``, ``gen_ai.usage.cache_read.input_tokens``,
``gen_ai.usage.cache_creation.input_tokens``, ``gen_ai.response.finish_reasons``, ``server.address``,
``server.port``, ``error.type``) plus ``meterline.cost.*`` (decimal strings), ``meterline.stop_reason`` and
the attribution fields as ``meterline.*``. Captured content,
already redacted, goes in ``gen_ai.input.messages`` / ``gen_ai.output.messages``. Spans are encoded as OTLP
protobuf (needs ``opentelemetry-proto``: ``pip install meterline[otel]``), else as OTLP JSON. An export
failure is logged and counted (``meterline.sdk.otel.export_stats()``), never retried into the billing path.

``server.address`` / ``server.port``: the host and port of the event's ``api_base`` when the call recorded it
(LiteLLM's ``api_base``, the gateway's deployment, the OpenAI and Anthropic clients' ``base_url``), else the
provider's public API host on 443 (:data:`DEFAULT_HOSTS`); neither when that depends on an account or region
(Azure, Vertex AI, Bedrock without ``api_base``).

``gen_ai.response.finish_reasons`` carries the provider's own spelling, as the conventions ask (``stop``,
``length``, ``tool_calls`` for OpenAI-style APIs; ``end_turn``, ``max_tokens``, ``tool_use`` for Anthropic), not
meterline's normalised ``stop_reason``. Decision: the event keeps only the normalised value (schema v1 is
unchanged and stored events carry no extra attribute), and the exporter spells it back for the upstream
provider (:func:`finish_reason`): OpenAI's spelling for OpenAI and every OpenAI-compatible provider (also what
LiteLLM reports), Anthropic's for Anthropic and for Claude models on Vertex AI, Bedrock's Converse spelling for
Bedrock, Gemini's for Gemini and other Vertex AI models. Spelling back cannot tell apart values that one
normalised reason merges (Anthropic's ``pause_turn`` is sent as ``end_turn``; a refusal, a content filter and a
guardrail each as the provider's content-filter value). A call that failed or was cancelled got no finish
reason from the provider: the attribute is left out (``error.type`` and ``meterline.stop_reason`` say why).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

from meterline.core.event import UsageEvent, format_cost

logger = logging.getLogger("meterline")

_HEX = frozenset("0123456789abcdef")
OPERATION_NAMES = {
    "chat": "chat",
    "completion": "text_completion",
    "embedding": "embeddings",
    "image": "generate_content",
    "audio": "generate_content",
    "rerank": "rerank",
    "other": "other",
}
PROVIDER_NAMES = {
    "openai": "openai",
    "anthropic": "anthropic",
    "bedrock": "aws.bedrock",
    "azure": "azure.ai.openai",
    "vertex_ai": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "mistral": "mistral_ai",
    "groq": "groq",
    "cohere": "cohere",
    "deepseek": "deepseek",
    "xai": "x_ai",
    "perplexity": "perplexity",
}
# meterline's stop_reason -> the provider's own finish reason (see the module docstring)
_OPENAI_FINISH = {
    "end": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "content_filter": "content_filter",
}
_ANTHROPIC_FINISH = {
    "end": "end_turn",
    "stop_sequence": "stop_sequence",
    "max_tokens": "max_tokens",
    "tool_use": "tool_use",
    "content_filter": "refusal",
}
_BEDROCK_FINISH = {**_ANTHROPIC_FINISH, "content_filter": "content_filtered"}  # Converse stopReason
_GEMINI_FINISH = {
    "end": "STOP",
    "stop_sequence": "STOP",
    "max_tokens": "MAX_TOKENS",
    "tool_use": "STOP",
    "content_filter": "SAFETY",
}
# provider -> its public API host (port 443); providers whose host depends on the account or region are absent
DEFAULT_HOSTS = {
    "openai": "api.openai.com",
    "anthropic": "api.anthropic.com",
    "gemini": "generativelanguage.googleapis.com",
    "mistral": "api.mistral.ai",
    "groq": "api.groq.com",
    "cohere": "api.cohere.com",
    "deepseek": "api.deepseek.com",
    "xai": "api.x.ai",
    "perplexity": "api.perplexity.ai",
}
_ATTRIBUTION = (
    "agent",
    "task_type",
    "subscriber_id",
    "organization_id",
    "subscription_id",
    "product_id",
    "environment",
    "trace_name",
    "team_id",
    "end_user_id",
)


# -- caller's thread: trace correlation -------------------------------------------------------------
def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) in hex of the active OpenTelemetry span, or None."""
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


def stamp_ids(event: UsageEvent, ids: tuple[str, str] | None) -> None:
    """Put (trace id, span id) read by :func:`current_ids` on the event (on any thread)."""
    if ids is None:
        return
    trace_id, span_id = ids
    if event.trace_id is None and event.parent_transaction_id is None:
        event.trace_id, event.parent_transaction_id = trace_id, span_id
        return
    if event.trace_id is None:
        event.trace_id = trace_id
    elif event.trace_id != trace_id:
        event.attributes = {**event.attributes, "otel.trace_id": trace_id}
    if event.parent_transaction_id is None:
        event.parent_transaction_id = span_id
    elif event.parent_transaction_id != span_id:
        event.attributes = {**event.attributes, "otel.span_id": span_id}


# -- recorder's thread: spans ---------------------------------------------------------------------
def _is_hex(value: Any, length: int) -> bool:
    return isinstance(value, str) and len(value) == length and set(value) <= _HEX and value != "0" * length


def span_ids(event: UsageEvent) -> tuple[str, str, str | None]:
    """(trace id, span id, parent span id) in hex. The trace id is the OTel one when the call ran in a
    span, else derived from ``trace_id`` (so all calls of one meterline trace share one OTel trace), else
    from the event id; the span id is derived from the event id (a re-export is the same span)."""
    otel_trace = event.attributes.get("otel.trace_id")
    otel_span = event.attributes.get("otel.span_id")
    if _is_hex(otel_trace, 32):
        trace = str(otel_trace)
    elif _is_hex(event.trace_id, 32):
        trace = str(event.trace_id)
    else:
        trace = hashlib.sha256(f"meterline-trace:{event.trace_id or event.id}".encode()).hexdigest()[:32]
    parent = (
        str(otel_span)
        if _is_hex(otel_span, 16)
        else str(event.parent_transaction_id)
        if _is_hex(event.parent_transaction_id, 16)
        else None
    )
    span = hashlib.sha256(f"meterline-span:{event.id}".encode()).hexdigest()[:16]
    return trace, span, parent


def finish_reason(event: UsageEvent) -> str | None:
    """The provider's own spelling of the event's ``stop_reason`` (None for a failed or cancelled call)."""
    provider = event.provider
    if provider == "anthropic" or (provider == "vertex_ai" and "claude" in event.model.lower()):
        table = _ANTHROPIC_FINISH
    elif provider == "bedrock":
        table = _BEDROCK_FINISH
    elif provider in ("gemini", "vertex_ai"):
        table = _GEMINI_FINISH
    else:
        table = _OPENAI_FINISH
    return table.get(event.stop_reason or "")


def server_address(event: UsageEvent) -> tuple[str, int] | None:
    """(host, port) the call went to: from ``api_base`` when known, else the provider's public host."""
    base = (event.api_base or "").strip()
    if base:
        try:
            url = urllib.parse.urlsplit(base if "://" in base else f"https://{base}")
            host, port = url.hostname, url.port
        except ValueError:  # an api_base that is not a URL (a bad port): say nothing rather than guess
            return None
        if not host:
            return None
        return host, port or (80 if url.scheme.lower() in ("http", "ws") else 443)
    default = DEFAULT_HOSTS.get(event.provider)
    return (default, 443) if default else None


def span_attributes(event: UsageEvent) -> dict[str, Any]:
    """The span's attributes (GenAI semantic conventions + ``meterline.*``)."""
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": OPERATION_NAMES.get(event.operation, event.operation),
        "gen_ai.provider.name": PROVIDER_NAMES.get(event.provider, event.provider),
        "gen_ai.request.model": event.model,
        "gen_ai.usage.input_tokens": event.input_tokens + event.cache_read_tokens + event.cache_write_tokens,
        "gen_ai.usage.output_tokens": event.output_tokens,
        "meterline.event_id": event.id,
        "meterline.integration": event.integration,
        "meterline.status": event.status,
        "meterline.usage_source": event.usage_source,
    }
    if event.response_model:
        attrs["gen_ai.response.model"] = event.response_model
    if event.cache_read_tokens:
        attrs["gen_ai.usage.cache_read.input_tokens"] = event.cache_read_tokens
    if event.cache_write_tokens:
        attrs["gen_ai.usage.cache_creation.input_tokens"] = event.cache_write_tokens
    if event.reasoning_tokens:
        attrs["meterline.core.usage.reasoning_tokens"] = event.reasoning_tokens
    finish = finish_reason(event)
    if finish is not None:
        attrs["gen_ai.response.finish_reasons"] = [finish]
    if event.stop_reason:
        attrs["meterline.stop_reason"] = event.stop_reason
    server = server_address(event)
    if server is not None:
        attrs["server.address"], attrs["server.port"] = server
    if event.agent:
        attrs["gen_ai.agent.name"] = event.agent
    if event.status == "error":
        attrs["error.type"] = event.error_type or "error"
    if event.stream:
        attrs["meterline.stream"] = True
    if event.time_to_first_token_ms is not None:
        attrs["meterline.time_to_first_token_ms"] = event.time_to_first_token_ms
    for name in ("input_cost", "output_cost", "cache_read_cost", "cache_write_cost", "total_cost"):
        value = getattr(event, name)
        if value is not None:
            attrs[f"meterline.cost.{name.removesuffix('_cost')}"] = format_cost(value)
    if event.total_cost is not None:
        attrs["meterline.cost.currency"] = event.currency
    if event.pricing_source:
        attrs["meterline.pricing_source"] = event.pricing_source
    for name in _ATTRIBUTION:
        value = getattr(event, name)
        if value is not None:
            attrs[f"meterline.{name}"] = value
    if event.input_messages is not None:
        attrs["gen_ai.input.messages"] = json.dumps(event.input_messages, ensure_ascii=False, default=str)
    if event.output_text is not None or event.output_tool_calls is not None:
        parts: list[dict[str, Any]] = []
        if event.output_text is not None:
            parts.append({"type": "text", "content": event.output_text})
        for call in event.output_tool_calls or ():
            parts.append({"type": "tool_call", **(call if isinstance(call, dict) else {"value": call})})
        attrs["gen_ai.output.messages"] = json.dumps([{"role": "assistant", "parts": parts}], ensure_ascii=False)
    return attrs


def _nanos(dt: Any) -> int:
    from meterline.core.timeutil import to_micros

    return int(to_micros(dt)) * 1000


def _times(event: UsageEvent) -> tuple[int, int]:
    start = _nanos(event.start_time)
    end = _nanos(event.end_time) if event.end_time is not None else start + int((event.duration_ms or 0) * 1e6)
    return start, end


def _resource_attrs() -> dict[str, Any]:
    from meterline._version import __version__

    return {
        "service.name": os.environ.get("OTEL_SERVICE_NAME") or "meterline",
        "telemetry.sdk.name": "meterline",
        "telemetry.sdk.version": __version__,
    }


def encode_protobuf(events: Sequence[UsageEvent]) -> bytes:
    """An ``ExportTraceServiceRequest`` (OTLP protobuf) with one span per event."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

    from meterline._version import __version__

    def value(v: Any) -> Any:
        if isinstance(v, bool):
            return AnyValue(bool_value=v)
        if isinstance(v, int):
            return AnyValue(int_value=v)
        if isinstance(v, float):
            return AnyValue(double_value=v)
        if isinstance(v, list):
            return AnyValue(array_value=ArrayValue(values=[value(x) for x in v]))
        return AnyValue(string_value=str(v))

    def kvs(attrs: Mapping[str, Any]) -> list[Any]:
        return [KeyValue(key=k, value=value(v)) for k, v in attrs.items()]

    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.extend(kvs(_resource_attrs()))
    ss = rs.scope_spans.add()
    ss.scope.name = "meterline"
    ss.scope.version = __version__
    for event in events:
        trace, span, parent = span_ids(event)
        start, end = _times(event)
        attrs = span_attributes(event)
        s = Span(
            trace_id=bytes.fromhex(trace),
            span_id=bytes.fromhex(span),
            parent_span_id=bytes.fromhex(parent) if parent else b"",
            name=f"{attrs['gen_ai.operation.name']} {event.model}",
            kind=Span.SpanKind.SPAN_KIND_CLIENT,
            start_time_unix_nano=start,
            end_time_unix_nano=end,
            attributes=kvs(attrs),
        )
        if event.status == "error":
            s.status.CopyFrom(Status(code=Status.StatusCode.STATUS_CODE_ERROR, message=event.error_message or ""))
        ss.spans.append(s)
    data: bytes = request.SerializeToString()
    return data


def encode_json(events: Sequence[UsageEvent]) -> bytes:
    """The same request in the OTLP/HTTP JSON encoding (no protobuf needed)."""

    def value(v: Any) -> dict[str, Any]:
        if isinstance(v, bool):
            return {"boolValue": v}
        if isinstance(v, int):
            return {"intValue": str(v)}
        if isinstance(v, float):
            return {"doubleValue": v}
        if isinstance(v, list):
            return {"arrayValue": {"values": [value(x) for x in v]}}
        return {"stringValue": str(v)}

    def kvs(attrs: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [{"key": k, "value": value(v)} for k, v in attrs.items()]

    spans = []
    for event in events:
        trace, span, parent = span_ids(event)
        start, end = _times(event)
        attrs = span_attributes(event)
        doc: dict[str, Any] = {
            "traceId": trace,
            "spanId": span,
            "name": f"{attrs['gen_ai.operation.name']} {event.model}",
            "kind": 3,
            "startTimeUnixNano": str(start),
            "endTimeUnixNano": str(end),
            "attributes": kvs(attrs),
        }
        if parent:
            doc["parentSpanId"] = parent
        if event.status == "error":
            doc["status"] = {"code": 2, "message": event.error_message or ""}
        spans.append(doc)
    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": kvs(_resource_attrs())},
                "scopeSpans": [{"scope": {"name": "meterline"}, "spans": spans}],
            }
        ]
    }
    return json.dumps(body, separators=(",", ":")).encode()


class OTLPExporter:
    """POSTs spans to ``{endpoint}/v1/traces`` (an endpoint already ending in ``/v1/traces`` is kept)."""

    def __init__(self, endpoint: str, headers: Mapping[str, str] | None = None, timeout: float = 5.0) -> None:
        endpoint = endpoint.strip().rstrip("/")
        if not endpoint.lower().startswith(("http://", "https://")):
            raise ValueError(f"otlp_endpoint {endpoint!r}: an http(s):// URL of an OTLP/HTTP receiver")
        self.url = endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.exported = 0
        self.failed = 0
        try:
            import opentelemetry.proto.collector.trace.v1.trace_service_pb2  # noqa: F401

            self.protobuf = True
        except ImportError:
            self.protobuf = False

    def export(self, events: Sequence[UsageEvent]) -> bool:
        if not events:
            return True
        if self.protobuf:
            body, ctype = encode_protobuf(events), "application/x-protobuf"
        else:
            body, ctype = encode_json(events), "application/json"
        req = urllib.request.Request(
            self.url, data=body, method="POST", headers={**self.headers, "Content-Type": ctype}
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                resp.read()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            self.failed += len(events)
            logger.warning("meterline: OTLP export of %d spans to %s failed: %s", len(events), self.url, exc)
            return False
        self.exported += len(events)
        return True


class ExportingSink:
    """The destination's sink, then an OTLP export of what it accepted (recorder's thread)."""

    def __init__(self, inner: Any, exporter: OTLPExporter) -> None:
        self.inner = inner
        self.exporter = exporter
        _exporters.append(exporter)

    @property
    def description(self) -> str:
        return str(getattr(self.inner, "description", type(self.inner).__name__))

    @property
    def last_rejections(self) -> list[Any]:
        """The destination's per-event rejections of the last write (the delivery dead-letters them)."""
        return list(getattr(self.inner, "last_rejections", None) or [])

    def write(self, events: Sequence[UsageEvent]) -> int:
        rejected = int(self.inner.write(events))
        try:
            self.exporter.export(events)
        except Exception as exc:  # noqa: BLE001 - observability never breaks the billing path
            from meterline.core import errors as _errors

            self.exporter.failed += len(events)
            _errors.report("otlp export", exc, reraise=False)
        return rejected

    def close(self) -> None:
        self.inner.close()


_exporters: list[OTLPExporter] = []


def export_stats() -> dict[str, int]:
    """Spans exported and failed since start, over every exporter."""
    return {"exported": sum(e.exported for e in _exporters), "failed": sum(e.failed for e in _exporters)}


def parse_headers(text: str | None) -> dict[str, str]:
    """``k1=v1,k2=v2`` (the OTEL_EXPORTER_OTLP_HEADERS form)."""
    out: dict[str, str] = {}
    for part in (text or "").split(","):
        if "=" in part:
            k, _, v = part.partition("=")
            out[urllib.parse.unquote(k.strip())] = urllib.parse.unquote(v.strip())
    return out


def exporter_from(endpoint: str | None, headers: Mapping[str, str] | None = None) -> OTLPExporter | None:
    url = endpoint if endpoint is not None else os.environ.get("METERLINE_OTLP_ENDPOINT", "")
    if not url or not url.strip():
        return None
    hdrs = dict(headers) if headers is not None else parse_headers(os.environ.get("METERLINE_OTLP_HEADERS"))
    return OTLPExporter(url, hdrs)
