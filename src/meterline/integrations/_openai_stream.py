"""Metering an OpenAI SDK ``Stream`` / ``AsyncStream`` in place (chat, completions, responses).

Same approach as ``_anthropic_stream``: the stream's ``_iterator`` is wrapped, ``close()`` noted, and a
``weakref.finalize`` catches streams dropped unread. When meterline itself added
``stream_options.include_usage`` to get the usage of a chat stream, the extra usage-only chunk that the
user did not ask for is read here and not passed on, so the user's iteration is unchanged.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any

from meterline import _errors
from meterline.integrations import _openai_usage as U
from meterline.integrations._call import CallMeter


class StreamState:
    """What the wrapper needs besides the meter: which API, and whether to hide the usage chunk."""

    __slots__ = ("hide_usage_chunk", "meter", "responses")

    def __init__(self, meter: CallMeter, *, responses: bool, hide_usage_chunk: bool) -> None:
        self.meter = meter
        self.responses = responses
        self.hide_usage_chunk = hide_usage_chunk

    def on_item(self, item: Any) -> bool:
        """Feed one item; False when it must not reach the user."""
        meter = self.meter
        try:
            if self.responses:
                outcome = U.response_event(meter, item)
                if outcome is not None:
                    status, kind, message = outcome
                    if status == "success":
                        meter.success()
                    else:
                        meter.error(None, kind, message)
                return True
            U.chunk(meter, item)
            return not (self.hide_usage_chunk and U.is_usage_only(item))
        except Exception as exc:  # noqa: BLE001 - a metering bug must not break the user's stream
            _errors.report("openai.stream_item", exc, reraise=False)
            return True

    def on_end(self) -> None:
        meter = self.meter
        if meter.done:
            return
        if self.responses or meter.stop_reason is None:
            meter.error(None, "IncompleteStream", "the stream ended before the reply did")
        else:
            meter.success()


def _metered(source: Iterator[Any], state: StreamState) -> Iterator[Any]:
    meter = state.meter
    try:
        for item in source:
            if state.on_item(item):
                yield item
    except GeneratorExit:
        meter.cancel()
        raise
    except Exception as exc:
        meter.error(exc)
        raise
    except BaseException:
        meter.cancel()
        raise
    else:
        state.on_end()
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()


async def _ametered(source: AsyncIterator[Any], state: StreamState) -> AsyncIterator[Any]:
    meter = state.meter
    try:
        async for item in source:
            if state.on_item(item):
                yield item
    except GeneratorExit:
        meter.cancel()
        raise
    except Exception as exc:
        meter.error(exc)
        raise
    except BaseException:
        meter.cancel()
        raise
    else:
        state.on_end()
    finally:
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()


def instrument_stream(stream: Any, state: StreamState, is_async: bool) -> None:
    meter = state.meter
    stream._iterator = _ametered(stream._iterator, state) if is_async else _metered(stream._iterator, state)
    ref = weakref.ref(stream)
    cls_close = type(stream).close
    if is_async:

        async def aclose() -> None:
            meter.cancel()
            s = ref()
            if s is not None:
                await cls_close(s)

        stream.close = aclose
    else:

        def close() -> None:
            meter.cancel()
            s = ref()
            if s is not None:
                cls_close(s)

        stream.close = close
    fin = weakref.finalize(stream, meter.cancel)
    fin.atexit = False
