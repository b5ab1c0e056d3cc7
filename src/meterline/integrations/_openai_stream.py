"""Metering of OpenAI SDK streams without replacing the SDK's ``Stream``/``AsyncStream`` object.

The stream's internal ``_iterator`` is wrapped by a generator that observes each chunk (usage, model,
finish reason, tool calls, time to first token) and records exactly one event when the stream ends:
- read to the end → ``success`` with the provider's usage (the final usage chunk);
- an exception while reading (a dropped connection, an error event) → ``error``;
- abandoned (``close()``, leaving a ``with`` block early, or the stream garbage-collected, even when it was
  never iterated) → ``cancelled`` with what was seen so far. OpenAI sends usage only at the end, so a
  cancelled stream's counts are estimated from the characters seen (``usage_source="estimated"``).
"""

from __future__ import annotations

import inspect
import math
import threading
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from meterline import _api, _errors
from meterline import usage as _usage
from meterline.event import MAX_ERROR_MESSAGE

if TYPE_CHECKING:
    from meterline.integrations.openai import Call

_RESPONSE_DONE = frozenset({"response.completed", "response.incomplete", "response.failed"})


class StreamState:
    """What one stream has shown so far; ``finish`` records the event once, whoever calls it first."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.done = False
        self.lock = threading.Lock()
        self.first_ms: float | None = None
        self.out_chars = 0
        self.tool = False
        self.finish_reason: str | None = None
        self.usage: Any = None
        self.model: str | None = None
        self.final_response: Any = None  # Responses API: the response of the terminal event
        self.text: list[str] | None = [] if call.capture else None
        self.broken = False
        self.finalizer: weakref.finalize[Any, Any] | None = None

    def _first(self) -> None:
        if self.first_ms is None:
            self.first_ms = self.call.elapsed_ms()

    def _text(self, piece: str) -> None:
        self._first()
        self.out_chars += len(piece)
        if self.text is not None:
            self.text.append(piece)

    def observe(self, item: Any) -> bool:
        """Note one chunk; True when it is the usage-only chunk meterline asked for (hidden from the caller)."""
        if self.broken:
            return False
        try:
            if self.call.shape == "responses":
                self._observe_event(item)
                return False
            usage = getattr(item, "usage", None)
            if usage is not None:
                self.usage = usage
            model = getattr(item, "model", None)
            if isinstance(model, str) and model:
                self.model = model
            choices = getattr(item, "choices", None)
            if not choices:
                return self.call.hide_usage_chunk and usage is not None
            choice = choices[0]
            reason = getattr(choice, "finish_reason", None)
            if reason:
                self.finish_reason = reason
            delta = getattr(choice, "delta", None)
            piece = getattr(delta, "content", None) if delta is not None else getattr(choice, "text", None)
            if piece:
                self._text(piece)
            if delta is not None and getattr(delta, "tool_calls", None):
                self._first()
                self.tool = True
        except Exception as exc:  # noqa: BLE001 - meterline must never raise into the caller
            self.broken = True
            _errors.report("openai: reading a stream chunk", exc)
        return False

    def _observe_event(self, event: Any) -> None:
        kind = getattr(event, "type", None)
        if kind == "response.output_text.delta":
            delta = getattr(event, "delta", None)
            if isinstance(delta, str):
                self._text(delta)
        elif kind == "response.function_call_arguments.delta":
            self._first()
            self.tool = True
        elif kind in _RESPONSE_DONE:
            self.final_response = getattr(event, "response", None)

    def finish(self, status: str, exc: BaseException | None = None) -> None:
        with self.lock:
            if self.done:
                return
            self.done = True
        if self.finalizer is not None:
            self.finalizer.detach()
        try:
            self._record(status, exc)
        except Exception as inner:  # noqa: BLE001 - meterline must never raise into the caller
            _errors.report("openai: recording a stream", inner, reraise=False)

    def _record(self, status: str, exc: BaseException | None) -> None:
        call, e = self.call, self.call.event
        if exc is not None and type(exc).__name__ in ("CancelledError", "GeneratorExit", "KeyboardInterrupt"):
            status, exc = "cancelled", None
        e.time_to_first_token_ms = None if self.first_ms is None else round(self.first_ms, 3)
        final = self.final_response
        if final is not None and status == "success":
            call.finish(final)  # usage, model, stop reason and tool use from the terminal Responses event
            return
        if self.model:
            e.response_model = self.model
        if self.usage is not None:
            _usage.apply(e, _usage.from_openai(self.usage))
        else:
            e.usage_source = "estimated"
            e.input_tokens = math.ceil(call.input_chars / 4)
            e.output_tokens = math.ceil(self.out_chars / 4)
        e.status = status
        if status == "success":
            e.stop_reason = _stop(self.finish_reason)
        else:
            e.stop_reason = "cancelled" if status == "cancelled" else "error"
        if exc is not None:
            e.error_type = type(exc).__name__
            e.error_message = str(exc)[:MAX_ERROR_MESSAGE] or None
        if self.tool:
            e.operation_subtype = "tool_use"
        if call.capture:
            e.input_messages, e.output_text = _api.capture(call.messages, "".join(self.text or ()))
        call.emit()


def _stop(reason: str | None) -> str | None:
    from meterline.integrations.openai import _STOP

    return _STOP.get(reason) if reason else None


def _sync_iter(inner: Iterator[Any], state: StreamState) -> Iterator[Any]:
    try:
        for item in inner:
            if state.observe(item):
                continue
            yield item
    except GeneratorExit:
        state.finish("cancelled")
        raise
    except BaseException as exc:
        state.finish("error", exc)
        raise
    else:
        state.finish("success")
    finally:
        if not state.done:
            state.finish("cancelled")
        close = getattr(inner, "close", None)
        if close is not None:
            close()


async def _async_iter(inner: AsyncIterator[Any], state: StreamState) -> AsyncIterator[Any]:
    try:
        async for item in inner:
            if state.observe(item):
                continue
            yield item
    except GeneratorExit:
        state.finish("cancelled")
        raise
    except BaseException as exc:
        state.finish("error", exc)
        raise
    else:
        state.finish("success")
    finally:
        if not state.done:
            state.finish("cancelled")


def watch(stream: Any, call: Call) -> None:
    """Instrument ``stream`` in place (its iterator and ``close``)."""
    inner = getattr(stream, "_iterator", None)
    if inner is None:
        raise TypeError(f"unexpected OpenAI stream type {type(stream).__name__}: no _iterator")
    state = StreamState(call)
    ref = weakref.ref(stream)
    original_close = type(stream).close
    if inspect.isasyncgen(inner) or hasattr(inner, "__anext__"):
        stream._iterator = _async_iter(inner, state)

        async def aclose() -> None:
            try:
                s = ref()
                if s is not None:
                    await original_close(s)
            finally:
                state.finish("cancelled")

        stream.close = aclose
    else:
        stream._iterator = _sync_iter(inner, state)

        def close() -> None:
            try:
                s = ref()
                if s is not None:
                    original_close(s)
            finally:
                state.finish("cancelled")

        stream.close = close
    # a stream dropped without being read or closed still leaves one (cancelled) event
    state.finalizer = weakref.finalize(stream, state.finish, "cancelled")
