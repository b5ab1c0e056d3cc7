"""OpenAI Responses API shape (``POST /v1/responses``): JSON and the typed SSE event stream."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from meterline.testing._call import TOOL_INPUT, Call, sse, tool_name
from meterline.testing._state import Usage


def usage_json(u: Usage) -> dict[str, Any]:
    # Like chat completions, input_tokens INCLUDES cached tokens; output_tokens includes reasoning.
    return {
        "input_tokens": u.input + u.cache_read,
        "input_tokens_details": {"cached_tokens": u.cache_read},
        "output_tokens": u.output,
        "output_tokens_details": {"reasoning_tokens": u.reasoning},
        "total_tokens": u.input + u.cache_read + u.output,
    }


def _output(call: Call) -> list[dict[str, Any]]:
    if call.reply.tool_use:
        return [
            {
                "type": "function_call",
                "id": "fc_" + uuid.uuid4().hex[:24],
                "call_id": "call_" + uuid.uuid4().hex[:24],
                "name": tool_name(call.body),
                "arguments": json.dumps(TOOL_INPUT),
                "status": "completed",
            }
        ]
    text = {"type": "output_text", "text": call.reply.text, "annotations": []}
    item = {"type": "message", "id": "msg_" + uuid.uuid4().hex[:24], "status": "completed", "role": "assistant"}
    return [item | {"content": [text]}]


def _response(call: Call, rid: str, status: str, output: list[dict[str, Any]], usage: Any) -> dict[str, Any]:
    incomplete = {"reason": "max_output_tokens"} if status == "incomplete" else None
    return {
        "id": rid,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": call.body.get("model", ""),
        "output": output,
        "usage": usage,
        "incomplete_details": incomplete,
        "error": None,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": call.body.get("tools", []),
    }


def responses(call: Call) -> None:
    rid = "resp_" + uuid.uuid4().hex[:24]
    final_status = "incomplete" if call.reply.stop == "max_tokens" else "completed"
    output = _output(call)
    if not call.stream:
        obj = _response(call, rid, final_status, output, usage_json(call.usage))
        call.send_json(200, obj, {"x-request-id": call.request_id})
        return
    seq = iter(range(1_000_000))

    def event(kind: str, **fields: Any) -> bytes:
        return sse({"type": kind, "sequence_number": next(seq), **fields}, event=kind)

    events = [event("response.created", response=_response(call, rid, "in_progress", [], None))]
    item = output[0]
    item_id = item["id"]
    if call.reply.tool_use:
        args = item["arguments"]
        events.append(event("response.output_item.added", output_index=0, item=item | {"arguments": ""}))
        for piece in (args[: len(args) // 2], args[len(args) // 2 :]):
            events.append(event("response.function_call_arguments.delta", item_id=item_id, output_index=0, delta=piece))
        events.append(event("response.function_call_arguments.done", item_id=item_id, output_index=0, arguments=args))
    else:
        part = {"type": "output_text", "text": "", "annotations": []}
        where = {"item_id": item_id, "output_index": 0, "content_index": 0}
        events.append(event("response.output_item.added", output_index=0, item=item | {"content": []}))
        events.append(event("response.content_part.added", part=part, **where))
        words = call.reply.text.split(" ")
        for i, word in enumerate(words):
            events.append(event("response.output_text.delta", delta=word if i == 0 else " " + word, **where))
        events.append(event("response.output_text.done", text=call.reply.text, **where))
        events.append(event("response.content_part.done", part=part | {"text": call.reply.text}, **where))
    events.append(event("response.output_item.done", output_index=0, item=item))
    done = "response.incomplete" if final_status == "incomplete" else "response.completed"
    events.append(event(done, response=_response(call, rid, final_status, output, usage_json(call.usage))))
    error = event("error", code="server_error", message="fake stream failure", param=None)
    call.send_stream("text/event-stream", events, error, {"x-request-id": call.request_id})
