"""Metering botocore ``EventStream`` replies of ``converse_stream`` and ``invoke_model_with_response_stream``.

botocore's ``EventStream`` reads raw event-stream messages from its ``_event_generator`` and parses each
one as the user iterates. We wrap that raw generator (the user keeps the same ``EventStream`` object and
still gets botocore's own parsing and exceptions) and read, per message, only what metering needs:

* Converse: ``contentBlockStart``/``contentBlockDelta`` (tool use, first token), ``messageStop``
  (stop reason) and ``metadata`` (usage; the last event: the call is a success there);
* InvokeModel (Anthropic models): each ``chunk`` is a base64 Anthropic stream event (``message_start``,
  ``message_delta``, ``message_stop``); the last chunk carries ``amazon-bedrock-invocationMetrics``, the
  usage of models without Anthropic's usage fields;
* an ``exception``/``error`` message (e.g. ``modelStreamErrorException``): an error event named after it;
  botocore then raises its ``EventStreamError`` to the user as usual.

Abandoned (closed, or garbage collected before the end): cancelled, with the usage seen so far.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from meterline.core import errors as _errors
from meterline.core import usage as _usage
from meterline.core.usage import get_field as get
from meterline.integrations._call import CallMeter
from meterline.integrations._stream_meter import cancel_on_close, metered


def _json(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        return None


def _apply_invocation_metrics(meter: CallMeter, metrics: Any) -> None:
    # Bedrock's own counts, for models that do not report Anthropic-style usage in the stream.
    if meter.tokens.total_tokens == 0 and isinstance(metrics, dict):
        meter.tokens = _usage.TokenUsage(
            input_tokens=_usage._int(metrics.get("inputTokenCount")),
            cache_read_tokens=_usage._int(metrics.get("cacheReadInputTokenCount")),
            cache_write_tokens=_usage._int(metrics.get("cacheWriteInputTokenCount")),
            output_tokens=_usage._int(metrics.get("outputTokenCount")),
        )


def _converse_event(meter: CallMeter, kind: str, data: Any) -> None:
    if kind == "contentBlockDelta":
        meter.mark_first_token()
        delta = get(data, "delta")
        if meter.text_parts is not None and isinstance(get(delta, "text"), str):
            meter.text_parts.append(delta["text"])
    elif kind == "contentBlockStart":
        if get(get(data, "start"), "toolUse") is not None:
            meter.tool_use = True
    elif kind == "messageStop":
        meter.set_stop(get(data, "stopReason"))
    elif kind == "metadata":
        meter.tokens = _usage.from_bedrock_converse(get(data, "usage"), get(get(data, "serviceTier"), "type"))
        meter.success()


def _invoke_chunk(meter: CallMeter, data: Any) -> None:
    raw = get(data, "bytes")
    if not isinstance(raw, str):
        return
    event = _json(base64.b64decode(raw))
    if not isinstance(event, dict):
        return
    # read now: the invocation metrics at the end stand in for usage only when these events gave none
    finished = meter.anthropic_event(event, defer=False) if "type" in event else False
    metrics = event.get("amazon-bedrock-invocationMetrics")
    if metrics is not None:
        _apply_invocation_metrics(meter, metrics)
        finished = True
    if finished:
        meter.success()


def _on_message(meter: CallMeter, message: Any) -> None:
    try:
        headers = message.headers
        if (
            meter.ttft_ms is not None
            and meter.text_parts is None
            and headers.get(":event-type") == "contentBlockDelta"
            and headers.get(":message-type") == "event"
        ):
            return  # the bulk of a Converse stream: after the first token it tells nothing without capture
        kind = headers.get(":message-type")
        if kind in ("exception", "error"):
            name = headers.get(":exception-type") or headers.get(":error-code") or "EventStreamError"
            body = _json(message.payload)
            text = get(body, "message") if isinstance(body, dict) else None
            meter.error(None, str(name), str(text or headers.get(":error-message") or name))
            return
        event_type = headers.get(":event-type")
        if event_type == "chunk":
            _invoke_chunk(meter, _json(message.payload))
        elif isinstance(event_type, str):
            _converse_event(meter, event_type, _json(message.payload))
    except Exception as exc:  # noqa: BLE001 - a metering bug must not break the user's stream
        _errors.report("bedrock.stream_event", exc, reraise=False)


def _end(meter: CallMeter) -> None:
    if not meter.done:
        if meter.stop_reason is not None:
            meter.success()
        else:
            meter.error(None, "IncompleteStream", "the event stream ended before the message did")


def instrument_event_stream(stream: Any, meter: CallMeter) -> None:
    """Meter a botocore ``EventStream`` in place."""

    def on_item(message: Any) -> bool:
        _on_message(meter, message)
        return True

    stream.__dict__["_event_generator"] = metered(stream._event_generator, meter, on_item, lambda: _end(meter))
    cancel_on_close(stream, meter, is_async=False)
