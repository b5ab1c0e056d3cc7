"""Anthropic Messages API shape (JSON and SSE); Bedrock InvokeModel reuses the same bodies."""

from __future__ import annotations

import json
import uuid
from typing import Any

from meterline.testing._call import TOOL_INPUT, Call, sse, tool_name
from meterline.testing._state import Usage

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def usage_json(u: Usage, output: int | None = None) -> dict[str, Any]:
    return {
        "input_tokens": u.input,
        "cache_creation_input_tokens": u.cache_write,
        "cache_read_input_tokens": u.cache_read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": u.cache_write - u.cache_write_1h,
            "ephemeral_1h_input_tokens": u.cache_write_1h,
        },
        "output_tokens": u.output if output is None else output,
        "service_tier": "standard",
    }


def error_body(status: int, message: str) -> dict[str, Any]:
    kind = _ERROR_TYPES.get(status, "overloaded_error" if status == 503 else "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def stop_reason(call: Call) -> str:
    if call.reply.tool_use:
        return "tool_use"
    return {None: "end_turn", "max_tokens": "max_tokens", "stop_sequence": "stop_sequence"}[call.reply.stop]


def _stop_sequence(call: Call) -> str | None:
    if call.reply.stop != "stop_sequence":
        return None
    seqs = call.body.get("stop_sequences")
    return seqs[0] if isinstance(seqs, list) and seqs and isinstance(seqs[0], str) else "STOP"


def message_json(call: Call, model: str) -> dict[str, Any]:
    if call.reply.tool_use:
        content: list[dict[str, Any]] = [
            {
                "type": "tool_use",
                "id": "toolu_" + uuid.uuid4().hex[:24],
                "name": tool_name(call.body),
                "input": TOOL_INPUT,
            }
        ]
    else:
        content = [{"type": "text", "text": call.reply.text}]
    return {
        "id": "msg_" + uuid.uuid4().hex[:24],
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(call),
        "stop_sequence": _stop_sequence(call),
        "usage": usage_json(call.usage),
    }


def stream_events(call: Call, model: str) -> list[dict[str, Any]]:
    """The SSE event payloads of a streamed message, in order (each has its ``type``)."""
    start = message_json(call, model)
    start["content"], start["stop_reason"], start["stop_sequence"] = [], None, None
    start["usage"] = usage_json(call.usage, output=1)
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    if call.reply.tool_use:
        block = {"type": "tool_use", "id": "toolu_" + uuid.uuid4().hex[:24], "name": tool_name(call.body), "input": {}}
        events.append({"type": "content_block_start", "index": 0, "content_block": block})
        events.append({"type": "ping"})
        args = json.dumps(TOOL_INPUT)
        for piece in (args[: len(args) // 2], args[len(args) // 2 :]):
            delta = {"type": "input_json_delta", "partial_json": piece}
            events.append({"type": "content_block_delta", "index": 0, "delta": delta})
    else:
        events.append({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
        events.append({"type": "ping"})
        parts = call.reply.text.split(" ")
        for i, word in enumerate(parts):
            delta = {"type": "text_delta", "text": word if i == 0 else " " + word}
            events.append({"type": "content_block_delta", "index": 0, "delta": delta})
    events.append({"type": "content_block_stop", "index": 0})
    stop = {"stop_reason": stop_reason(call), "stop_sequence": _stop_sequence(call)}
    u = call.usage
    final_usage = {"output_tokens": u.output}
    events.append({"type": "message_delta", "delta": stop, "usage": final_usage})
    events.append({"type": "message_stop"})
    return events


def messages(call: Call) -> None:
    model = call.body.get("model", "")
    headers = {"request-id": call.request_id, "anthropic-organization-id": "fake-org"}
    if not call.stream:
        call.send_json(200, message_json(call, model), headers)
        return
    events = [sse(e, e["type"]) for e in stream_events(call, model)]
    error = sse(error_body(529, "Overloaded (fake stream failure)"), "error")
    call.send_stream("text/event-stream", events, error, headers)


def count_tokens(call: Call) -> None:
    call.send_json(200, {"input_tokens": call.usage.input})
