"""Metering an OpenAI SDK ``Stream`` / ``AsyncStream`` in place (chat, completions, responses).

Same approach as ``_anthropic_stream``: the stream's ``_iterator`` is wrapped, ``close()`` noted, and a
``weakref.finalize`` catches streams dropped unread. When meterline itself added
``stream_options.include_usage`` to get the usage of a chat stream, the extra usage-only chunk that the
user did not ask for is read here and not passed on, so the user's iteration is unchanged.
"""

from __future__ import annotations

from typing import Any

from meterline import _errors
from meterline.integrations import _openai_usage as U
from meterline.integrations._call import CallMeter
from meterline.integrations._stream_meter import ametered, cancel_on_close, metered


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


def instrument_stream(stream: Any, state: StreamState, is_async: bool) -> None:
    wrap = ametered if is_async else metered
    stream._iterator = wrap(stream._iterator, state.meter, state.on_item, state.on_end)
    cancel_on_close(stream, state.meter, is_async)
