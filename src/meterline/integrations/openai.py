"""OpenAI SDK (``openai`` >= 1.40) metering: chat completions, legacy completions, embeddings, Responses API.

Design:
- The resource classes' methods are patched (``Completions.create``/``parse``, ``Embeddings.create``,
  ``Responses.create``/``parse`` and their async twins), so every client — created before or after
  ``instrument()``, plain or Azure — is covered, and so are the SDK's helpers built on them
  (``chat.completions.stream()``, ``responses.stream()``, ``with_raw_response``, ``with_streaming_response``).
- Streams stay the SDK's own ``Stream``/``AsyncStream`` objects (``isinstance`` checks keep working): only
  their internal iterator is wrapped, see :mod:`meterline.integrations._openai_stream`.
- Chat/completion streams need ``stream_options.include_usage`` for real token counts. meterline adds it when
  the caller did not, and then hides the extra usage-only chunk, so the caller sees exactly the stream it
  asked for. ``METERLINE_OPENAI_STREAM_USAGE=false`` turns the injection off (for servers that reject the
  option); such streams are then metered with ``usage_source="estimated"`` (characters / 4).
- ``usage_metadata=`` is removed before the request. Inside a call another meterline layer already meters
  (LiteLLM over this SDK) nothing is recorded here (``meterline.context._in_call``).
- A stream whose response carries ``x-meterline-metered: gateway`` came through a meterline gateway, which
  records the authoritative event: it is not recorded again here. (A parsed non-stream response exposes no
  headers; use ``with_raw_response`` or let the gateway and the app write to different stores.)
"""

from __future__ import annotations

import functools
import inspect
import os
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from meterline import _api, _errors
from meterline import usage as _usage
from meterline.context import _in_call, current_metadata, should_meter
from meterline.event import MAX_ERROR_MESSAGE, UsageEvent
from meterline.integrations._patch import Patches
from meterline.metadata import normalise as _normalise_metadata

GATEWAY_HEADER = "x-meterline-metered"

_CHAT = "openai.resources.chat.completions.completions"
_COMPLETIONS = "openai.resources.completions"
_EMBEDDINGS = "openai.resources.embeddings"
_RESPONSES = "openai.resources.responses.responses"

# (module, class, method, operation, api shape)
_TARGETS: tuple[tuple[str, str, str, str, str], ...] = (
    (_CHAT, "Completions", "create", "chat", "chat"),
    (_CHAT, "Completions", "parse", "chat", "chat"),
    (_CHAT, "AsyncCompletions", "create", "chat", "chat"),
    (_CHAT, "AsyncCompletions", "parse", "chat", "chat"),
    (_COMPLETIONS, "Completions", "create", "completion", "completion"),
    (_COMPLETIONS, "AsyncCompletions", "create", "completion", "completion"),
    (_EMBEDDINGS, "Embeddings", "create", "embedding", "embedding"),
    (_EMBEDDINGS, "AsyncEmbeddings", "create", "embedding", "embedding"),
    (_RESPONSES, "Responses", "create", "chat", "responses"),
    (_RESPONSES, "Responses", "parse", "chat", "responses"),
    (_RESPONSES, "AsyncResponses", "create", "chat", "responses"),
    (_RESPONSES, "AsyncResponses", "parse", "chat", "responses"),
)

_STOP = {
    "stop": "end",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "content_filter",
}

_patches = Patches()


def instrument() -> None:
    """Patch the OpenAI SDK's resource classes (idempotent)."""
    targets = []
    for module, cls, method, operation, shape in _TARGETS:
        is_async = cls.startswith("Async")  # the SDK's @required_args hides coroutine functions from inspect
        make = functools.partial(_make_wrapper, operation=operation, shape=shape, is_async=is_async)
        targets.append((module, cls, method, make))
    _patches.apply(targets)


def uninstrument() -> bool:
    """Put the original methods back; False when not instrumented."""
    return _patches.remove()


def _make_wrapper(original: Callable[..., Any], *, operation: str, shape: str, is_async: bool) -> Callable[..., Any]:
    if is_async:

        @functools.wraps(original)
        async def async_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            call = _start(self, operation, shape, kwargs)
            if call is None:
                return await original(self, *args, **kwargs)
            token = _in_call.set(True)
            try:
                result = await original(self, *args, **call.kwargs)
            except BaseException as exc:
                call.fail(exc)
                raise
            finally:
                _in_call.reset(token)
            return await call.async_result(result)

        return async_wrapper

    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = _start(self, operation, shape, kwargs)
        if call is None:
            return original(self, *args, **kwargs)
        token = _in_call.set(True)
        try:
            result = original(self, *args, **call.kwargs)
        except BaseException as exc:
            call.fail(exc)
            raise
        finally:
            _in_call.reset(token)
        return call.result(result)

    return wrapper


def _start(resource: Any, operation: str, shape: str, kwargs: dict[str, Any]) -> Call | None:
    """Strip ``usage_metadata`` (always) and open a metered call (None when this call is not metered)."""
    raw_md = kwargs.pop("usage_metadata", None)
    if not should_meter():
        return None
    try:
        return Call(resource, operation, shape, kwargs, raw_md)
    except Exception as exc:  # noqa: BLE001 - meterline must never raise into the caller
        _errors.report("openai: starting a metered call", exc)
        return None


def _stream_usage_injection() -> bool:
    value = os.environ.get("METERLINE_OPENAI_STREAM_USAGE", "true").strip().lower()
    return value not in ("0", "false", "no", "off")


def _provider(client: Any) -> str:
    name = type(client).__name__
    return "azure" if "Azure" in name else "openai"


class Call:
    """One metered SDK call: the event under construction and what is needed to finish it."""

    def __init__(
        self, resource: Any, operation: str, shape: str, kwargs: dict[str, Any], raw_md: Mapping[str, Any] | None
    ) -> None:
        self.scope = current_metadata()
        self.call_md = _normalise_metadata(raw_md, strict=False) if raw_md else {}
        self.shape = shape
        self.t0 = time.perf_counter()
        client = getattr(resource, "_client", None)
        model = kwargs.get("model")
        self.event = UsageEvent(
            start_time=datetime.now(timezone.utc),
            provider=_provider(client),
            model=model if isinstance(model, str) and model else "unknown",
            operation=operation,
            stream=kwargs.get("stream") is True,
            integration="openai",
        )
        base = getattr(client, "base_url", None)
        if base is not None:
            self.event.api_base = str(base).rstrip("/")[:1024]
        self.hide_usage_chunk = False
        if self.event.stream and shape in ("chat", "completion"):
            opts = kwargs.get("stream_options")
            has_usage = isinstance(opts, Mapping) and bool(opts.get("include_usage"))
            if not has_usage and _stream_usage_injection():
                base_opts = dict(opts) if isinstance(opts, Mapping) else {}
                kwargs = {**kwargs, "stream_options": {**base_opts, "include_usage": True}}
                self.hide_usage_chunk = True
        self.kwargs = kwargs
        self.input_chars = 0 if self.event.stream is False else _request_chars(kwargs)
        self.capture = _api.settings.capture_content
        self.messages = kwargs.get("messages", kwargs.get("prompt", kwargs.get("input"))) if self.capture else None

    # -- finishing ---------------------------------------------------------------------------------
    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.t0) * 1000.0

    def emit(self, *, skip: bool = False) -> None:
        e = self.event
        elapsed = self.elapsed_ms()
        e.end_time = e.start_time + timedelta(milliseconds=elapsed)
        e.duration_ms = round(elapsed, 3)
        if skip:
            return
        _api.emit(e, self.scope, self.call_md)

    def fail(self, exc: BaseException) -> None:
        try:
            e = self.event
            cancelled = isinstance(exc, (KeyboardInterrupt, GeneratorExit)) or type(exc).__name__ == "CancelledError"
            e.status = "cancelled" if cancelled else "error"
            e.stop_reason = "cancelled" if cancelled else "error"
            e.error_type = type(exc).__name__
            e.error_message = str(exc)[:MAX_ERROR_MESSAGE] or None
            status = getattr(exc, "status_code", None)
            if isinstance(status, int):
                e.attributes["http_status"] = status
            self.emit()
        except Exception as inner:  # noqa: BLE001 - meterline must never raise into the caller
            _errors.report("openai: recording a failed call", inner, reraise=False)

    def result(self, result: Any) -> Any:
        """Record a finished sync call; returns what the caller gets (the same object)."""
        try:
            if not _is_api_response(result):
                self._handle(result)
            elif not _from_gateway(result):
                self._handle(result.parse())
        except Exception as exc:  # noqa: BLE001 - meterline must never raise into the caller
            _errors.report("openai: recording a call", exc)
        return result

    async def async_result(self, result: Any) -> Any:
        try:
            if not _is_api_response(result):
                self._handle(result)
            elif not _from_gateway(result):
                parsed = result.parse()  # a coroutine on AsyncAPIResponse, a value on LegacyAPIResponse
                self._handle(await parsed if inspect.isawaitable(parsed) else parsed)
        except Exception as exc:  # noqa: BLE001 - meterline must never raise into the caller
            _errors.report("openai: recording a call", exc)
        return result

    def _handle(self, obj: Any) -> None:
        if self.event.stream:
            self._watch_stream(obj)
        else:
            self.finish(obj)

    def _watch_stream(self, stream: Any) -> None:
        from meterline.integrations._openai_stream import watch

        response = getattr(stream, "response", None)
        if response is not None and response.headers.get(GATEWAY_HEADER):
            return
        watch(stream, self)

    def finish(self, obj: Any) -> None:
        """Fill usage and outcome from a parsed response object and emit."""
        e = self.event
        model = getattr(obj, "model", None)
        if isinstance(model, str) and model:
            e.response_model = model
        usage = getattr(obj, "usage", None)
        if usage is not None:
            _usage.apply(e, _usage.from_openai(usage))
        else:
            e.usage_source = "estimated"
        text: str | None = None
        if self.shape == "responses":
            e.stop_reason, tool = _responses_outcome(obj)
            text = getattr(obj, "output_text", None) if self.capture else None
        elif self.shape in ("chat", "completion"):
            choices = getattr(obj, "choices", None) or []
            first = choices[0] if choices else None
            finish = getattr(first, "finish_reason", None)
            e.stop_reason = _STOP.get(finish) if isinstance(finish, str) else None
            message = getattr(first, "message", None)
            tool = bool(getattr(message, "tool_calls", None)) or finish in ("tool_calls", "function_call")
            if self.capture:
                text = getattr(message, "content", None) if message is not None else getattr(first, "text", None)
        else:
            tool = False
        if tool:
            e.operation_subtype = "tool_use"
        if self.capture:
            e.input_messages, e.output_text = _api.capture(self.messages, text)
        self.emit()


def _is_api_response(obj: Any) -> bool:
    # LegacyAPIResponse (with_raw_response) and APIResponse (with_streaming_response): parse() is cached,
    # so parsing here hands the caller the very object it would have parsed itself.
    return hasattr(obj, "parse") and hasattr(obj, "http_response") and hasattr(obj, "headers")


def _from_gateway(raw: Any) -> bool:
    try:
        return bool(raw.headers.get(GATEWAY_HEADER))
    except Exception:  # noqa: BLE001 - a header we cannot read is simply absent
        return False


def _responses_outcome(obj: Any) -> tuple[str | None, bool]:
    status = getattr(obj, "status", None)
    tool = any(getattr(item, "type", None) == "function_call" for item in getattr(obj, "output", None) or ())
    if status == "incomplete":
        reason = getattr(getattr(obj, "incomplete_details", None), "reason", None)
        return ("content_filter" if reason == "content_filter" else "max_tokens"), tool
    if status == "failed":
        return "error", tool
    return ("tool_use" if tool else "end"), tool


def _request_chars(kwargs: Mapping[str, Any]) -> int:
    """Characters of prompt text, for the estimate used when a stream ends without usage."""
    total = 0
    stack: list[Any] = [kwargs.get(k) for k in ("messages", "prompt", "input", "instructions")]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, Mapping):
            stack.extend(item.get(k) for k in ("content", "text"))
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return total
