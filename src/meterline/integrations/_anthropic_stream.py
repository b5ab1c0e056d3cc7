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

import functools
from collections.abc import Callable
from typing import Any

from meterline.core import errors as _errors
from meterline.integrations._call import CallMeter
from meterline.integrations._stream_meter import ametered, cancel_on_close, metered


def _on_event(meter: CallMeter, event: Any) -> None:
    try:
        if meter.anthropic_event(event):
            meter.success()
    except Exception as exc:  # noqa: BLE001 - a metering bug must not break the user's stream
        _errors.report("anthropic.stream_event", exc, reraise=False)


def _end_without_stop(meter: CallMeter) -> None:
    # The body ended cleanly but without message_stop: a truncated stream, not a finished message.
    if not meter.done:
        meter.error(None, "IncompleteStream", "the stream ended before message_stop")


def _item(meter: CallMeter) -> Callable[[Any], bool]:
    def on_item(event: Any) -> bool:
        # The bulk of a stream: text deltas after the first token. They tell nothing more without content
        # capture (the usage comes with message_start/message_delta), so skip the general path for them.
        if (
            meter.ttft_ms is not None
            and meter.text_parts is None
            and getattr(event, "type", None) == "content_block_delta"
        ):
            return True
        _on_event(meter, event)
        return True

    return on_item


def instrument_stream(stream: Any, meter: CallMeter) -> None:
    """Meter a sync ``Stream`` in place."""
    end = functools.partial(_end_without_stop, meter)
    stream.__dict__["_iterator"] = metered(stream._iterator, meter, _item(meter), end)
    cancel_on_close(stream, meter, is_async=False)


def instrument_async_stream(stream: Any, meter: CallMeter) -> None:
    """Meter an ``AsyncStream`` in place."""
    end = functools.partial(_end_without_stop, meter)
    stream.__dict__["_iterator"] = ametered(stream._iterator, meter, _item(meter), end)
    cancel_on_close(stream, meter, is_async=True)
