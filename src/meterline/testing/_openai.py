"""OpenAI-shaped endpoints: chat completions, text completions, embeddings, models (JSON and SSE)."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import time
import uuid
from typing import Any

from meterline.testing._call import TOOL_INPUT, Call, sse, tool_name
from meterline.testing._state import Usage

EMBEDDING_DIM = 8
MODELS = ("gpt-4o-mini", "gpt-4o", "o3-mini", "text-embedding-3-small", "gpt-3.5-turbo-instruct")
_FINISH = {None: "stop", "max_tokens": "length", "stop_sequence": "stop"}


def usage_json(u: Usage) -> dict[str, Any]:
    prompt = u.input + u.cache_read
    return {
        "prompt_tokens": prompt,
        "completion_tokens": u.output,
        "total_tokens": prompt + u.output,
        "prompt_tokens_details": {"cached_tokens": u.cache_read, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": u.reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def error_body(status: int, message: str) -> dict[str, Any]:
    kind = {400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_exceeded"}.get(
        status, "server_error"
    )
    return {"error": {"message": message, "type": kind, "param": None, "code": kind}}


def _finish(call: Call) -> str:
    return "tool_calls" if call.reply.tool_use else _FINISH[call.reply.stop]


def _words(text: str) -> list[str]:
    # Split keeping the separating spaces so the concatenated deltas equal the full text.
    parts = text.split(" ")
    return [p if i == 0 else " " + p for i, p in enumerate(parts)]


def _include_usage(call: Call) -> bool:
    opts = call.body.get("stream_options")
    return isinstance(opts, dict) and bool(opts.get("include_usage"))


def chat(call: Call) -> None:
    model = call.body.get("model", "")
    cid = "chatcmpl-" + uuid.uuid4().hex[:24]
    created = int(time.time())
    call_id = "call_" + uuid.uuid4().hex[:24]
    name = tool_name(call.body)
    if not call.stream:
        message: dict[str, Any] = {"role": "assistant", "content": call.reply.text, "refusal": None}
        if call.reply.tool_use:
            message["content"] = None
            message["tool_calls"] = [
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(TOOL_INPUT)}}
            ]
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": _finish(call)}
        obj = {"id": cid, "object": "chat.completion", "created": created, "model": model, "choices": [choice]}
        obj |= {"usage": usage_json(call.usage), "system_fingerprint": "fp_fake"}
        call.send_json(200, obj, {"x-request-id": call.request_id})
        return
    include_usage = _include_usage(call)

    def chunk(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> bytes:
        obj: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model}
        obj |= {"system_fingerprint": "fp_fake", "choices": choices}
        if include_usage:
            obj["usage"] = usage
        return sse(obj)

    def delta(d: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"index": 0, "delta": d, "logprobs": None, "finish_reason": finish}

    events = [chunk([delta({"role": "assistant", "content": "", "refusal": None})])]
    if call.reply.tool_use:
        head = {"index": 0, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
        events.append(chunk([delta({"tool_calls": [head]})]))
        args = json.dumps(TOOL_INPUT)
        for piece in (args[: len(args) // 2], args[len(args) // 2 :]):
            events.append(chunk([delta({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})]))
    else:
        events.extend(chunk([delta({"content": w})]) for w in _words(call.reply.text))
    events.append(chunk([delta({}, _finish(call))]))
    if include_usage:
        events.append(chunk([], usage_json(call.usage)))
    events.append(b"data: [DONE]\n\n")
    error = sse({"error": {"message": "fake stream failure", "type": "server_error", "code": "server_error"}})
    call.send_stream("text/event-stream", events, error, {"x-request-id": call.request_id})


def completion(call: Call) -> None:
    model = call.body.get("model", "")
    cid = "cmpl-" + uuid.uuid4().hex[:24]
    created = int(time.time())
    finish = _FINISH[call.reply.stop]
    u = call.usage
    usage = {"prompt_tokens": u.input + u.cache_read, "completion_tokens": u.output}
    usage["total_tokens"] = usage["prompt_tokens"] + u.output
    base = {"id": cid, "object": "text_completion", "created": created, "model": model}
    if not call.stream:
        choice = {"text": call.reply.text, "index": 0, "logprobs": None, "finish_reason": finish}
        call.send_json(200, base | {"choices": [choice], "usage": usage}, {"x-request-id": call.request_id})
        return
    words = _words(call.reply.text)
    events = [
        sse(base | {"choices": [{"text": w, "index": 0, "logprobs": None, "finish_reason": None}]}) for w in words
    ]
    events.append(sse(base | {"choices": [{"text": "", "index": 0, "logprobs": None, "finish_reason": finish}]}))
    if _include_usage(call):
        events.append(sse(base | {"choices": [], "usage": usage}))
    events.append(b"data: [DONE]\n\n")
    error = sse({"error": {"message": "fake stream failure", "type": "server_error", "code": "server_error"}})
    call.send_stream("text/event-stream", events, error, {"x-request-id": call.request_id})


def embedding_vector(text: str, dimensions: int = EMBEDDING_DIM) -> list[float]:
    """Deterministic unit-range vector for ``text`` (what the fake returns; exposed for tests)."""
    digest = hashlib.sha256(text.encode()).digest()
    return [digest[i % len(digest)] / 255.0 for i in range(dimensions)]


def embeddings(call: Call) -> None:
    raw = call.body.get("input", "")
    inputs = raw if isinstance(raw, list) else [raw]
    dims = call.body.get("dimensions") or EMBEDDING_DIM
    as_base64 = call.body.get("encoding_format") == "base64"
    data = []
    for index, item in enumerate(inputs):
        vector = embedding_vector(item if isinstance(item, str) else json.dumps(item), int(dims))
        value: Any = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() if as_base64 else vector
        data.append({"object": "embedding", "index": index, "embedding": value})
    usage = {"prompt_tokens": call.usage.input, "total_tokens": call.usage.input}
    obj = {"object": "list", "data": data, "model": call.body.get("model", ""), "usage": usage}
    call.send_json(200, obj, {"x-request-id": call.request_id})


def models(call: Call) -> None:
    data = [{"id": m, "object": "model", "created": 0, "owned_by": "meterline-fake"} for m in MODELS]
    call.send_json(200, {"object": "list", "data": data})
