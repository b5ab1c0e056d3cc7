"""Lago events API (``POST /lago/api/v1/events`` and ``/events/batch``; LiteLLM's ``lago`` callback,
lago-python-client) → schema v1, and the answers Lago's clients parse.

Mapping (DESIGN.md "Compatible ingest"): ``external_subscription_id`` → ``subscription_id``,
``external_customer_id`` → ``subscriber_id``; properties ``model``, ``provider``,
``input_tokens`` (uncached, schema v1) or ``prompt_tokens`` (OpenAI/LiteLLM spelling: includes the cache
counts, which are then taken out), ``output_tokens|completion_tokens``, ``cache_read_tokens|
cache_read_input_tokens``, ``cache_write_tokens|cache_creation_input_tokens``, ``reasoning_tokens``,
``response_cost|total_cost|cost`` → fields; the event ``code`` and every other property → ``attributes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from meterline.core.event import EventValidationError, UsageEvent
from meterline.interop.ingest import _fields as ingest_fields
from meterline.interop.ingest import event_id, infer_provider

CLIENT = "lago"
MAX_BATCH = 100
_USED = frozenset(
    {
        "model",
        "provider",
        "custom_llm_provider",
        "input_tokens",
        "prompt_tokens",
        "output_tokens",
        "completion_tokens",
        "cache_read_tokens",
        "cache_read_input_tokens",
        "cache_write_tokens",
        "cache_creation_input_tokens",
        "reasoning_tokens",
        "total_tokens",
        "response_cost",
        "total_cost",
        "cost",
    }
)


class LagoError(EventValidationError):
    """A Lago validation error: ``field`` is Lago's field name, ``reason`` Lago's error code."""


def to_event(raw: Any, received: datetime | None = None) -> UsageEvent:
    """One Lago event input → one event; :class:`LagoError` carries Lago's field and error code."""
    if not isinstance(raw, Mapping):
        raise LagoError("event", "invalid_type")
    tid = raw.get("transaction_id")
    if not isinstance(tid, (str, int)) or isinstance(tid, bool) or str(tid) == "":
        raise LagoError("transaction_id", "value_is_mandatory")
    code = raw.get("code")
    if not isinstance(code, str) or not code:
        raise LagoError("code", "value_is_mandatory")
    sub, cust = raw.get("external_subscription_id"), raw.get("external_customer_id")
    if not sub and not cust:
        raise LagoError("external_subscription_id", "value_is_mandatory")
    props = raw.get("properties") or {}
    if not isinstance(props, Mapping):
        raise LagoError("properties", "invalid_type")
    model = props.get("model")
    if not isinstance(model, str) or not model:
        raise LagoError("properties.model", "value_is_mandatory")
    try:
        start = ingest_fields.time(raw["timestamp"], "timestamp") if raw.get("timestamp") not in (None, "") else None
        event = UsageEvent(
            id=event_id(CLIENT, str(tid)),
            start_time=start or received or datetime.now(timezone.utc),
            provider=infer_provider(props.get("provider") or props.get("custom_llm_provider"), model),
            model=model,
            subscription_id=str(sub) if sub else None,
            subscriber_id=str(cust) if cust else None,
            integration=CLIENT,
        )
        _tokens(event, props)
        cost = ingest_fields.money(_first(props, "response_cost", "total_cost", "cost"), "properties.response_cost")
        precise = raw.get("precise_total_amount_cents")
        if cost is None and precise not in (None, ""):
            cents = ingest_fields.money(precise, "precise_total_amount_cents")
            cost = cents / 100 if cents is not None else None
        tokens = event.input_tokens + event.cache_read_tokens + event.cache_write_tokens + event.output_tokens
        if cost is not None and not (cost == 0 and tokens > 0):  # LiteLLM sends 0.0 for models it cannot price
            event.total_cost = cost
            event.pricing_source = CLIENT
        event.attributes = {
            "lago.code": code[:1024],
            **ingest_fields.scalar_attributes({k: v for k, v in props.items() if k not in _USED}, "lago."),
        }
    except EventValidationError as exc:
        raise LagoError(exc.field, _code(exc.reason)) from None
    event.finalize_totals()
    return event


def _first(props: Mapping[str, Any], *names: str) -> Any:
    for n in names:
        if props.get(n) is not None:
            return props[n]
    return None


def _tokens(event: UsageEvent, props: Mapping[str, Any]) -> None:
    read = (
        ingest_fields.count(props, "cache_read_tokens", "cache_read_input_tokens", field="properties.cache_read_tokens")
        or 0
    )
    write = ingest_fields.count(
        props, "cache_write_tokens", "cache_creation_input_tokens", field="properties.cache_write_tokens"
    )
    write = write or 0
    net = ingest_fields.count(props, "input_tokens", field="properties.input_tokens")
    if net is None:  # OpenAI/LiteLLM spelling: prompt_tokens includes the cache counts
        gross = ingest_fields.count(props, "prompt_tokens", field="properties.prompt_tokens") or 0
        net = max(gross - read - write, 0)
    out = ingest_fields.count(props, "output_tokens", "completion_tokens", field="properties.output_tokens") or 0
    reasoning = ingest_fields.count(props, "reasoning_tokens", field="properties.reasoning_tokens") or 0
    event.input_tokens, event.cache_read_tokens, event.cache_write_tokens = net, read, write
    event.output_tokens, event.reasoning_tokens = out, min(reasoning, out)


def _code(reason: str) -> str:
    return "invalid_value" if "required" not in reason else "value_is_mandatory"


def event_object(raw: Mapping[str, Any], event: UsageEvent) -> dict[str, Any]:
    """Lago's EventObject for an accepted event (what ``{"event": …}`` holds)."""
    ts = event.start_time.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "lago_id": event.id,
        "transaction_id": str(raw.get("transaction_id")),
        "lago_customer_id": None,
        "lago_subscription_id": None,
        "external_subscription_id": str(raw.get("external_subscription_id") or raw.get("external_customer_id")),
        "external_customer_id": raw.get("external_customer_id"),
        "code": raw.get("code"),
        "timestamp": ts,
        "properties": dict(raw.get("properties") or {}),
        "precise_total_amount_cents": raw.get("precise_total_amount_cents"),
        "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def validation_error(details: Mapping[str, Any]) -> dict[str, Any]:
    """Lago's 422 body: ``{status, error, code: "validation_errors", error_details}``."""
    return {"status": 422, "error": "Unprocessable Entity", "code": "validation_errors", "error_details": dict(details)}
