"""Reading OpenAI replies and stream chunks into a :class:`CallMeter` (chat, completions, embeddings, responses)."""

from __future__ import annotations

import dataclasses
from typing import Any

from meterline.core import usage as _usage
from meterline.core.usage import get_field as get
from meterline.integrations._call import CallMeter

FINISH_REASONS = {
    "stop": "end",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "content_filter",
}
_INCOMPLETE = {"max_output_tokens": "max_tokens", "content_filter": "content_filter"}
_TOOL_ITEMS = frozenset({"function_call", "custom_tool_call", "mcp_call", "computer_call"})
# Responses output items OpenAI bills per call (tool fees): item type -> TokenUsage field
_BILLED_TOOL_ITEMS = {
    "web_search_call": "web_searches",
    "file_search_call": "storage_searches",
    "code_interpreter_call": "code_executions",
}


def _finish(meter: CallMeter, reason: Any) -> None:
    if isinstance(reason, str) and reason in FINISH_REASONS:
        meter.stop_reason = FINISH_REASONS[reason]
        if meter.stop_reason == "tool_use":
            meter.tool_use = True


def _model(meter: CallMeter, obj: Any) -> None:
    model = get(obj, "model")
    if isinstance(model, str) and model:
        meter.response_model = model


def completion(meter: CallMeter, reply: Any) -> None:
    """A chat completion, a legacy completion or an embeddings reply."""
    _model(meter, reply)
    usage = get(reply, "usage")
    if usage is not None:
        meter.tokens = _usage.from_openai(usage, get(reply, "service_tier"))
    for choice in get(reply, "choices") or ():
        _finish(meter, get(choice, "finish_reason"))
        message = get(choice, "message")
        if get(message, "tool_calls"):
            meter.tool_use = True
            if meter.tool_calls is not None:
                for call in get(message, "tool_calls") or ():
                    fn = get(call, "function")
                    meter.tool_calls.append(
                        {"id": get(call, "id"), "name": get(fn, "name"), "arguments": get(fn, "arguments")}
                    )
        if meter.text_parts is not None:
            text = get(message, "content") if message is not None else get(choice, "text")
            if isinstance(text, str):
                meter.text_parts.append(text)


def chunk(meter: CallMeter, item: Any) -> None:
    """One chat/completions stream chunk."""
    _model(meter, item)
    usage = get(item, "usage")
    if usage is not None:
        meter.tokens = _usage.from_openai(usage, get(item, "service_tier"))
    for choice in get(item, "choices") or ():
        delta = get(choice, "delta")
        text = get(delta, "content") if delta is not None else get(choice, "text")
        if text or get(delta, "tool_calls"):
            meter.mark_first_token()
        if get(delta, "tool_calls"):
            meter.tool_use = True
            if meter.tool_calls is not None:
                stream_tool_calls(meter.tool_calls, get(delta, "tool_calls"))
        if isinstance(text, str):
            meter.out_chars += len(text)
            if meter.text_parts is not None:
                meter.text_parts.append(text)
        _finish(meter, get(choice, "finish_reason"))


def stream_tool_calls(calls: list[dict[str, Any]], deltas: Any) -> None:
    """Assemble streamed tool calls (OpenAI deltas: index, then id/name once, arguments in pieces)."""
    for d in deltas or ():
        index = get(d, "index")
        index = index if isinstance(index, int) else len(calls)
        while len(calls) <= index:
            calls.append({"id": None, "name": None, "arguments": ""})
        call = calls[index]
        fn = get(d, "function")
        if get(d, "id"):
            call["id"] = get(d, "id")
        if get(fn, "name"):
            call["name"] = get(fn, "name")
        call["arguments"] = str(call["arguments"] or "") + str(get(fn, "arguments") or "")


def is_usage_only(item: Any) -> bool:
    """The extra last chunk ``stream_options.include_usage`` adds (no choices, usage only)."""
    return not get(item, "choices") and get(item, "usage") is not None


def response(meter: CallMeter, reply: Any) -> None:
    """A Responses API ``Response`` object."""
    _model(meter, reply)
    usage = get(reply, "usage")
    billed = dict.fromkeys(_BILLED_TOOL_ITEMS.values(), 0)
    for item in get(reply, "output") or ():
        kind = get(item, "type")
        if kind in _TOOL_ITEMS:
            meter.tool_use = True
            if meter.tool_calls is not None:
                meter.tool_calls.append(
                    {"id": get(item, "call_id"), "name": get(item, "name"), "arguments": get(item, "arguments")}
                )
        if kind in _BILLED_TOOL_ITEMS:
            billed[_BILLED_TOOL_ITEMS[kind]] += 1
    if usage is not None:
        # every billed tool call is an output item: a reply with none used none
        meter.tokens = dataclasses.replace(
            _usage.from_openai(usage, get(reply, "service_tier")),
            web_searches=billed["web_searches"],
            storage_searches=billed["storage_searches"],
            code_executions=billed["code_executions"],
        )
    status = get(reply, "status")
    if status == "incomplete":
        meter.stop_reason = _INCOMPLETE.get(get(get(reply, "incomplete_details"), "reason"), "max_tokens")
    elif status == "completed":
        meter.stop_reason = "tool_use" if meter.tool_use else "end"
    if meter.text_parts is not None:
        text = get(reply, "output_text")
        if isinstance(text, str):
            meter.text_parts.append(text)


def response_event(meter: CallMeter, event: Any) -> tuple[str, str | None, str | None] | None:
    """One Responses stream event; ``(status, error_type, error_message)`` when it ends the call."""
    kind = get(event, "type")
    if kind in ("response.output_text.delta", "response.function_call_arguments.delta"):
        meter.mark_first_token()
        if kind == "response.output_text.delta":
            delta = str(get(event, "delta") or "")
            meter.out_chars += len(delta)
            if meter.text_parts is not None:
                meter.text_parts.append(delta)
        return None
    if kind in ("response.completed", "response.incomplete"):
        text_parts, meter.text_parts = meter.text_parts, None  # the text came with the deltas
        response(meter, get(event, "response"))
        meter.text_parts = text_parts
        return ("success", None, None)
    if kind == "response.created":
        _model(meter, get(event, "response"))
    elif kind == "response.failed":
        reply = get(event, "response")
        _model(meter, reply)
        usage = get(reply, "usage")
        if usage is not None:
            meter.tokens = _usage.from_openai(usage, get(reply, "service_tier"))
        error = get(reply, "error")
        return ("error", str(get(error, "code") or "response.failed"), str(get(error, "message") or "failed"))
    elif kind == "error":
        return ("error", str(get(event, "code") or "error"), str(get(event, "message") or "stream error"))
    return None
