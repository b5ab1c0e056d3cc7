"""OTLP/HTTP traces (``POST /v1/traces``, protobuf or JSON) → one event per gen_ai provider-call span.

Which spans count: those with a gen_ai operation that is a provider call (``chat``, ``generate_content``,
``text_completion``, ``embeddings``; older instrumentations without ``gen_ai.operation.name`` but with
``gen_ai.system`` and token usage too). Agent, tool and retrieval spans, and every span that is not gen_ai,
are ignored (their child spans carry the usage). A gen_ai call span without a model is rejected and
reported in ``partial_success``.

Attribute names, current and older: ``gen_ai.provider.name`` | ``gen_ai.system``;
``gen_ai.usage.input_tokens`` | ``gen_ai.usage.prompt_tokens`` (INCLUDES cached input: the cache counts are
taken out for schema v1); ``gen_ai.usage.output_tokens`` | ``gen_ai.usage.completion_tokens``;
``gen_ai.usage.cache_read.input_tokens`` | ``gen_ai.usage.cache_read_input_tokens``;
``gen_ai.usage.cache_creation.input_tokens`` | ``gen_ai.usage.cache_creation_input_tokens``;
``gen_ai.usage.reasoning.output_tokens`` | ``gen_ai.usage.reasoning_tokens``. Span attributes
``meterline.<field>`` (e.g. ``meterline.subscriber_id``) set attribution fields.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from meterline.core.event import EventValidationError, UsageEvent
from meterline.core.metadata import MetadataError, normalise
from meterline.interop.ingest import event_id, infer_provider

CLIENT = "otlp"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_OPERATIONS = {
    "chat": "chat",
    "generate_content": "chat",
    "text_completion": "completion",
    "completion": "completion",
    "embeddings": "embedding",
    "embedding": "embedding",
}
_NOT_CALLS = frozenset({"create_agent", "invoke_agent", "execute_tool", "retrieval", "invoke_workflow"})
_FINISH = {
    "stop": "end",
    "end_turn": "end",
    "length": "max_tokens",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "tool_calls": "tool_use",
    "tool_use": "tool_use",
    "function_call": "tool_use",
    "content_filter": "content_filter",
    "error": "error",
}
_STATUS_ERROR = 2


class OtlpError(ValueError):
    """The request itself is unreadable (the whole export is refused with 400)."""


@dataclasses.dataclass(slots=True)
class Span:
    trace_id: str
    span_id: str
    name: str
    start_ns: int
    end_ns: int
    status_code: int
    status_message: str
    attributes: dict[str, Any]
    resource: dict[str, Any]


@dataclasses.dataclass(slots=True)
class Converted:
    events: list[UsageEvent]
    rejected: int
    ignored: int
    errors: list[str]


def convert(spans: Iterator[Span]) -> Converted:
    out = Converted([], 0, 0, [])
    for span in spans:
        try:
            event = to_event(span)
        except EventValidationError as exc:
            out.rejected += 1
            if len(out.errors) < 5:
                out.errors.append(f"span {span.span_id} ({span.name!r}): {exc.field}: {exc.reason}")
            continue
        if event is None:
            out.ignored += 1
        else:
            out.events.append(event)
    return out


def _int(attrs: Mapping[str, Any], *names: str) -> int | None:
    for n in names:
        v = attrs.get(n)
        if v is None:
            continue
        if isinstance(v, str) and v.strip().isdigit():
            v = int(v)
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise EventValidationError(n, f"must be a non-negative integer; got {v!r}")
        return v
    return None


def to_event(span: Span) -> UsageEvent | None:
    """The event for a gen_ai provider-call span; None for any other span."""
    a = span.attributes
    op_name = a.get("gen_ai.operation.name")
    system = a.get("gen_ai.provider.name") or a.get("gen_ai.system")
    if op_name is None and system is None:
        return None  # not a gen_ai span
    if op_name in _NOT_CALLS:
        return None
    inp = _int(a, "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
    out = _int(a, "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
    operation = _OPERATIONS.get(str(op_name)) if op_name is not None else None
    if operation is None:
        if inp is None and out is None:
            return None  # an unknown gen_ai operation without usage: not a provider call
        operation = "other" if op_name is not None else "chat"
    model = a.get("gen_ai.request.model") or a.get("gen_ai.response.model")
    if not isinstance(model, str) or not model:
        raise EventValidationError("gen_ai.request.model", "required on a gen_ai call span")
    read = _int(a, "gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens") or 0
    write = _int(a, "gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_creation_input_tokens") or 0
    reasoning = _int(a, "gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens") or 0
    out = out or 0
    meta_fields = {k[len("meterline.") :]: v for k, v in a.items() if k.startswith("meterline.")}
    env = span.resource.get("deployment.environment.name") or span.resource.get("deployment.environment")
    if env and "environment" not in meta_fields:
        meta_fields["environment"] = env
    agent = a.get("gen_ai.agent.name")
    if agent and "agent" not in meta_fields:
        meta_fields["agent"] = agent
    try:
        meta = normalise(meta_fields)
    except MetadataError as exc:
        raise EventValidationError(exc.field, exc.reason) from None
    start = _EPOCH + timedelta(microseconds=span.start_ns // 1000)
    end = _EPOCH + timedelta(microseconds=span.end_ns // 1000) if span.end_ns else None
    error_type = a.get("error.type")
    failed = span.status_code == _STATUS_ERROR or error_type is not None
    finish = a.get("gen_ai.response.finish_reasons")
    first = finish[0] if isinstance(finish, (list, tuple)) and finish else finish
    event = UsageEvent(
        id=event_id(CLIENT, f"{span.trace_id}:{span.span_id}"),
        start_time=start,
        end_time=end,
        provider=infer_provider(system, model),
        model=model,
        response_model=str(a["gen_ai.response.model"]) if a.get("gen_ai.response.model") else None,
        operation=operation,
        status="error" if failed else "success",
        stop_reason="error" if failed else _FINISH.get(str(first)) if first is not None else None,
        error_type=str(error_type)[:1024] if error_type is not None else None,
        error_message=span.status_message[:2000] or None if failed else None,
        input_tokens=max((inp or 0) - read - write, 0),
        cache_read_tokens=read,
        cache_write_tokens=write,
        output_tokens=out,
        reasoning_tokens=min(reasoning, out),
        trace_id=span.trace_id or None,
        integration=CLIENT,
        **meta,
    )
    extras = {"otel.span_id": span.span_id}
    for key in ("gen_ai.response.id", "gen_ai.conversation.id", "server.address"):
        if isinstance(a.get(key), (str, int)):
            extras[key] = str(a[key])[:1024]
    service = span.resource.get("service.name")
    if isinstance(service, str):
        extras["service.name"] = service[:1024]
    event.attributes = {**extras, **event.attributes}
    event.finalize_totals()
    return event


# -- decoding ------------------------------------------------------------------------------------
def spans_from_json(body: bytes) -> Iterator[Span]:
    """Spans of an OTLP/JSON ExportTraceServiceRequest (lowerCamelCase keys, hex ids, int64 as strings)."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise OtlpError(f"body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise OtlpError("body must be an ExportTraceServiceRequest object")
    return _json_spans(doc)


def _json_spans(doc: Mapping[str, Any]) -> Iterator[Span]:
    for rs in doc.get("resourceSpans") or doc.get("resource_spans") or []:
        resource = _json_attrs((rs.get("resource") or {}).get("attributes"))
        for ss in rs.get("scopeSpans") or rs.get("scope_spans") or []:
            for s in ss.get("spans") or []:
                status = s.get("status") or {}
                code = status.get("code", 0)
                yield Span(
                    trace_id=str(s.get("traceId") or s.get("trace_id") or "").lower(),
                    span_id=str(s.get("spanId") or s.get("span_id") or "").lower(),
                    name=str(s.get("name") or ""),
                    start_ns=int(s.get("startTimeUnixNano") or s.get("start_time_unix_nano") or 0),
                    end_ns=int(s.get("endTimeUnixNano") or s.get("end_time_unix_nano") or 0),
                    status_code=2 if code in (2, "STATUS_CODE_ERROR") else 0,
                    status_message=str(status.get("message") or ""),
                    attributes=_json_attrs(s.get("attributes")),
                    resource=resource,
                )


def _json_value(v: Mapping[str, Any]) -> Any:
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "arrayValue" in v:
        return [_json_value(x) for x in (v["arrayValue"].get("values") or [])]
    return None


def _json_attrs(items: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in items or []:
        if isinstance(kv, Mapping) and "key" in kv:
            out[str(kv["key"])] = _json_value(kv.get("value") or {})
    return out


def spans_from_protobuf(body: bytes) -> Iterator[Span]:
    """Spans of a protobuf ExportTraceServiceRequest (needs ``meterline[interop]``: opentelemetry-proto)."""
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    req = ExportTraceServiceRequest()
    try:
        req.ParseFromString(body)
    except DecodeError as exc:
        raise OtlpError(f"body is not a protobuf ExportTraceServiceRequest: {exc}") from None
    return _pb_spans(req)


def _pb_spans(req: Any) -> Iterator[Span]:
    for rs in req.resource_spans:
        resource = _pb_attrs(rs.resource.attributes)
        for ss in rs.scope_spans:
            for s in ss.spans:
                yield Span(
                    trace_id=s.trace_id.hex(),
                    span_id=s.span_id.hex(),
                    name=s.name,
                    start_ns=s.start_time_unix_nano,
                    end_ns=s.end_time_unix_nano,
                    status_code=int(s.status.code),
                    status_message=s.status.message,
                    attributes=_pb_attrs(s.attributes),
                    resource=resource,
                )


def _pb_value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_pb_value(x) for x in v.array_value.values]
    if kind in ("kvlist_value", "bytes_value") or kind is None:
        return None
    return getattr(v, kind)


def _pb_attrs(items: Any) -> dict[str, Any]:
    return {kv.key: _pb_value(kv.value) for kv in items}


def protobuf_available() -> bool:
    try:
        import opentelemetry.proto.collector.trace.v1.trace_service_pb2  # noqa: F401
    except ImportError:
        return False
    return True


def response_protobuf(rejected: int, message: str) -> bytes:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    resp = ExportTraceServiceResponse()
    if rejected or message:
        resp.partial_success.rejected_spans = rejected
        resp.partial_success.error_message = message
    return bytes(resp.SerializeToString())


def response_json(rejected: int, message: str) -> dict[str, Any]:
    if not rejected and not message:
        return {}
    return {"partialSuccess": {"rejectedSpans": str(rejected), "errorMessage": message}}
