"""The per-chunk fast paths of the stream wrappers (issue 18) read only what a plain content chunk carries; these
feed real SDK chunk objects and botocore-shaped messages and check that every other chunk still tells all it did:
first token, text (capture on), characters for the estimate of an abandoned stream, tool use, stop reason, usage."""

from __future__ import annotations

import json
from typing import Any

from openai.types.chat import ChatCompletionChunk

from meterline.integrations import _bedrock_stream
from meterline.integrations._call import CallMeter
from meterline.integrations._openai_stream import StreamState


def _chunk(delta: dict[str, Any] | None, finish: str | None = None, usage: dict[str, int] | None = None) -> Any:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return ChatCompletionChunk.model_validate(
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": choices,
            "usage": usage,
        }
    )


def _openai_stream(capture: bool) -> tuple[CallMeter, list[bool]]:
    meter = CallMeter(provider="openai", model="gpt-4o-mini", integration="openai", stream=True)
    if capture:
        meter.text_parts = []
    state = StreamState(meter, responses=False, hide_usage_chunk=True)
    tool = {"index": 0, "id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    items = [
        _chunk({"role": "assistant", "content": ""}),
        *(_chunk({"content": w}) for w in ("Hello", " wide", " world")),
        _chunk({"tool_calls": [tool]}),  # a tool call in the middle of plain text chunks
        _chunk({"content": "!"}),
        _chunk({}, finish="tool_calls"),
        _chunk(None, usage={"prompt_tokens": 9, "completion_tokens": 7, "total_tokens": 16}),
    ]
    return meter, [state.on_item(i) for i in items]


def test_openai_chat_stream_fast_path_keeps_every_fact() -> None:
    for capture in (False, True):
        meter, passed = _openai_stream(capture)
        assert passed == [True] * 7 + [False]  # only the usage chunk meterline asked for is hidden
        assert meter.ttft_ms is not None and meter.response_model == "gpt-4o-mini-2024-07-18"
        assert meter.out_chars == len("Hello wide world!")
        assert meter.tool_use and meter.stop_reason == "tool_use"
        assert (meter.tokens.input_tokens, meter.tokens.output_tokens) == (9, 7)
        assert meter.text_parts == (["", "Hello", " wide", " world", "!"] if capture else None)


class _Message:
    def __init__(self, event_type: str, payload: dict[str, Any]) -> None:
        self.headers = {":message-type": "event", ":event-type": event_type, ":content-type": "application/json"}
        self.payload = json.dumps(payload).encode()


def test_converse_stream_skips_only_what_tells_nothing(meter_db: Any) -> None:
    for capture in (False, True):
        meter = CallMeter(provider="bedrock", model="m", integration="bedrock", stream=True)
        if capture:
            meter.text_parts = []
        messages = [
            _Message("messageStart", {"role": "assistant"}),
            *(_Message("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": w}}) for w in ("a", "bc")),
            _Message("contentBlockStart", {"start": {"toolUse": {"toolUseId": "t", "name": "f"}}}),
            _Message("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{}"}}}),
            _Message("messageStop", {"stopReason": "tool_use"}),
            _Message("metadata", {"usage": {"inputTokens": 5, "outputTokens": 3, "totalTokens": 8}}),
        ]
        for m in messages:
            _bedrock_stream._on_message(meter, m)
        assert meter.done and meter.ttft_ms is not None and meter.tool_use and meter.stop_reason == "tool_use"
        assert (meter.tokens.input_tokens, meter.tokens.output_tokens) == (5, 3)
        assert meter.text_parts == (["a", "bc"] if capture else None)


def test_converse_stream_error_message_after_text_is_still_an_error(meter_db: Any) -> None:
    meter = CallMeter(provider="bedrock", model="m", integration="bedrock", stream=True)
    _bedrock_stream._on_message(meter, _Message("contentBlockDelta", {"delta": {"text": "a"}}))
    error = _Message("contentBlockDelta", {"message": "throttled"})
    error.headers = {":message-type": "exception", ":exception-type": "throttlingException"}
    _bedrock_stream._on_message(meter, error)
    [event] = meter_db.events()  # the exception ended the call as an error, not skipped as a text delta
    assert (event.status, event.error_type, event.error_message) == ("error", "throttlingException", "throttled")


def test_anthropic_stream_fast_path_keeps_usage_stop_and_text(meter_db: Any) -> None:
    from anthropic.types import (
        RawContentBlockDeltaEvent,
        RawContentBlockStartEvent,
        RawMessageDeltaEvent,
        RawMessageStartEvent,
        RawMessageStopEvent,
    )

    from meterline.integrations._anthropic_stream import _item

    message = {"id": "m", "type": "message", "role": "assistant", "model": "claude-haiku-4-5-20251001",
               "content": [], "stop_reason": None, "stop_sequence": None,
               "usage": {"input_tokens": 11, "output_tokens": 1}}  # fmt: skip
    events = [
        RawMessageStartEvent.model_validate({"type": "message_start", "message": message}),
        RawContentBlockStartEvent.model_validate(
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
        ),
        *(
            RawContentBlockDeltaEvent.model_validate(
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}}
            )
            for w in ("Hi", " there", "!")
        ),
        RawMessageDeltaEvent.model_validate(
            {"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 3}}
        ),
        RawMessageStopEvent.model_validate({"type": "message_stop"}),
    ]
    for capture in (False, True):
        meter = CallMeter(provider="anthropic", model="claude-haiku-4-5", integration="anthropic", stream=True)
        if capture:
            meter.text_parts = []
        on_item = _item(meter)
        assert all(on_item(e) for e in events)
        assert meter.done and meter.ttft_ms is not None and meter.stop_reason == "max_tokens"
        assert meter.text_parts == (["Hi", " there", "!"] if capture else None)
    # model and usage are read on the recorder's thread
    events = meter_db.events()
    assert [(e.status, e.input_tokens, e.output_tokens, e.stop_reason, e.response_model) for e in events] == [
        ("success", 11, 3, "max_tokens", "claude-haiku-4-5-20251001")
    ] * 2


def test_litellm_stream_usage_request_is_resolved_once_per_model_route() -> None:
    from meterline.integrations import litellm as ml_litellm

    ml_litellm._stream_options_ok.clear()
    first: dict[str, Any] = {"api_base": "http://127.0.0.1:9/v1"}
    ml_litellm._ask_for_stream_usage("openai/gpt-4o-mini", first)
    assert first["stream_options"] == {"include_usage": True}
    assert ml_litellm._stream_options_ok == {("openai/gpt-4o-mini", None, "http://127.0.0.1:9/v1"): True}
    second: dict[str, Any] = {"api_base": "http://127.0.0.1:9/v1"}
    ml_litellm._ask_for_stream_usage("openai/gpt-4o-mini", second)  # from the cache: the same answer
    assert second["stream_options"] == {"include_usage": True}
    unknown: dict[str, Any] = {}
    ml_litellm._ask_for_stream_usage("no-such-provider-xyz/some-model", unknown)
    assert "stream_options" not in unknown  # LiteLLM reports the bad model to the caller itself
    assert len(ml_litellm._stream_options_ok) == 1  # a failed resolution is not cached
