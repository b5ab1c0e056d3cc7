"""Metering an Anthropic SDK ``Stream`` / ``AsyncStream`` in place (the user keeps the same object).

The SDK's streams read events from a cached ``_iterator`` generator; both ``__iter__`` and ``__next__``
go through it, and ``MessageStream`` (``messages.stream()``) iterates the raw stream the same way. We
replace that generator with one that feeds each event to the :class:`CallMeter` and ends the call:

* ``message_stop``: success (even if the consumer never asks for the end of the iterator);
* an exception while reading (error SSE event, dropped connection): error, then re-raised unchanged;
* the generator closed early, ``stream.close()`` (also what ``with ... as stream`` and
  ``MessageStream.close()`` call), or the stream garbage collected: cancelled, with the usage seen so far.

Our generator holds no reference to the stream, so dropping the stream still frees it at once.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any

from meterline import _errors
from meterline.integrations._call import CallMeter


def _on_event(meter: CallMeter, event: Any) -> None:
    try:
        if meter.anthropic_event(event):
            meter.success()
    except Exception as exc:  # noqa: BLE001 - a metering bug must not break the user's stream
        _errors.report("anthropic.stream_event", exc, reraise=False)


def _metered(source: Iterator[Any], meter: CallMeter) -> Iterator[Any]:
    try:
        for event in source:
            _on_event(meter, event)
            yield event
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
        _end_without_stop(meter)
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()


async def _ametered(source: AsyncIterator[Any], meter: CallMeter) -> AsyncIterator[Any]:
    try:
        async for event in source:
            _on_event(meter, event)
            yield event
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
        _end_without_stop(meter)
    finally:
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()


def _end_without_stop(meter: CallMeter) -> None:
    # The body ended cleanly but without message_stop: a truncated stream, not a finished message.
    if not meter.done:
        meter.error(None, "IncompleteStream", "the stream ended before message_stop")


def instrument_stream(stream: Any, meter: CallMeter) -> None:
    """Meter a sync ``Stream`` in place."""
    stream.__dict__["_iterator"] = _metered(stream._iterator, meter)
    ref = weakref.ref(stream)
    cls_close = type(stream).close

    def close() -> None:
        meter.cancel()  # no-op when the message already finished
        s = ref()
        if s is not None:
            cls_close(s)

    stream.__dict__["close"] = close
    _finalize(stream, meter)


def instrument_async_stream(stream: Any, meter: CallMeter) -> None:
    """Meter an ``AsyncStream`` in place."""
    stream.__dict__["_iterator"] = _ametered(stream._iterator, meter)
    ref = weakref.ref(stream)
    cls_close = type(stream).close

    async def close() -> None:
        meter.cancel()
        s = ref()
        if s is not None:
            await cls_close(s)

    stream.__dict__["close"] = close
    _finalize(stream, meter)


def _finalize(stream: Any, meter: CallMeter) -> None:
    # A stream dropped without being read or closed: cancelled once it is collected. Not at interpreter
    # exit (atexit=False): the recorder may already be shut down then.
    fin = weakref.finalize(stream, meter.cancel)
    fin.atexit = False
