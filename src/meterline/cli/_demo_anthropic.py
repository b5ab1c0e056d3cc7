"""Anthropic SDK and Bedrock traffic for ``meterline demo``: the real SDKs against the local fake provider.

Called by ``meterline demo`` after ``meterline.instrument()``; returns the number of calls it made. Needs the
``anthropic`` package (and ``boto3`` for the direct Bedrock calls, skipped when it is missing).
"""

from __future__ import annotations

import json
import os
from typing import Any

SONNET = "claude-sonnet-4-6"
HAIKU = "claude-haiku-4-5"
BEDROCK_MODEL = "us.anthropic.claude-3-5-sonnet-20240620-v1:0"
CONTRACT = "Summarise the attached 40-page master services agreement: term, fees, liability caps."


def _usage(**counts: int) -> dict[str, str]:
    return {"x-fake-usage": json.dumps(counts)}


def _anthropic_direct(fake_url: str) -> int:
    import anthropic

    import meterline

    # Any: the SDK's types do not know meterline's usage_metadata= keyword
    client: Any = anthropic.Anthropic(base_url=fake_url, api_key="sk-ant-demo", max_retries=0)
    made = 0
    with meterline.metadata(subscriber_id="acme", product_id="contract-review", agent="reviewer"):
        # first call writes the prompt cache (part of it for 1 hour), the next ones read it
        client.messages.create(
            model=SONNET,
            max_tokens=400,
            messages=[{"role": "user", "content": CONTRACT}],
            extra_headers=_usage(input=150, output=320, cache_write=6000, cache_write_1h=2000),
            usage_metadata={"task_type": "summarise", "trace_id": "contract-42"},
        )
        made += 1
        for question in ("Who may terminate?", "What is the liability cap?"):
            client.messages.create(
                model=SONNET,
                max_tokens=200,
                messages=[{"role": "user", "content": question}],
                extra_headers=_usage(input=40, output=120, cache_read=6000),
                usage_metadata={"task_type": "answer", "trace_id": "contract-42"},
            )
            made += 1
    with meterline.metadata(subscriber_id="globex", product_id="support-bot"):
        with client.messages.stream(
            model=HAIKU, max_tokens=200, messages=[{"role": "user", "content": "My invoice looks wrong, help?"}]
        ) as stream:
            for _text in stream.text_stream:
                pass
        made += 1
        # the user stops reading after the first event: metered as cancelled, usage seen so far
        abandoned = client.messages.create(
            model=HAIKU, max_tokens=200, stream=True, messages=[{"role": "user", "content": "Tell me a long story."}]
        )
        for _event in abandoned:
            break
        abandoned.close()
        made += 1
    return made


def _anthropic_bedrock(fake_url: str) -> int:
    import anthropic

    import meterline

    client: Any = anthropic.AnthropicBedrock(
        aws_access_key="demo", aws_secret_key="demo", aws_region="us-east-1", base_url=fake_url, max_retries=0
    )
    with meterline.metadata(subscriber_id="initech", product_id="summarizer"):
        client.messages.create(
            model=BEDROCK_MODEL,
            max_tokens=300,
            messages=[{"role": "user", "content": "Summarise this quarter's support tickets."}],
            extra_headers=_usage(input=900, output=250, cache_read=3000),
        )
    return 1


def _boto3(fake_url: str) -> int:
    try:
        import boto3
    except ImportError:
        return 0
    from botocore.config import Config

    import meterline

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "demo")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "demo")
    client: Any = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=fake_url,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )
    made = 0
    with meterline.metadata(subscriber_id="umbrella", product_id="summarizer"):
        client.converse(
            modelId=BEDROCK_MODEL,
            messages=[{"role": "user", "content": [{"text": "Classify this email as spam or not."}]}],
            usage_metadata={"task_type": "classify"},
        )
        made += 1
        for _event in client.converse_stream(
            modelId=BEDROCK_MODEL, messages=[{"role": "user", "content": [{"text": "Draft a polite reply."}]}]
        )["stream"]:
            pass
        made += 1
        body = {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 200,
            "messages": [{"role": "user", "content": "Extract the invoice number and total."}],
        }
        reply: Any = client.invoke_model(modelId=BEDROCK_MODEL, body=json.dumps(body))
        reply["body"].read()
        made += 1
    return made


def demo_traffic(fake_url: str) -> int:
    """Anthropic SDK direct (a cached call and streams), AnthropicBedrock, boto3 converse and invoke_model."""
    return _anthropic_direct(fake_url) + _anthropic_bedrock(fake_url) + _boto3(fake_url)
