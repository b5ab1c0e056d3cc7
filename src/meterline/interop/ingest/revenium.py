"""Revenium meter API (``POST /meter/v2/ai/completions``, revenium-python-sdk middlewares) → schema v1.

The body is camelCase (see shared notes): transactionId, model, provider, inputTokenCount, outputTokenCount,
totalTokenCount, cacheReadTokenCount, cacheCreationTokenCount, reasoningTokenCount, requestTime,
responseTime, completionStartTime, requestDuration (ms), timeToFirstToken, isStreamed, stopReason,
operationType, costs, and the same attribution fields as ``meterline.metadata`` (subscriber{id,email,
credential{name,value}}, organizationName, productName, taskType, agent, traceId, …).

Token counts: Revenium's platform treats ``inputTokenCount`` as gross (cache reads inside it) for the
OpenAI-shaped providers OPENAI, GROQ, XAI, AZURE, GEMINI and subtracts ``cacheReadTokenCount`` itself; the
middlewares already send it net for every other provider (Anthropic, LiteLLM rows). The same rule here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import timezone
from typing import Any

from meterline.core.event import EventValidationError, UsageEvent, format_time
from meterline.core.metadata import MetadataError, normalise
from meterline.interop.ingest import _fields as ingest_fields
from meterline.interop.ingest import event_id, infer_provider

CLIENT = "revenium"
_GROSS_INPUT = frozenset({"openai", "groq", "xai", "azure", "gemini"})
_STOP = {
    "END": ("success", "end"),
    "END_SEQUENCE": ("success", "stop_sequence"),
    "TOKEN_LIMIT": ("success", "max_tokens"),
    "COMPLETION_LIMIT": ("success", "max_tokens"),
    "COST_LIMIT": ("error", "error"),
    "TIMEOUT": ("error", "error"),
    "ERROR": ("error", "error"),
    "CANCELLED": ("cancelled", "cancelled"),
}
_OPERATION = {
    "CHAT": "chat",
    "COMPLETION": "completion",
    "TEXT_COMPLETION": "completion",
    "EMBED": "embedding",
    "EMBEDDING": "embedding",
    "IMAGE": "image",
    "AUDIO": "audio",
    "RERANK": "rerank",
}
# attribution fields handed to meterline.metadata (which already reads Revenium's spellings)
_METADATA_KEYS = (
    "traceId",
    "taskType",
    "agent",
    "organizationName",
    "organizationId",
    "productName",
    "productId",
    "subscriptionId",
    "subscriber",
    "environment",
    "region",
    "credentialAlias",
    "traceType",
    "traceName",
    "parentTransactionId",
    "transactionName",
    "retryNumber",
    "responseQualityScore",
)
_KNOWN = frozenset(
    {
        *_METADATA_KEYS,
        "transactionId",
        "model",
        "provider",
        "inputTokenCount",
        "outputTokenCount",
        "totalTokenCount",
        "cacheReadTokenCount",
        "cacheCreationTokenCount",
        "reasoningTokenCount",
        "requestTime",
        "responseTime",
        "completionStartTime",
        "requestDuration",
        "timeToFirstToken",
        "isStreamed",
        "stopReason",
        "operationType",
        "costType",
        "totalCost",
        "inputTokenCost",
        "outputTokenCost",
        "cacheCreationTokenCost",
        "cacheReadTokenCost",
        "errorReason",
    }
)


def to_event(body: Any) -> UsageEvent:
    """One Revenium completion → one event; :class:`EventValidationError` names the camelCase field."""
    if not isinstance(body, Mapping):
        raise EventValidationError("body", "must be a JSON object")
    tid = ingest_fields.text(body, "transactionId", required=True)
    model = ingest_fields.text(body, "model", required=True)
    assert tid is not None and model is not None
    provider = infer_provider(body.get("provider"), model)
    inp = ingest_fields.count(body, "inputTokenCount")
    out = ingest_fields.count(body, "outputTokenCount")
    if inp is None:
        raise EventValidationError("inputTokenCount", "required")
    if out is None:
        raise EventValidationError("outputTokenCount", "required")
    cache_read = ingest_fields.count(body, "cacheReadTokenCount") or 0
    cache_write = ingest_fields.count(body, "cacheCreationTokenCount") or 0
    reasoning = ingest_fields.count(body, "reasoningTokenCount") or 0
    if provider in _GROSS_INPUT:
        inp = max(inp - cache_read, 0)
    if body.get("requestTime") is None:
        raise EventValidationError("requestTime", "required")
    start = ingest_fields.time(body["requestTime"], "requestTime")
    end = ingest_fields.time(body["responseTime"], "responseTime") if body.get("responseTime") is not None else None
    stop = str(body.get("stopReason") or "END").upper()
    if stop not in _STOP:
        raise EventValidationError("stopReason", f"must be one of {', '.join(_STOP)}; got {body.get('stopReason')!r}")
    status, stop_reason = _STOP[stop]
    streamed = body.get("isStreamed")
    if streamed is not None and not isinstance(streamed, bool):
        raise EventValidationError("isStreamed", f"must be true or false; got {streamed!r}")
    try:
        meta = normalise({k: body[k] for k in _METADATA_KEYS if body.get(k) is not None})
    except MetadataError as exc:
        raise EventValidationError(exc.field, exc.reason) from None
    extras = ingest_fields.scalar_attributes({k: v for k, v in body.items() if k not in _KNOWN}, "revenium.")
    event = UsageEvent(
        id=event_id(CLIENT, tid),
        start_time=start,
        end_time=end,
        provider=provider,
        model=model,
        operation=_OPERATION.get(str(body.get("operationType") or "CHAT").upper(), "other"),
        stream=bool(streamed),
        status=status,
        stop_reason=stop_reason,
        error_message=(ingest_fields.text(body, "errorReason") or "")[:2000] or None,
        input_tokens=inp,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        output_tokens=out,
        reasoning_tokens=min(reasoning, out),
        integration=CLIENT,
        **meta,
    )
    if extras:
        event.attributes = {**extras, **event.attributes}
    duration = body.get("requestDuration")
    if isinstance(duration, (int, float)) and not isinstance(duration, bool) and duration >= 0:
        event.duration_ms = float(duration)
    ttft = body.get("timeToFirstToken")
    if isinstance(ttft, (int, float)) and not isinstance(ttft, bool) and ttft > 0:
        event.time_to_first_token_ms = float(ttft)
    _costs(event, body)
    event.finalize_totals()
    return event


def _costs(event: UsageEvent, body: Mapping[str, Any]) -> None:
    """The client's own cost when it sent one (a zero total for a call with tokens counts as not sent:
    LiteLLM reports 0.0 for models it cannot price); meterline prices the rest at ingest."""
    total = ingest_fields.money(body.get("totalCost"), "totalCost")
    tokens = event.input_tokens + event.cache_read_tokens + event.cache_write_tokens + event.output_tokens
    if total is None or (total == 0 and tokens > 0):
        return
    event.total_cost = total
    event.input_cost = ingest_fields.money(body.get("inputTokenCost"), "inputTokenCost")
    event.output_cost = ingest_fields.money(body.get("outputTokenCost"), "outputTokenCost")
    event.cache_write_cost = ingest_fields.money(body.get("cacheCreationTokenCost"), "cacheCreationTokenCost")
    event.cache_read_cost = ingest_fields.money(body.get("cacheReadTokenCost"), "cacheReadTokenCost")
    event.pricing_source = CLIENT


def response_resource(event: UsageEvent, transaction_id: str) -> dict[str, Any]:
    """The MeteringResponseResource the SDK parses: id, label, resourceType, signature (+ created/updated)."""
    now = format_time(event.start_time.astimezone(timezone.utc))
    return {
        "id": event.id,
        "label": transaction_id,
        "resourceType": "AI_COMPLETION",
        "signature": hashlib.sha256(event.id.encode()).hexdigest()[:32],
        "created": now,
        "updated": now,
        "_links": {},
    }
