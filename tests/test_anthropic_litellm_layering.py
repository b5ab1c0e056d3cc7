"""LiteLLM 1.106 calls Anthropic and Bedrock over its own httpx client, not through the anthropic SDK or a
boto3 client: with both integrations on, a LiteLLM call produces no Anthropic/Bedrock SDK event (the LiteLLM
integration alone meters it), so nothing is counted twice."""

from __future__ import annotations

from typing import Any

import pytest

from meterline.integrations import anthropic as ml_anthropic
from meterline.integrations import bedrock as ml_bedrock

litellm = pytest.importorskip("litellm")


def test_litellm_anthropic_and_bedrock_do_not_go_through_the_sdk_integrations(
    meter_db: Any, fake_provider: Any
) -> None:
    ml_anthropic.instrument()
    ml_bedrock.instrument()
    try:
        r = litellm.completion(
            model="anthropic/claude-test-1",
            api_base=fake_provider.url,
            api_key="sk-fake",
            messages=[{"role": "user", "content": "hi"}],
        )
        assert r.usage.prompt_tokens > 0
        r = litellm.completion(
            model="bedrock/converse/us.anthropic.claude-test-1-v1:0",
            api_base=fake_provider.url,
            aws_access_key_id="x",
            aws_secret_access_key="x",
            aws_region_name="us-east-1",
            messages=[{"role": "user", "content": "hi"}],
        )
        assert r.usage.prompt_tokens > 0
        paths = [req.path for req in fake_provider.requests]
        assert paths[0] == "/v1/messages" and paths[1].endswith("/converse")
    finally:
        ml_bedrock.uninstrument()
        ml_anthropic.uninstrument()
    assert [e.integration for e in meter_db.events()] == []
