"""Real boto3/botocore ``bedrock-runtime`` clients (dummy credentials) over HTTP to the fake provider."""

from __future__ import annotations

import gc
import json
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EventStreamError, ParamValidationError, ReadTimeoutError

import meterline
from anthropic_support import BEDROCK_MODEL, PRICES, assert_cost, assert_tokens, aws_env
from meterline.integrations import bedrock as ml_bedrock

MESSAGES = [{"role": "user", "content": [{"text": "hello"}]}]
INVOKE_BODY = json.dumps(
    {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
)
CACHE = {"input": 11, "output": 22, "cache_read": 500, "cache_write": 40, "cache_write_1h": 15}


def bedrock_client(fake: Any, attempts: int = 1, **cfg: Any) -> Any:
    aws_env()
    config = Config(retries={"total_max_attempts": attempts, "mode": "standard"}, **cfg)
    return boto3.client(
        "bedrock-runtime", region_name="us-east-1", endpoint_url=fake.bedrock_endpoint_url, config=config
    )


@pytest.fixture
def db(meter_db: Any) -> Iterator[Any]:
    meter_db.init(prices=PRICES)
    ml_bedrock.instrument()
    yield meter_db
    ml_bedrock.uninstrument()


def test_converse_exact_usage_cost_and_metadata_removed(db: Any, fake_provider: Any) -> None:
    fake_provider.set_usage(**CACHE)
    c = bedrock_client(fake_provider)
    with meterline.metadata(product_id="p1"):
        r = c.converse(modelId=BEDROCK_MODEL, messages=MESSAGES, usage_metadata={"subscriber.id": "cust-1"})
    assert r["usage"]["cacheReadInputTokens"] == 500
    assert fake_provider.requests[-1].body == {"messages": MESSAGES}  # nothing of ours went upstream
    (e,) = db.events()
    assert (e.provider, e.integration, e.model, e.operation, e.stream) == (
        "bedrock",
        "bedrock",
        BEDROCK_MODEL,
        "chat",
        False,
    )
    assert (e.status, e.stop_reason, e.subscriber_id, e.product_id) == ("success", "end", "cust-1", "p1")
    # Converse does not report the 1-hour split: all 40 cache-write tokens at the 5-minute rate
    assert_tokens(e, 11, 22, 500, 40, 0)
    assert_cost(e, input=11, output=22, cache_read=500, cache_write=40)


def test_converse_stream_to_the_end(db: Any, fake_provider: Any) -> None:
    fake_provider.set_usage(**CACHE)
    events = list(bedrock_client(fake_provider).converse_stream(modelId=BEDROCK_MODEL, messages=MESSAGES)["stream"])
    assert "metadata" in events[-1]
    (e,) = db.events()
    assert (e.status, e.stream, e.stop_reason) == ("success", True, "end")
    assert e.time_to_first_token_ms is not None and e.time_to_first_token_ms <= e.duration_ms
    assert_tokens(e, 11, 22, 500, 40, 0)
    assert_cost(e, input=11, output=22, cache_read=500, cache_write=40)


def test_invoke_model_reads_anthropic_usage_with_1h_split_and_body_still_readable(db: Any, fake_provider: Any) -> None:
    fake_provider.set_usage(**CACHE)
    r = bedrock_client(fake_provider).invoke_model(
        modelId=BEDROCK_MODEL, body=INVOKE_BODY, usage_metadata={"agent": "inv"}
    )
    body = json.loads(r["body"].read())
    assert body["usage"]["cache_creation"]["ephemeral_1h_input_tokens"] == 15
    assert "usage_metadata" not in fake_provider.requests[-1].body
    (e,) = db.events()
    assert (e.status, e.stop_reason, e.agent, e.response_model) == ("success", "end", "inv", BEDROCK_MODEL)
    assert_tokens(e, 11, 22, 500, 40, 15)
    assert_cost(e, input=11, output=22, cache_read=500, cache_write=40, cache_write_1h=15)


def test_invoke_model_with_response_stream(db: Any, fake_provider: Any) -> None:
    fake_provider.set_usage(**CACHE)
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/" + BEDROCK_MODEL
    stream = bedrock_client(fake_provider).invoke_model_with_response_stream(modelId=arn, body=INVOKE_BODY)
    chunks = [json.loads(ev["chunk"]["bytes"]) for ev in stream["body"]]
    assert chunks[-1]["type"] == "message_stop"
    (e,) = db.events()
    assert (e.status, e.stream, e.model) == ("success", True, arn)
    assert e.time_to_first_token_ms is not None
    assert_tokens(e, 11, 22, 500, 40, 15)
    assert_cost(e, input=11, output=22, cache_read=500, cache_write=40, cache_write_1h=15)  # ARN priced too


def test_tool_use_and_max_tokens(db: Any, fake_provider: Any) -> None:
    c = bedrock_client(fake_provider)
    tools = {"tools": [{"toolSpec": {"name": "lookup", "inputSchema": {"json": {"type": "object"}}}}]}
    fake_provider.set_reply(tool_use=True)
    c.converse(modelId=BEDROCK_MODEL, messages=MESSAGES, toolConfig=tools)
    list(c.converse_stream(modelId=BEDROCK_MODEL, messages=MESSAGES, toolConfig=tools)["stream"])
    list(c.invoke_model_with_response_stream(modelId=BEDROCK_MODEL, body=INVOKE_BODY)["body"])
    fake_provider.set_reply(stop="max_tokens")
    c.converse(modelId=BEDROCK_MODEL, messages=MESSAGES)
    got = [(e.stop_reason, e.operation_subtype) for e in db.events()]
    assert got == [("tool_use", "tool_use")] * 3 + [("max_tokens", None)]


def test_http_error_and_timeout_are_one_error_event_each(db: Any, fake_provider: Any) -> None:
    c = bedrock_client(fake_provider)
    fake_provider.fail_next(status=429)
    with pytest.raises(ClientError) as info:
        c.converse(modelId=BEDROCK_MODEL, messages=MESSAGES, usage_metadata={"agent": "e"})
    assert type(info.value).__name__ == "ThrottlingException"
    fake_provider.delay(1.0)
    slow = bedrock_client(fake_provider, read_timeout=0.2)
    with pytest.raises(ReadTimeoutError):
        slow.invoke_model(modelId=BEDROCK_MODEL, body=INVOKE_BODY)
    fake_provider.delay(0)
    with pytest.raises(ParamValidationError):  # rejected before sending: no provider call, no event
        c.converse(modelId=BEDROCK_MODEL, messages="not a list")
    events = db.events()
    assert [(e.status, e.stop_reason, e.error_type, e.agent) for e in events] == [
        ("error", "error", "ThrottlingException", "e"),
        ("error", "error", "ReadTimeoutError", None),
    ]
    assert all(e.total_tokens == 0 for e in events)


def test_stream_failures_midway(db: Any, fake_provider: Any) -> None:
    fake_provider.set_usage(input=30, output=8)
    c = bedrock_client(fake_provider)
    fake_provider.fail_stream_after(3, mode="error_event")
    with pytest.raises(EventStreamError):
        list(c.invoke_model_with_response_stream(modelId=BEDROCK_MODEL, body=INVOKE_BODY)["body"])
    fake_provider.fail_stream_after(2, mode="disconnect")
    with pytest.raises(Exception) as dropped:  # botocore/urllib3 raise their own error type
        list(c.converse_stream(modelId=BEDROCK_MODEL, messages=MESSAGES)["stream"])
    events = db.events()
    assert [(e.status, e.stream) for e in events] == [("error", True), ("error", True)]
    assert events[0].error_type == "modelStreamErrorException" and events[0].input_tokens == 30
    assert events[1].error_type == type(dropped.value).__name__


def test_abandoned_streams_are_cancelled_once(db: Any, fake_provider: Any) -> None:
    fake_provider.set_usage(input=6, output=9)
    c = bedrock_client(fake_provider)
    r = c.invoke_model_with_response_stream(modelId=BEDROCK_MODEL, body=INVOKE_BODY)
    for _ in r["body"]:
        break
    r["body"].close()
    r["body"].close()
    r = c.converse_stream(modelId=BEDROCK_MODEL, messages=MESSAGES)
    next(iter(r["stream"]))
    del r
    gc.collect()
    c.converse_stream(modelId=BEDROCK_MODEL, messages=MESSAGES)  # never read
    gc.collect()
    events = db.events()
    assert [(e.status, e.stop_reason) for e in events] == [("cancelled", "cancelled")] * 3
    assert (events[0].input_tokens, events[0].output_tokens) == (6, 1)  # message_start seen
    assert events[1].total_tokens == 0  # Converse reports usage only at the end
    assert_cost(events[0], input=6, output=1)


def test_clients_before_and_after_instrumenting_and_exact_uninstrument(meter_db: Any, fake_provider: Any) -> None:
    from botocore.client import ClientCreator

    original = ClientCreator.__dict__["create_client"]
    early = bedrock_client(fake_provider)
    meterline.instrument("bedrock")
    ml_bedrock.instrument()  # idempotent
    late = bedrock_client(fake_provider)
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=fake_provider.url)
    assert s3.meta.events is not None
    early.converse(modelId=BEDROCK_MODEL, messages=MESSAGES)
    late.converse(modelId=BEDROCK_MODEL, messages=MESSAGES)
    assert len(meter_db.events()) == 2
    assert ml_bedrock.uninstrument() is True and ml_bedrock.uninstrument() is False
    assert ClientCreator.__dict__["create_client"] is original
    early.converse(modelId=BEDROCK_MODEL, messages=MESSAGES)
    late.converse(modelId=BEDROCK_MODEL, messages=MESSAGES)
    with pytest.raises(ParamValidationError, match="usage_metadata"):
        late.converse(modelId=BEDROCK_MODEL, messages=MESSAGES, usage_metadata={"agent": "x"})
    assert len(meter_db.events()) == 2


def test_threads_share_one_client(db: Any, fake_provider: Any) -> None:
    c = bedrock_client(fake_provider, attempts=4)  # botocore's retries absorb connection resets under the burst
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for _ in range(10):
                with meterline.metadata(subscriber_id=f"t{n}"):
                    c.converse(modelId=BEDROCK_MODEL, messages=MESSAGES)
                    list(c.converse_stream(modelId=BEDROCK_MODEL, messages=MESSAGES)["stream"])
        except BaseException as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    events = db.events()
    assert len(events) == 160 and {e.status for e in events} == {"success"}
    assert sorted({e.subscriber_id for e in events}) == sorted(f"t{n}" for n in range(8))
