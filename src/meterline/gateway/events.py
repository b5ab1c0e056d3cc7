"""Build a schema-v1 event from what the LiteLLM proxy hands its callbacks.

Everything comes from ``kwargs`` (``standard_logging_object``, ``litellm_params``) and the response
object; nothing here does I/O, so it is safe on the proxy's event loop.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from meterline.core import usage as _usage
from meterline.core.constants import FINISH_REASONS as STOP_REASONS
from meterline.core.event import MAX_ERROR_MESSAGE, UsageEvent
from meterline.core.usage import get_field
from meterline.gateway import identity

# uuid5 namespace: one proxied request (litellm_call_id) -> one stable event id, so a duplicate
# delivery of the same call can never be counted twice by the store.
_NS = uuid.UUID("6f1d7c2e-3b1a-4c55-9a4e-1f0b7a9e2d10")

_OPERATIONS = {
    "completion": "chat",
    "acompletion": "chat",
    "anthropic_messages": "chat",
    "aanthropic_messages": "chat",
    "responses": "chat",
    "aresponses": "chat",
    "text_completion": "completion",
    "atext_completion": "completion",
    "embedding": "embedding",
    "aembedding": "embedding",
    "image_generation": "image",
    "aimage_generation": "image",
    "transcription": "audio",
    "atranscription": "audio",
    "speech": "audio",
    "aspeech": "audio",
    "rerank": "rerank",
    "arerank": "rerank",
}


def event_id(call_id: str) -> str:
    return str(uuid.uuid5(_NS, call_id))


def _time(value: Any) -> datetime | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return datetime.fromtimestamp(float(value), tz=timezone.utc)
    return None


def _stop_reason(response: Any) -> str | None:
    reason = get_field(response, "stop_reason")  # Anthropic Messages
    if reason is None:
        choices = get_field(response, "choices")
        if choices:
            reason = get_field(choices[0], "finish_reason")
    return STOP_REASONS.get(reason) if isinstance(reason, str) else None


def _usage_of(call_type: str, slo_md: Mapping[str, Any], response: Any) -> _usage.TokenUsage:
    # LiteLLM's normalised usage object (OpenAI shape, Anthropic cache counts under their own names).
    usage_obj = slo_md.get("usage_object")
    if usage_obj:
        return _usage.from_openai(usage_obj)
    resp_usage = get_field(response, "usage")
    if resp_usage is None:
        return _usage.TokenUsage()
    if call_type in ("anthropic_messages", "aanthropic_messages") and get_field(resp_usage, "prompt_tokens") is None:
        return _usage.from_anthropic(resp_usage)
    return _usage.from_openai(resp_usage)


def request_parts(kwargs: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """(headers, body) of the client's request to the proxy (empty when the proxy failed before it)."""
    lp = kwargs.get("litellm_params") or {}
    psr = lp.get("proxy_server_request") or {}
    return psr.get("headers") or {}, psr.get("body") or {}


def build(
    kwargs: Mapping[str, Any], response: Any, *, failed: bool
) -> tuple[UsageEvent, dict[str, Any], dict[str, Any]]:
    """The event plus (key identity, caller metadata) to be merged by the trust rule."""
    slo: Mapping[str, Any] = kwargs.get("standard_logging_object") or {}
    slo_md: Mapping[str, Any] = slo.get("metadata") or {}
    lp: Mapping[str, Any] = kwargs.get("litellm_params") or {}
    lp_md: Mapping[str, Any] = lp.get("metadata") or lp.get("litellm_metadata") or {}
    call_type = str(kwargs.get("call_type") or slo.get("call_type") or "")
    call_id = str(kwargs.get("litellm_call_id") or slo.get("litellm_call_id") or uuid.uuid4())

    start = _time(slo.get("startTime")) or datetime.now(timezone.utc)
    end = _time(slo.get("endTime")) or start
    provider = slo.get("custom_llm_provider") or kwargs.get("custom_llm_provider") or "unknown"
    model = kwargs.get("model") or slo.get("model") or "unknown"
    stream = bool(slo.get("stream") or kwargs.get("stream"))
    event = UsageEvent(
        id=event_id(call_id),
        start_time=start,
        end_time=end,
        provider=str(provider),
        model=str(model),
        operation=_OPERATIONS.get(call_type, "other"),
        stream=stream,
        integration="litellm_proxy",
    )
    if stream:
        first = _time(slo.get("completionStartTime"))
        if first is not None and first >= start:
            event.time_to_first_token_ms = round((first - start).total_seconds() * 1000.0, 3)
    if failed:
        info = slo.get("error_information") or {}
        exc = kwargs.get("exception")
        event.status = "error"
        event.stop_reason = "error"
        event.error_type = str(info.get("error_class") or (type(exc).__name__ if exc is not None else "error"))[:1024]
        message = info.get("error_message") or (str(exc) if exc is not None else "")
        event.error_message = str(message)[:MAX_ERROR_MESSAGE] or None
        # A failed call consumed nothing and is not billed: an exact $0, even when the model is unknown
        # (a rejected request may name no real model at all), rather than "unpriced".
        zero = Decimal(0)
        event.input_cost = event.cache_read_cost = event.cache_write_cost = event.output_cost = zero
        event.total_cost = zero
        event.pricing_source = "failed-call"
    else:
        _usage.apply(event, _usage_of(call_type, slo_md, response))
        event.stop_reason = _stop_reason(response)
        response_model = get_field(response, "model")
        if isinstance(response_model, str) and response_model:
            event.response_model = response_model
    event.api_key_hash = identity.key_hash(slo_md.get("user_api_key_hash"))
    event.model_group = slo.get("model_group") or lp_md.get("model_group") or None
    event.deployment_id = slo.get("model_id") or None
    api_base = slo.get("api_base") or (slo.get("hidden_params") or {}).get("api_base")
    event.api_base = str(api_base)[:1024] if api_base else None
    if slo.get("cache_hit") is not None:
        event.cache_hit = bool(slo.get("cache_hit"))
    attempted = lp_md.get("attempted_fallbacks")
    event.fallback_depth = attempted if isinstance(attempted, int) and not isinstance(attempted, bool) else 0
    event.finalize_totals()

    headers, body = request_parts(kwargs)
    _capture(event, headers, body, None if failed else response)
    caller = identity.caller_metadata(headers, body, call_type)
    end_user = slo.get("end_user") or slo_md.get("user_api_key_end_user_id")
    if isinstance(end_user, str) and end_user and "end_user_id" not in caller:
        caller["end_user_id"] = end_user
    return event, identity.key_identity(slo_md), caller


def _capture(event: UsageEvent, headers: Mapping[str, Any], body: Mapping[str, Any], response: Any) -> None:
    """Content, headers and the client's request body, as the gateway's capture settings say (references
    only: redaction and credential masking run on the recorder's thread)."""
    from meterline.sdk import api as _api

    _api.get_recorder()  # the proxy configures meterline from its environment on first use: read it now
    s = _api.settings
    if s.capture_content:
        messages = body.get("messages") if "messages" in body else body.get("input", body.get("prompt"))
        event.input_messages = list(messages) if isinstance(messages, list) else messages
        choices = get_field(response, "choices") or ()
        if choices:
            message = get_field(choices[0], "message")
            text = get_field(message, "content") if message is not None else get_field(choices[0], "text")
            event.output_text = text if isinstance(text, str) else None
            calls = get_field(message, "tool_calls") if message is not None else None
            if calls:
                event.output_tool_calls = [
                    {
                        "id": get_field(c, "id"),
                        "name": get_field(get_field(c, "function"), "name"),
                        "arguments": get_field(get_field(c, "function"), "arguments"),
                    }
                    for c in calls
                ]
    if s.capture_headers and headers:
        event.request_headers = dict(headers)
    if s.capture_raw_request and body:
        event.raw_request = dict(body)


class StreamSeen:
    """What the proxy sent a streaming client before it went away (see ``build_abandoned``)."""

    __slots__ = ("first_token", "model", "out_chars", "provider", "started", "usage")

    def __init__(self) -> None:
        self.started = datetime.now(timezone.utc)
        self.first_token: datetime | None = None
        self.model: str | None = None
        self.provider: str | None = None
        self.out_chars = 0
        self.usage: Any = None

    def observe(self, chunk: Any) -> None:
        if self.first_token is None:
            self.first_token = datetime.now(timezone.utc)
        model = get_field(chunk, "model")
        if isinstance(model, str) and model:
            self.model = model
        hidden = getattr(chunk, "_hidden_params", None)
        provider = hidden.get("custom_llm_provider") if isinstance(hidden, Mapping) else None
        if isinstance(provider, str) and provider:
            self.provider = provider
        usage = get_field(chunk, "usage")
        if usage is not None:
            self.usage = usage
        for choice in get_field(chunk, "choices") or ():
            text = get_field(get_field(choice, "delta"), "content")
            if isinstance(text, str):
                self.out_chars += len(text)


def build_abandoned(request_data: Mapping[str, Any], seen: StreamSeen) -> UsageEvent:
    """The event of a stream whose client went away mid-way: LiteLLM fires no success or failure hook for it.
    Status ``cancelled``; the provider's usage when the usage chunk was already seen, else an estimate
    (characters / 4 of the prompt and of the text sent), marked ``usage_source="estimated"``."""
    call_id = str(request_data.get("litellm_call_id") or uuid.uuid4())
    now = datetime.now(timezone.utc)
    model = seen.model or request_data.get("model") or "unknown"
    event = UsageEvent(
        id=event_id(call_id),
        start_time=seen.started,
        end_time=now,
        provider=str(seen.provider or "unknown"),
        model=str(model),
        operation="chat",
        stream=True,
        status="cancelled",
        stop_reason="cancelled",
        integration="litellm_proxy",
    )
    if seen.first_token is not None:
        event.time_to_first_token_ms = round((seen.first_token - seen.started).total_seconds() * 1000.0, 3)
    if seen.usage is not None:
        _usage.apply(event, _usage.from_openai(seen.usage))
    else:
        event.usage_source = "estimated"
        _usage.apply(event, _usage.estimate(_usage.prompt_chars(request_data), seen.out_chars))
    group = request_data.get("model")
    event.model_group = str(group) if isinstance(group, str) and group else None
    event.finalize_totals()
    return event
