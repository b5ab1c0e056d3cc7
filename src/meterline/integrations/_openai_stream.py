"""Metering an OpenAI SDK ``Stream`` / ``AsyncStream`` in place (chat, completions, responses).

Same approach as ``_anthropic_stream``: the stream's ``_iterator`` is wrapped, ``close()`` noted, and a
``weakref.finalize`` catches streams dropped unread. When meterline itself added
``stream_options.include_usage`` to get the usage of a chat stream, the extra usage-only chunk that the
user did not ask for is read here and not passed on, so the user's iteration is unchanged.
"""

from __future__ import annotations

from typing import Any

from meterline.core import errors as _errors
from meterline.integrations import _openai_usage as openai_usage
from meterline.integrations._call import CallMeter
from meterline.integrations._stream_meter import ametered, cancel_on_close, metered


class StreamState:
    """What the wrapper needs besides the meter: which API, and whether to hide the usage chunk."""

    __slots__ = ("hide_usage_chunk", "meter", "plain_chunk", "responses")

    def __init__(self, meter: CallMeter, *, responses: bool, hide_usage_chunk: bool) -> None:
        self.meter = meter
        self.responses = responses
        self.hide_usage_chunk = hide_usage_chunk
        self.plain_chunk: Any = None  # the SDK's ChatCompletionChunk class, once a chunk showed it

    def on_item(self, item: Any) -> bool:
        """Feed one item; False when it must not reach the user."""
        meter = self.meter
        try:
            if type(item) is self.plain_chunk and meter.response_model is not None and item.usage is None:
                # The bulk of a chat stream: one choice with a text delta, no usage, no finish reason, no tool
                # call. All it tells is its length (and its text, with content capture on), so only that is
                # read, as plain attribute reads; any other chunk goes through U.chunk below.
                choices = item.choices
                if len(choices) == 1:
                    choice = choices[0]
                    delta = choice.delta
                    text = delta.content
                    if (
                        choice.finish_reason is None
                        and delta.tool_calls is None
                        and isinstance(text, str)
                        and meter.ttft_ms is not None
                    ):
                        meter.out_chars += len(text)
                        if meter.text_parts is not None:
                            meter.text_parts.append(text)
                        return True
            if self.responses:
                outcome = openai_usage.response_event(meter, item)
                if outcome is not None:
                    status, kind, message = outcome
                    if status == "success":
                        meter.success()
                    else:
                        meter.error(None, kind, message)
                return True
            openai_usage.chunk(meter, item)
            if self.plain_chunk is None and type(item).__name__ == "ChatCompletionChunk":
                self.plain_chunk = type(item)
            return not (self.hide_usage_chunk and openai_usage.is_usage_only(item))
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
