"""OpenMeter ingest (``POST /openmeter/api/v1/events``; LiteLLM's ``openmeter`` callback, any CloudEvents
producer) → schema v1. Content types: ``application/cloudevents+json`` (one event),
``application/cloudevents-batch+json`` (an array) and ``application/json`` (either).

A CloudEvent needs ``id``, ``source``, ``specversion`` "1.0", ``type`` and ``subject``; OpenMeter
de-duplicates on (source, id), so the event id here is uuid5 of both. ``subject`` → ``subscriber_id``,
``time`` → ``start_time``; ``data`` is read like Lago properties (model, provider, prompt/input tokens,
completion/output tokens, cache and reasoning tokens, ``cost``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from meterline.core.event import EventValidationError, UsageEvent
from meterline.interop.ingest import _fields as ingest_fields
from meterline.interop.ingest import event_id, infer_provider
from meterline.interop.ingest.lago import _USED, _first, _tokens

CLIENT = "openmeter"
_USED_HERE = _USED | {"cost"}


def to_event(raw: Any, received: datetime | None = None) -> UsageEvent:
    if not isinstance(raw, Mapping):
        raise EventValidationError("event", "must be a CloudEvent JSON object")
    for name in ("id", "source", "type", "subject"):
        value = raw.get(name)
        if not isinstance(value, str) or not value:
            raise EventValidationError(name, "required, a non-empty string")
    if raw.get("specversion") != "1.0":
        raise EventValidationError("specversion", f'must be "1.0"; got {raw.get("specversion")!r}')
    data = raw.get("data") or {}
    if not isinstance(data, Mapping):
        raise EventValidationError("data", "must be a JSON object")
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise EventValidationError("data.model", "required, a non-empty string")
    start = ingest_fields.time(raw["time"], "time") if raw.get("time") else None
    event = UsageEvent(
        id=event_id(CLIENT, f"{raw['source']}\x00{raw['id']}"),
        start_time=start or received or datetime.now(timezone.utc),
        provider=infer_provider(data.get("provider") or data.get("custom_llm_provider"), model),
        model=model,
        subscriber_id=str(raw["subject"])[:1024],
        integration=CLIENT,
    )
    try:
        _tokens(event, data)
    except EventValidationError as exc:
        raise EventValidationError("data." + exc.field.removeprefix("properties."), exc.reason) from None
    cost = ingest_fields.money(_first(data, "cost", "response_cost", "total_cost"), "data.cost")
    tokens = event.input_tokens + event.cache_read_tokens + event.cache_write_tokens + event.output_tokens
    if cost is not None and not (cost == 0 and tokens > 0):
        event.total_cost = cost
        event.pricing_source = CLIENT
    event.attributes = {
        "openmeter.type": str(raw["type"])[:1024],
        "openmeter.source": str(raw["source"])[:1024],
        **ingest_fields.scalar_attributes({k: v for k, v in data.items() if k not in _USED_HERE}, "openmeter."),
    }
    event.finalize_totals()
    return event


def problem(status: int, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    """An RFC 7807 ``application/problem+json`` body, as OpenMeter answers errors."""
    return {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
