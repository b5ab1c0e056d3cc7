"""Bedrock runtime: InvokeModel (Anthropic body and shape), Converse, and their event-stream variants."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

from meterline.testing import _anthropic, _eventstream
from meterline.testing._call import TOOL_INPUT, Call, tool_name

_ERROR_TYPES = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    503: "ServiceUnavailableException",
}
_STREAM_ERROR = json.dumps({"message": "fake stream failure", "originalStatusCode": 500}).encode()


def error_type(status: int) -> str:
    return _ERROR_TYPES.get(status, "InternalServerException")


def converse_usage(call: Call) -> dict[str, int]:
    u = call.usage
    return {
        "inputTokens": u.input,
        "outputTokens": u.output,
        "totalTokens": u.input + u.output + u.cache_read + u.cache_write,
        "cacheReadInputTokens": u.cache_read,
        "cacheWriteInputTokens": u.cache_write,
    }


def _stream(call: Call, events: list[bytes]) -> None:
    headers = {"x-amzn-RequestId": call.request_id}
    error = _eventstream.exception("modelStreamErrorException", _STREAM_ERROR)
    call.send_stream("application/vnd.amazon.eventstream", events, error, headers)


def invoke(call: Call, model: str) -> None:
    u = call.usage
    headers = {
        "x-amzn-RequestId": call.request_id,
        "x-amzn-bedrock-input-token-count": str(u.input),
        "x-amzn-bedrock-output-token-count": str(u.output),
        "x-amzn-bedrock-invocation-latency": str(call.elapsed_ms()),
    }
    if u.cache_read or u.cache_write:
        headers["x-amzn-bedrock-cache-read-input-token-count"] = str(u.cache_read)
        headers["x-amzn-bedrock-cache-write-input-token-count"] = str(u.cache_write)
    call.send_json(200, _anthropic.message_json(call, model), headers)


def invoke_stream(call: Call, model: str) -> None:
    payloads = _anthropic.stream_events(call, model)
    u = call.usage
    # Real Bedrock puts the invocation metrics inside the last (message_stop) Anthropic event.
    payloads[-1]["amazon-bedrock-invocationMetrics"] = {
        "inputTokenCount": u.input,
        "outputTokenCount": u.output,
        "invocationLatency": call.elapsed_ms(),
        "firstByteLatency": call.elapsed_ms(),
        "cacheReadInputTokenCount": u.cache_read,
        "cacheWriteInputTokenCount": u.cache_write,
    }
    events = []
    for payload in payloads:
        wrapped = {"bytes": base64.b64encode(json.dumps(payload).encode()).decode()}
        events.append(_eventstream.event("chunk", json.dumps(wrapped).encode()))
    _stream(call, events)


def _stop_reason(call: Call) -> str:
    if call.reply.tool_use:
        return "tool_use"
    return {None: "end_turn", "max_tokens": "max_tokens", "stop_sequence": "stop_sequence"}[call.reply.stop]


def converse(call: Call) -> None:
    if call.reply.tool_use:
        tool = {"toolUseId": "tooluse_" + uuid.uuid4().hex[:22], "name": tool_name(call.body), "input": TOOL_INPUT}
        content: list[dict[str, Any]] = [{"toolUse": tool}]
    else:
        content = [{"text": call.reply.text}]
    obj = {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": _stop_reason(call),
        "usage": converse_usage(call),
        "metrics": {"latencyMs": call.elapsed_ms()},
    }
    call.send_json(200, obj, {"x-amzn-RequestId": call.request_id})


def converse_stream(call: Call) -> None:
    def ev(kind: str, payload: dict[str, Any]) -> bytes:
        return _eventstream.event(kind, json.dumps(payload).encode())

    events = [ev("messageStart", {"role": "assistant"})]
    if call.reply.tool_use:
        start = {"toolUse": {"toolUseId": "tooluse_" + uuid.uuid4().hex[:22], "name": tool_name(call.body)}}
        events.append(ev("contentBlockStart", {"start": start, "contentBlockIndex": 0}))
        args = json.dumps(TOOL_INPUT)
        for piece in (args[: len(args) // 2], args[len(args) // 2 :]):
            events.append(ev("contentBlockDelta", {"delta": {"toolUse": {"input": piece}}, "contentBlockIndex": 0}))
    else:
        for i, word in enumerate(call.reply.text.split(" ")):
            text = word if i == 0 else " " + word
            events.append(ev("contentBlockDelta", {"delta": {"text": text}, "contentBlockIndex": 0}))
    events.append(ev("contentBlockStop", {"contentBlockIndex": 0}))
    events.append(ev("messageStop", {"stopReason": _stop_reason(call)}))
    events.append(ev("metadata", {"usage": converse_usage(call), "metrics": {"latencyMs": call.elapsed_ms()}}))
    _stream(call, events)


def handle(call: Call, model: str, op: str) -> None:
    if op == "invoke":
        invoke(call, model)
    elif op == "invoke-with-response-stream":
        invoke_stream(call, model)
    elif op == "converse":
        converse(call)
    else:
        converse_stream(call)
