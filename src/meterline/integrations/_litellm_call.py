"""Per-call state for the LiteLLM integration and the events built from it.

One :class:`LiteLLMCall` is created on the caller's thread when LiteLLM sets up a call
(``function_setup``) and stored on that call's LiteLLM ``Logging`` object. It holds what must be read at
call time (the metadata scope, ``usage_metadata``, the start time) and, for streams, what has been seen so
far. The hooks in :mod:`meterline.integrations.litellm` and :mod:`._litellm_stream` end it exactly once
(``closed``) with a success, error or cancelled event. Everything here runs on the caller's thread (or a
garbage collector's) and only builds an event and hands it to :func:`meterline.sdk.api.emit`; pricing and
writing happen on the recorder's thread.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from meterline.core import usage as _usage
from meterline.core.constants import FINISH_REASONS, GATEWAY_HEADER
from meterline.core.event import MAX_ERROR_MESSAGE, UsageEvent, new_event_id
from meterline.sdk import api as _api
from meterline.sdk.scopes import in_call

# LiteLLM call types metered, and the schema operation each one is.
OPERATIONS: dict[str, str] = {
    "completion": "chat",
    "acompletion": "chat",
    "text_completion": "completion",
    "atext_completion": "completion",
    "embedding": "embedding",
    "aembedding": "embedding",
}

# LiteLLM finish reasons -> schema stop_reason (shared with the gateway, so it lives in the core).
STOP_REASONS = FINISH_REASONS

# LiteLLM route names that are not upstream provider names.
PROVIDERS: dict[str, str] = {
    "text-completion-openai": "openai",
    "text-completion-codestral": "codestral",
    "azure_text": "azure",
    "bedrock_converse": "bedrock",
}

ATTR = "_meterline_call"  # attribute holding the LiteLLMCall on a LiteLLM Logging object


class LiteLLMCall:
    __slots__ = (
        "call_md",
        "closed",
        "finish_reason",
        "first_token",
        "in_next",
        "last_error",
        "messages",
        "model",
        "operation",
        "prompt_chars",
        "raw_request",
        "request_headers",
        "response_model",
        "scope",
        "start_mono",
        "start_wall",
        "stream",
        "stream_open",
        "token",
        "usage",
    )

    def __init__(
        self,
        operation: str,
        model: str | None,
        stream: bool,
        scope: Mapping[str, Any],
        call_md: Mapping[str, Any],
        messages: Any = None,
    ) -> None:
        self.operation = operation
        self.model = model
        self.stream = stream
        self.scope = scope
        self.call_md = call_md
        self.messages = messages  # only kept with capture_content on
        self.request_headers: Any = None  # only with capture_headers
        self.raw_request: Any = None  # only with capture_raw_request
        self.prompt_chars = 0  # streams: for the estimate when one is abandoned before the provider's usage
        self.start_wall = datetime.now(timezone.utc)
        self.start_mono = time.perf_counter()
        self.closed = False  # an event that ends the call was emitted: ignore every later hook
        self.stream_open = False  # LiteLLM returned a stream: the stream hooks end the call
        # inside the stream's own __anext__: an aclose() LiteLLM runs there is its cleanup before it raises
        # (an error) or ends the stream (StopAsyncIteration); what __anext__ then does decides the outcome
        self.in_next = False
        self.last_error: BaseException | None = None
        self.token: contextvars.Token[bool] | None = None
        # seen on a stream so far
        self.first_token: float | None = None
        self.usage: Any = None
        self.finish_reason: str | None = None
        self.response_model: str | None = None

    # -- the in_call flag, set while LiteLLM runs the call on the caller's thread/task -------------
    def enter(self) -> None:
        self.token = in_call.set(True)

    def release(self) -> None:
        token, self.token = self.token, None
        if token is not None:
            try:
                in_call.reset(token)
            except ValueError:
                pass  # another thread or task ended the call: the caller's own context was reset there

    # -- ending the call ---------------------------------------------------------------------------
    def restart(self, error: BaseException) -> None:
        """After an error event: LiteLLM may retry with the same Logging object; time the next attempt."""
        self.last_error = error
        self.start_wall = datetime.now(timezone.utc)
        self.start_mono = time.perf_counter()

    def _event(
        self, details: Any, status: str, start_wall: datetime, elapsed: float, error: BaseException | None = None
    ) -> UsageEvent:
        if not isinstance(details, dict):
            details = {}
        provider = _provider(details, self.model, error)
        model = details.get("model") or _bare(self.model, provider) or "unknown"
        event = UsageEvent(
            id=new_event_id(),
            start_time=start_wall,
            end_time=start_wall + timedelta(seconds=elapsed),
            duration_ms=round(elapsed * 1000.0, 3),
            provider=provider,
            model=str(model),
            operation=self.operation,
            stream=self.stream,
            status=status,
            integration="litellm",
        )
        params = details.get("litellm_params")
        if isinstance(params, dict):
            meta = params.get("metadata")
            if isinstance(meta, dict) and isinstance(meta.get("model_group"), str):
                event.model_group = meta["model_group"]
            info = params.get("model_info")
            if isinstance(info, dict) and info.get("id") is not None:
                event.deployment_id = str(info["id"])
            base = params.get("api_base")
            if isinstance(base, str) and base:
                event.api_base = base[:1024]
        if error is not None:
            event.stop_reason = "error"
            event.error_type = type(error).__name__
            event.error_message = str(error)[:MAX_ERROR_MESSAGE]
        return event

    # The finish_* methods run on the caller's thread: they take the timings and references to LiteLLM's
    # objects and leave building the event (usage, model, provider, content) to the recorder's thread
    # (``_api.emit_later``). ``model_call_details`` is LiteLLM's dict for this call; LiteLLM's own logging
    # may add keys to it meanwhile, never the ones read here.
    def finish_result(self, logging_obj: Any, result: Any) -> None:
        """A complete (non-streamed) response: one success event."""
        self.closed = True
        elapsed = time.perf_counter() - self.start_mono
        details = getattr(logging_obj, "model_call_details", None)
        capture = _api.settings.capture_content
        _api.emit_later(
            self._result_event, (details, result, self.start_wall, elapsed, capture), self.scope, self.call_md
        )

    def _result_event(
        self, details: Any, result: Any, start_wall: datetime, elapsed: float, capture: bool
    ) -> UsageEvent | None:
        if metered_by_gateway(result):
            return None
        event = self._event(details, "success", start_wall, elapsed)
        _usage.apply(event, usage_counts(getattr(result, "usage", None)))
        response_model = getattr(result, "model", None)
        if isinstance(response_model, str) and response_model:
            event.response_model = response_model
        text = None
        choices = getattr(result, "choices", None)
        if choices:
            choice = choices[0]
            _stop(event, getattr(choice, "finish_reason", None))
            if capture:
                message = getattr(choice, "message", None)
                text = getattr(message, "content", None) if message is not None else getattr(choice, "text", None)
                calls = getattr(message, "tool_calls", None) if message is not None else None
                if calls:
                    event.output_tool_calls = [_tool_call(c) for c in calls]
        return self._with_content(event, text, capture)

    def finish_error(self, logging_obj: Any, error: BaseException) -> None:
        """A failed attempt (the caller gets the exception unchanged): one error event."""
        elapsed = time.perf_counter() - self.start_mono
        details = getattr(logging_obj, "model_call_details", None)
        args = (details, "error", self.start_wall, elapsed, error)
        self.restart(error)
        _api.emit_later(self._error_event, (args, _api.settings.capture_content), self.scope, self.call_md)

    def _error_event(self, args: tuple[Any, str, datetime, float, BaseException], capture: bool) -> UsageEvent:
        return self._with_content(self._event(*args), None, capture)

    def on_chunk(self, chunk: Any) -> None:
        """What a stream chunk tells: first-token time, usage (last report wins), finish reason, model."""
        if self.first_token is None:
            self.first_token = time.perf_counter()
        usage = _field(chunk, "usage")
        if usage is None:
            hidden = _field(chunk, "_hidden_params")
            usage = hidden.get("usage") if isinstance(hidden, dict) else None
        if usage is not None and usage_counts(usage).total_tokens > 0:
            self.usage = usage
        choices = getattr(chunk, "choices", None)
        if choices:
            reason = _field(choices[0], "finish_reason")
            if reason:
                self.finish_reason = reason
        model = getattr(chunk, "model", None)
        if model and isinstance(model, str):
            self.response_model = model

    def finish_stream(
        self, stream: Any, status: str, error: BaseException | None = None, logging_obj: Any = None
    ) -> None:
        """A stream ended: read to the end (success), given up (cancelled) or failed (error). Also ends an
        async call cancelled before its response (``stream`` None)."""
        if self.closed:
            return
        self.closed = True
        elapsed = time.perf_counter() - self.start_mono
        if logging_obj is None:
            logging_obj = getattr(stream, "logging_obj", None)
        details = getattr(logging_obj, "model_call_details", None)
        sent = getattr(stream, "response_uptil_now", None)  # the text handed to the consumer so far
        chunks = getattr(stream, "chunks", None)  # LiteLLM's list of the stream's chunks (complete now)
        hidden = getattr(stream, "_hidden_params", None)
        ttft = None if self.first_token is None else round((self.first_token - self.start_mono) * 1000.0, 3)
        state = (self.usage, self.finish_reason, self.response_model, ttft, self.start_wall)
        _api.emit_later(
            self._stream_event,
            (details, status, error, elapsed, sent, chunks, hidden, state, _api.settings.capture_content),
            self.scope,
            self.call_md,
        )

    def _stream_event(
        self,
        details: Any,
        status: str,
        error: BaseException | None,
        elapsed: float,
        sent: Any,
        chunks: Any,
        hidden: Any,
        state: tuple[Any, str | None, str | None, float | None, datetime],
        capture: bool,
    ) -> UsageEvent | None:
        if metered_by_gateway_hidden(hidden):
            return None
        usage, finish_reason, response_model, ttft_ms, start_wall = state
        if status == "cancelled" and finish_reason is not None:
            status = "success"  # the consumer stopped after the last content chunk: the reply was complete
        if usage is None:
            # usage LiteLLM kept but did not hand out (Anthropic's message_start arrives as an empty chunk)
            usage = _last_usage(chunks)
        event = self._event(details, status, start_wall, elapsed, error)
        sent = sent if isinstance(sent, str) else None
        if usage is not None:
            _usage.apply(event, usage_counts(usage))
        elif status == "cancelled":  # OpenAI-style streams report usage only at their end: estimate what was sent
            _usage.apply(event, _usage.estimate(self.prompt_chars, len(sent or "")))
            event.usage_source = "estimated"
        if response_model:
            event.response_model = response_model
        if ttft_ms is not None:
            event.time_to_first_token_ms = ttft_ms
        if status == "success":
            _stop(event, finish_reason)
        elif status == "cancelled":
            event.stop_reason = "cancelled"
        if capture and event.operation_subtype == "tool_use":
            event.output_tool_calls = _stream_tool_calls(chunks) or None
        return self._with_content(event, sent, capture)

    def _with_content(self, event: UsageEvent, text: str | None, capture: bool) -> UsageEvent:
        if capture:
            event.input_messages, event.output_text = _api.capture(self.messages, text)
        event.request_headers = self.request_headers
        event.raw_request = self.raw_request
        return event


def _tool_call(call: Any) -> dict[str, Any]:
    fn = getattr(call, "function", None)
    return {
        "id": getattr(call, "id", None),
        "name": getattr(fn, "name", None),
        "arguments": getattr(fn, "arguments", None),
    }


def _stream_tool_calls(chunks: Any) -> list[dict[str, Any]]:
    """The tool calls of a finished stream, assembled from the chunks LiteLLM kept."""
    from meterline.integrations._openai_usage import stream_tool_calls

    calls: list[dict[str, Any]] = []
    for chunk in chunks if isinstance(chunks, list) else ():
        for choice in getattr(chunk, "choices", None) or ():
            delta = getattr(choice, "delta", None)
            deltas = getattr(delta, "tool_calls", None)
            if deltas:
                stream_tool_calls(calls, deltas)
    return calls


_UPSTREAM_GATEWAY_HEADER = "llm_provider-" + GATEWAY_HEADER  # how LiteLLM keeps an upstream response header


def metered_by_gateway(response: Any) -> bool:
    """The upstream is a meterline gateway that metered this call itself (``x-meterline-metered: gateway``
    on its response): its event is authoritative, the SDK side does not count the call again."""
    return metered_by_gateway_hidden(getattr(response, "_hidden_params", None))


def metered_by_gateway_hidden(hidden: Any) -> bool:
    """:func:`metered_by_gateway` on a response's ``_hidden_params``."""
    headers = hidden.get("additional_headers") if isinstance(hidden, dict) else None
    if not isinstance(headers, dict):
        return False
    value = headers.get(_UPSTREAM_GATEWAY_HEADER)
    return isinstance(value, str) and value.strip().lower() == "gateway"


def _field(obj: Any, name: str) -> Any:
    """``getattr(obj, name, None)`` without the failing lookup on a pydantic model that lacks the field
    (LiteLLM's ``ModelResponseStream`` has ``usage`` only on the chunk that reports it): ~3.5 µs a chunk."""
    fields = getattr(obj, "__dict__", None)
    if isinstance(fields, dict) and getattr(type(obj), "__pydantic_fields__", None) is not None:
        if name in fields:
            return fields[name]
        for more in (getattr(obj, "__pydantic_extra__", None), getattr(obj, "__pydantic_private__", None)):
            if isinstance(more, dict) and name in more:
                return more[name]
        return None
    return getattr(obj, name, None)


def _plain(obj: Any) -> Any:
    """A pydantic object's fields and extras as a dict. Reading a missing attribute of a pydantic model
    raises (and formats) an AttributeError inside ``getattr``: ~3 µs a miss, several misses per usage."""
    if obj is None or isinstance(obj, Mapping):
        return obj
    fields = getattr(obj, "__dict__", None)
    if not isinstance(fields, dict):
        return obj
    out = dict(fields)
    extra = getattr(obj, "__pydantic_extra__", None)
    if isinstance(extra, dict):
        out.update(extra)
    return out


def usage_counts(usage: Any) -> _usage.TokenUsage:
    """LiteLLM's ``Usage`` normalised with :func:`meterline.core.usage.from_openai` (which knows LiteLLM's
    Anthropic cache fields), read as plain dicts; the 1-hour cache-write split comes from
    ``prompt_tokens_details.cache_creation_token_details``."""
    plain = _plain(usage)
    if isinstance(plain, dict):
        plain = dict(plain)
        for key in ("prompt_tokens_details", "completion_tokens_details"):
            if plain.get(key) is not None:
                plain[key] = _plain(plain[key])
        details = plain.get("prompt_tokens_details")
        if plain.get("cache_creation") is None and isinstance(details, Mapping):
            plain["cache_creation"] = _plain(details.get("cache_creation_token_details"))
    return _usage.from_openai(plain)


def _last_usage(chunks: Any) -> Any:
    if not isinstance(chunks, list):
        return None
    for chunk in reversed(chunks):
        usage = getattr(chunk, "usage", None)
        if usage is not None and usage_counts(usage).total_tokens > 0:
            return usage
    return None


def _stop(event: UsageEvent, reason: Any) -> None:
    if not isinstance(reason, str):
        return
    mapped = STOP_REASONS.get(reason)
    event.stop_reason = mapped
    if mapped == "tool_use":
        event.operation_subtype = "tool_use"


def _provider(details: Mapping[str, Any], model: str | None, error: BaseException | None) -> str:
    name = details.get("custom_llm_provider") or getattr(error, "llm_provider", None)
    if not name and isinstance(model, str) and "/" in model:
        name = model.split("/", 1)[0]
    if not isinstance(name, str) or not name:
        return "unknown"
    return PROVIDERS.get(name, name)


def _bare(model: str | None, provider: str) -> str | None:
    if isinstance(model, str) and model.startswith(provider + "/"):
        return model[len(provider) + 1 :]
    return model
