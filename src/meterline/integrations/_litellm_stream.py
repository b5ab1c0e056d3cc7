"""Stream hooks: class-level wrappers of LiteLLM's ``CustomStreamWrapper`` (every sync and async stream of
``completion``/``acompletion``/``text_completion``, also inside ``TextCompletionStreamWrapper`` and Router).

- ``__next__`` / ``__anext__``: note each chunk; at the end (StopIteration) one success event with the last
  usage the provider reported; an exception mid-way: one error event with the usage seen so far.
- ``aclose`` (called by the consumer, not by LiteLLM inside ``__anext__``) and ``__del__``: a stream given up
  before its end (consumer broke out, closed it, or dropped it and the garbage collector took it):
  one cancelled event with the usage seen so far.

LiteLLM's own end-of-stream logging runs on a thread pool or the async logging worker; these hooks do not
depend on it: the event is emitted on the consumer's thread when the stream ends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from meterline.core import errors as _errors
from meterline.integrations._litellm_call import ATTR, LiteLLMCall


def call_of(stream: Any) -> LiteLLMCall | None:
    """The open metered call a stream belongs to (via its Logging object), or None."""
    logging_obj = getattr(stream, "logging_obj", None)
    call = getattr(logging_obj, ATTR, None)
    if call is None or call.closed:
        return None
    return call  # type: ignore[no-any-return]


def _finish(stream: Any, call: LiteLLMCall, status: str, error: BaseException | None = None) -> None:
    try:
        call.finish_stream(stream, status, error)
    except Exception as exc:  # noqa: BLE001 - meterline must never break the caller's stream
        _errors.report("litellm stream end", exc)


def _chunk(call: LiteLLMCall, chunk: Any) -> None:
    try:
        call.on_chunk(chunk)
    except Exception as exc:  # noqa: BLE001 - meterline must never break the caller's stream
        _errors.report("litellm stream chunk", exc)


def wrap_next(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def __next__(self: Any) -> Any:
        call = call_of(self)
        if call is None:
            return original(self)
        try:
            chunk = original(self)
        except StopIteration:
            _finish(self, call, "success")
            raise
        except Exception as exc:
            _finish(self, call, "error", exc)
            raise
        except BaseException:  # KeyboardInterrupt, GeneratorExit: the consumer gave up
            _finish(self, call, "cancelled")
            raise
        _chunk(call, chunk)
        return chunk

    __next__.__wrapped__ = original  # type: ignore[attr-defined]
    return __next__


def wrap_anext(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    async def __anext__(self: Any) -> Any:
        call = call_of(self)
        if call is None:
            return await original(self)
        call.in_next = True
        try:
            chunk = await original(self)
        except StopAsyncIteration:
            _finish(self, call, "success")
            raise
        except Exception as exc:
            _finish(self, call, "error", exc)
            raise
        except BaseException:  # asyncio.CancelledError: the consumer's task was cancelled mid-stream
            _finish(self, call, "cancelled")
            raise
        finally:
            call.in_next = False
        _chunk(call, chunk)
        return chunk

    __anext__.__wrapped__ = original  # type: ignore[attr-defined]
    return __anext__


def wrap_aclose(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    async def aclose(self: Any) -> Any:
        call = call_of(self)
        # LiteLLM >= 1.108 closes the stream inside __anext__ before it raises a mid-stream failure or ends
        # the stream: not the consumer giving up; the __anext__ hook records what that call then raises.
        if call is not None and not call.in_next:
            _finish(self, call, "cancelled")
        return await original(self)

    aclose.__wrapped__ = original  # type: ignore[attr-defined]
    return aclose


def wrap_del(original: Callable[[Any], Any] | None) -> Callable[[Any], None]:
    def __del__(self: Any) -> None:
        try:
            call = call_of(self)
            if call is not None:
                call.finish_stream(self, "cancelled")
        except Exception as exc:  # noqa: BLE001 - a finalizer must not raise (it may run on any thread)
            _errors.report("litellm stream finalizer", exc, reraise=False)
        if original is not None:
            original(self)

    __del__.__wrapped__ = original  # type: ignore[attr-defined]
    return __del__
