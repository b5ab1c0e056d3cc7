"""The fake provider against the REAL openai, anthropic and boto3 clients: shapes, streams, failures."""

from __future__ import annotations

import json
import math
import os
from typing import Any

import anthropic
import boto3
import httpx
import openai
import pytest
from botocore.exceptions import ClientError, EventStreamError

from meterline.testing import DEFAULT_REPLY, FakeProvider, default_usage

MSGS = [{"role": "user", "content": "What is the weather in Paris today?"}]  # 35 chars -> 9 tokens
BEDROCK_MODEL = "us.anthropic.claude-3-5-sonnet-20240620-v1:0"
BEDROCK_BODY = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50, "messages": MSGS}


def oai(fake: Any, retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-fake", max_retries=retries)


def anth(fake: Any, retries: int = 0) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key="sk-fake", max_retries=retries)


def bedrock(fake: Any) -> Any:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "x")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "x")
    from botocore.config import Config

    cfg = Config(retries={"total_max_attempts": 1, "mode": "standard"})
    return boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=fake.bedrock_endpoint_url, config=cfg)


def test_default_usage_is_chars_over_4_and_reply_words() -> None:
    u = default_usage({"system": "abcd", "messages": [{"role": "user", "content": [{"type": "text", "text": "ef"}]}]})
    assert (u.input, u.output) == (math.ceil(6 / 4), len(DEFAULT_REPLY.split()))
    assert default_usage({"messages": MSGS}).input == 9


def test_openai_chat_usage_shape_with_cache_and_reasoning(fake_provider: Any) -> None:
    fake_provider.set_usage(input=100, output=40, cache_read=30, reasoning=12)
    r = oai(fake_provider).chat.completions.create(model="gpt-4o-mini", messages=MSGS)  # type: ignore[arg-type]
    assert r.model == "gpt-4o-mini" and r.choices[0].message.content == DEFAULT_REPLY
    assert r.choices[0].finish_reason == "stop"
    u = r.usage
    assert u is not None and (u.prompt_tokens, u.completion_tokens, u.total_tokens) == (130, 40, 170)
    assert u.prompt_tokens_details is not None and u.prompt_tokens_details.cached_tokens == 30
    assert u.completion_tokens_details is not None and u.completion_tokens_details.reasoning_tokens == 12
    req = fake_provider.requests[-1]
    assert (req.method, req.path, req.body["messages"]) == ("POST", "/v1/chat/completions", MSGS)
    assert req.headers["authorization"] == "Bearer sk-fake"


def test_openai_stream_usage_chunk_only_when_requested(fake_provider: Any) -> None:
    client = oai(fake_provider)
    plain = list(client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True))  # type: ignore[call-overload]
    assert all(c.choices and c.usage is None for c in plain)
    assert "".join(c.choices[0].delta.content or "" for c in plain) == DEFAULT_REPLY
    with_usage = list(
        client.chat.completions.create(  # type: ignore[call-overload]
            model="gpt-4o-mini", messages=MSGS, stream=True, stream_options={"include_usage": True}
        )
    )
    assert len(with_usage) == len(plain) + 1
    last = with_usage[-1]
    assert last.choices == [] and last.usage.prompt_tokens == 9 and last.usage.completion_tokens == 6


def test_openai_tool_calls_and_header_overrides(fake_provider: Any) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    headers = {"x-fake-tool-use": "1", "x-fake-usage": json.dumps({"input": 7, "output": 3})}
    client = oai(fake_provider)
    r = client.chat.completions.create(model="gpt-4o", messages=MSGS, tools=tools, extra_headers=headers)  # type: ignore[arg-type]
    assert r.choices[0].finish_reason == "tool_calls"
    call = r.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "lookup" and json.loads(call.function.arguments) == {"location": "Paris"}  # type: ignore[union-attr]
    assert r.usage is not None and (r.usage.prompt_tokens, r.usage.completion_tokens) == (7, 3)
    chunks = list(
        client.chat.completions.create(model="gpt-4o", messages=MSGS, tools=tools, stream=True, extra_headers=headers)
    )  # type: ignore[call-overload]
    args = "".join(
        c.choices[0].delta.tool_calls[0].function.arguments or ""
        for c in chunks
        if c.choices and c.choices[0].delta.tool_calls
    )
    assert json.loads(args) == {"location": "Paris"} and chunks[-1].choices[0].finish_reason == "tool_calls"
    r2 = client.chat.completions.create(model="gpt-4o", messages=MSGS, extra_headers={"x-fake-stop": "max_tokens"})  # type: ignore[arg-type]
    assert r2.choices[0].finish_reason == "length"


def test_openai_completions_embeddings_models(fake_provider: Any) -> None:
    client = oai(fake_provider)
    c = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="12345678")
    assert c.choices[0].text == DEFAULT_REPLY and c.usage is not None and c.usage.prompt_tokens == 2
    parts = list(
        client.completions.create(
            model="gpt-3.5-turbo-instruct", prompt="x", stream=True, stream_options={"include_usage": True}
        )
    )
    assert (
        "".join(p.choices[0].text for p in parts if p.choices) == DEFAULT_REPLY
        and parts[-1].usage.completion_tokens == 6
    )  # type: ignore[union-attr]
    e = client.embeddings.create(model="text-embedding-3-small", input=["abcd", "efgh"], dimensions=5)
    assert [len(d.embedding) for d in e.data] == [5, 5] and e.usage.prompt_tokens == 2
    assert fake_provider.requests[-1].body["encoding_format"] == "base64"  # the SDK's default; decoded fine
    assert "gpt-4o-mini" in [m.id for m in client.models.list()]
    no_prefix = httpx.post(fake_provider.url + "/chat/completions", json={"model": "m", "messages": MSGS})
    assert no_prefix.json()["usage"]["prompt_tokens"] == 9


def test_openai_error_with_retry_after_is_retried_by_sdk(fake_provider: Any) -> None:
    fake_provider.fail_next(status=429, retry_after=0, path_contains="chat")
    r = oai(fake_provider, retries=1).chat.completions.create(model="gpt-4o-mini", messages=MSGS)  # type: ignore[arg-type]
    assert r.choices[0].message.content == DEFAULT_REPLY and len(fake_provider.requests) == 2
    fake_provider.fail_next(status=500, times=1)
    with pytest.raises(openai.InternalServerError) as info:
        oai(fake_provider).chat.completions.create(model="gpt-4o-mini", messages=MSGS)  # type: ignore[arg-type]
    assert info.value.status_code == 500
    with pytest.raises(openai.APIStatusError) as forced:
        oai(fake_provider).chat.completions.create(model="m", messages=MSGS, extra_headers={"x-fake-status": "503"})  # type: ignore[arg-type]
    assert forced.value.status_code == 503


def test_openai_stream_disconnect(fake_provider: Any) -> None:
    fake_provider.fail_stream_after(3)
    seen = []
    with pytest.raises((httpx.RemoteProtocolError, openai.APIConnectionError)):
        for chunk in oai(fake_provider).chat.completions.create(model="m", messages=MSGS, stream=True):  # type: ignore[call-overload]
            seen.append(chunk)
    assert len(seen) == 3


def test_anthropic_message_usage_shape(fake_provider: Any) -> None:
    fake_provider.set_usage(input=10, output=20, cache_read=300, cache_write=50, cache_write_1h=20)
    m = anth(fake_provider).messages.create(model="claude-sonnet-4-5", max_tokens=100, messages=MSGS)  # type: ignore[arg-type]
    assert m.model == "claude-sonnet-4-5" and m.stop_reason == "end_turn"
    u = m.usage
    assert (u.input_tokens, u.output_tokens, u.cache_read_input_tokens, u.cache_creation_input_tokens) == (
        10,
        20,
        300,
        50,
    )
    assert u.cache_creation is not None and u.cache_creation.ephemeral_5m_input_tokens == 30
    assert u.cache_creation.ephemeral_1h_input_tokens == 20
    assert fake_provider.requests[-1].path == "/v1/messages"


def test_anthropic_stream_and_stop_reasons(fake_provider: Any) -> None:
    client = anth(fake_provider)
    with client.messages.stream(model="claude-sonnet-4-5", max_tokens=100, messages=MSGS) as stream:  # type: ignore[arg-type]
        types = [e.type for e in stream]
        final = stream.get_final_message()
    assert types[0] == "message_start" and "message_delta" in types and final.content[0].text == DEFAULT_REPLY  # type: ignore[union-attr]
    assert (final.usage.input_tokens, final.usage.output_tokens) == (9, 6)
    raw = list(client.messages.create(model="c", max_tokens=5, messages=MSGS, stream=True))  # type: ignore[arg-type]
    assert raw[0].type == "message_start" and raw[0].message.usage.output_tokens == 1
    fake_provider.set_reply(text="a b c", stop="stop_sequence")
    m = client.messages.create(model="c", max_tokens=5, messages=MSGS, stop_sequences=["END"])  # type: ignore[arg-type]
    assert (m.stop_reason, m.stop_sequence, m.usage.output_tokens) == ("stop_sequence", "END", 3)
    fake_provider.set_reply(tool_use=True)
    tools = [{"name": "lookup", "input_schema": {"type": "object"}}]
    with client.messages.stream(model="c", max_tokens=5, messages=MSGS, tools=tools) as stream:  # type: ignore[arg-type]
        tm = stream.get_final_message()
    assert tm.stop_reason == "tool_use" and tm.content[0].input == {"location": "Paris"}  # type: ignore[union-attr]
    beta = httpx.post(fake_provider.url + "/v1/messages?beta=true", json={"model": "c", "messages": MSGS})
    assert beta.json()["stop_reason"] == "tool_use" and fake_provider.requests[-1].path == "/v1/messages?beta=true"


def test_anthropic_errors_and_stream_error_event(fake_provider: Any) -> None:
    fake_provider.fail_next(status=429, retry_after=7)
    with pytest.raises(anthropic.RateLimitError) as info:
        anth(fake_provider).messages.create(model="c", max_tokens=5, messages=MSGS)  # type: ignore[arg-type]
    resp = info.value.response
    assert resp.headers["retry-after"] == "7" and resp.headers["request-id"].startswith("req_")
    assert resp.json()["error"]["type"] == "rate_limit_error"
    fake_provider.fail_next(status=529)
    with pytest.raises(anthropic.APIStatusError) as over:
        anth(fake_provider).messages.create(model="c", max_tokens=5, messages=MSGS)  # type: ignore[arg-type]
    assert over.value.status_code == 529 and over.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    fake_provider.fail_stream_after(4, mode="error_event")
    with pytest.raises(anthropic.APIStatusError, match="Overloaded"):
        list(anth(fake_provider).messages.create(model="c", max_tokens=5, messages=MSGS, stream=True))  # type: ignore[arg-type]


def test_bedrock_converse_and_stream(fake_provider: Any) -> None:
    fake_provider.set_usage(input=11, output=22, cache_read=5, cache_write=4)
    client = bedrock(fake_provider)
    messages = [{"role": "user", "content": [{"text": "hello"}]}]
    r = client.converse(modelId=BEDROCK_MODEL, messages=messages)
    assert r["usage"] == {
        "inputTokens": 11,
        "outputTokens": 22,
        "totalTokens": 42,
        "cacheReadInputTokens": 5,
        "cacheWriteInputTokens": 4,
    }
    assert r["stopReason"] == "end_turn" and r["output"]["message"]["content"][0]["text"] == DEFAULT_REPLY
    events = list(client.converse_stream(modelId=BEDROCK_MODEL, messages=messages)["stream"])
    assert list(events[0]) == ["messageStart"] and events[-2] == {"messageStop": {"stopReason": "end_turn"}}
    assert events[-1]["metadata"]["usage"]["totalTokens"] == 42
    assert "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e) == DEFAULT_REPLY
    path = fake_provider.requests[-1].path
    assert path == "/model/us.anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream"


def test_bedrock_invoke_model_anthropic_body(fake_provider: Any) -> None:
    client = bedrock(fake_provider)
    r = client.invoke_model(modelId=BEDROCK_MODEL, body=json.dumps(BEDROCK_BODY))
    body = json.loads(r["body"].read())
    assert body["usage"]["input_tokens"] == 9 and body["usage"]["output_tokens"] == 6 and body["model"] == BEDROCK_MODEL
    assert r["ResponseMetadata"]["HTTPHeaders"]["x-amzn-bedrock-input-token-count"] == "9"
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/" + BEDROCK_MODEL
    stream = client.invoke_model_with_response_stream(modelId=arn, body=json.dumps(BEDROCK_BODY))
    chunks = [json.loads(e["chunk"]["bytes"]) for e in stream["body"]]
    assert chunks[0]["type"] == "message_start" and chunks[-1]["type"] == "message_stop"
    metrics = chunks[-1]["amazon-bedrock-invocationMetrics"]
    assert (metrics["inputTokenCount"], metrics["outputTokenCount"]) == (9, 6)


def test_bedrock_errors(fake_provider: Any) -> None:
    client = bedrock(fake_provider)
    fake_provider.fail_next(status=429)
    with pytest.raises(ClientError) as info:
        client.converse(modelId=BEDROCK_MODEL, messages=[{"role": "user", "content": [{"text": "x"}]}])
    assert info.value.response["Error"]["Code"] == "ThrottlingException"
    fake_provider.fail_stream_after(2, mode="error_event")
    stream = client.invoke_model_with_response_stream(modelId=BEDROCK_MODEL, body=json.dumps(BEDROCK_BODY))
    with pytest.raises(EventStreamError, match="modelStreamErrorException"):
        list(stream["body"])


def test_bad_override_header_is_a_clear_400(fake_provider: Any) -> None:
    r = httpx.post(
        fake_provider.openai_base_url + "/chat/completions",
        json={"messages": MSGS},
        headers={"x-fake-usage": '{"inputs": 1}'},
    )
    assert r.status_code == 400 and "inputs" in r.json()["error"]["message"]
    with pytest.raises(ValueError, match="stop"):
        fake_provider.set_reply(stop="length")


def test_standalone_instance_and_keep_alive() -> None:
    with FakeProvider() as fake:
        with httpx.Client() as http:
            for _ in range(3):
                http.post(fake.openai_base_url + "/chat/completions", json={"model": "m", "messages": MSGS})
        assert len(fake.requests) == 3
    with pytest.raises(RuntimeError, match="not started"):
        _ = fake.url
