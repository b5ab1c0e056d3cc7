"""``AnthropicBedrock`` / ``AsyncAnthropicBedrock`` (provider ``bedrock``) and Bedrock model-id pricing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import anthropic
import pytest

from anthropic_support import BEDROCK_MODEL, MSGS, PRICES, assert_cost, assert_tokens
from meterline.core.event import UsageEvent
from meterline.integrations import anthropic as ml_anthropic
from meterline.integrations import bedrock as ml_bedrock
from meterline.pricing import Pricer
from meterline.pricing.overrides import parse_entries
from meterline.pricing.pricer import bedrock_base_model, normalise_model

CACHE = {"input": 10, "output": 20, "cache_read": 300, "cache_write": 50, "cache_write_1h": 20}


@pytest.fixture
def db(meter_db: Any) -> Iterator[Any]:
    meter_db.init(prices=PRICES)
    ml_anthropic.instrument()
    ml_bedrock.instrument()  # both on: AnthropicBedrock uses httpx, not botocore clients: no double count
    yield meter_db
    ml_bedrock.uninstrument()
    ml_anthropic.uninstrument()


def _kw(fake: Any) -> dict[str, Any]:
    return {
        "aws_access_key": "x",
        "aws_secret_key": "x",
        "aws_region": "us-east-1",
        "base_url": fake.url,
        "max_retries": 0,
    }


def test_anthropic_bedrock_sync_create_and_stream(db: Any, fake_provider: Any) -> None:
    fake_provider.set_usage(**CACHE)
    c = anthropic.AnthropicBedrock(**_kw(fake_provider))
    c.messages.create(model=BEDROCK_MODEL, max_tokens=10, messages=MSGS, usage_metadata={"agent": "br"})
    req = fake_provider.requests[-1]
    assert req.path == "/model/us.anthropic.claude-test-1-v1:0/invoke" and "usage_metadata" not in req.body
    with c.messages.stream(model=BEDROCK_MODEL, max_tokens=10, messages=MSGS) as s:
        assert s.get_final_message().usage.output_tokens == 20
    c.beta.messages.create(model=BEDROCK_MODEL, max_tokens=10, messages=MSGS, usage_metadata={"agent": "beta"})
    events = db.events()
    assert [(e.provider, e.integration, e.stream, e.agent) for e in events] == [
        ("bedrock", "anthropic", False, "br"),
        ("bedrock", "anthropic", True, None),
        ("bedrock", "anthropic", False, "beta"),
    ]
    for e in events:
        assert e.model == BEDROCK_MODEL and e.status == "success"
        assert_tokens(e, 10, 20, 300, 50, 20)
        assert_cost(e, input=10, output=20, cache_read=300, cache_write=50, cache_write_1h=20)


async def test_async_anthropic_bedrock(db: Any, fake_provider: Any) -> None:
    fake_provider.set_usage(**CACHE)
    c = anthropic.AsyncAnthropicBedrock(**_kw(fake_provider))
    await c.messages.create(model=BEDROCK_MODEL, max_tokens=10, messages=MSGS)
    stream = await c.messages.create(model=BEDROCK_MODEL, max_tokens=10, messages=MSGS, stream=True)
    async for _ in stream:
        pass
    fake_provider.fail_next(status=429)
    with pytest.raises(anthropic.RateLimitError):
        await c.messages.create(model=BEDROCK_MODEL, max_tokens=10, messages=MSGS)
    events = db.events()
    assert [(e.provider, e.stream, e.status) for e in events] == [
        ("bedrock", False, "success"),
        ("bedrock", True, "success"),
        ("bedrock", False, "error"),
    ]
    assert_cost(events[1], input=10, output=20, cache_read=300, cache_write=50, cache_write_1h=20)


@pytest.mark.parametrize(
    ("model", "bare", "base"),
    [
        ("us.anthropic.claude-x-v1:0", "us.anthropic.claude-x-v1:0", "anthropic.claude-x-v1:0"),
        ("global.anthropic.claude-x-v1:0", "global.anthropic.claude-x-v1:0", "anthropic.claude-x-v1:0"),
        ("apac.anthropic.claude-x-v1:0", "apac.anthropic.claude-x-v1:0", "anthropic.claude-x-v1:0"),
        ("eu.meta.llama3-70b-instruct-v1:0", "eu.meta.llama3-70b-instruct-v1:0", "meta.llama3-70b-instruct-v1:0"),
        (
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/eu.anthropic.claude-x-v1:0",
            "eu.anthropic.claude-x-v1:0",
            "anthropic.claude-x-v1:0",
        ),
        (
            "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-x-v1:0",
            "anthropic.claude-x-v1:0",
            "anthropic.claude-x-v1:0",
        ),
        ("bedrock/converse/us.anthropic.claude-x-v1:0", "us.anthropic.claude-x-v1:0", "anthropic.claude-x-v1:0"),
        (
            "bedrock/arn:aws:bedrock:us-east-1:1:inference-profile/global.anthropic.claude-x-v1:0",
            "global.anthropic.claude-x-v1:0",
            "anthropic.claude-x-v1:0",
        ),
        ("anthropic.claude-x-v1:0", "anthropic.claude-x-v1:0", "anthropic.claude-x-v1:0"),
    ],
)
def test_bedrock_model_id_normalisation(model: str, bare: str, base: str) -> None:
    assert normalise_model("bedrock", model) == bare
    assert bedrock_base_model(bare) == base


def _event(model: str, response_model: str | None = None, provider: str = "bedrock") -> UsageEvent:
    e = UsageEvent(start_time=datetime(2026, 11, 1, tzinfo=timezone.utc), provider=provider, model=model)
    e.response_model = response_model
    e.input_tokens, e.output_tokens = 1_000_000, 1_000_000
    return e


def test_genai_prices_per_inference_profile_and_requested_id_wins_for_bedrock() -> None:
    from genai_prices import data_snapshot

    snap = data_snapshot.get_snapshot()
    when = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)

    def genai(ref: str) -> Decimal:
        _, info = snap.find_provider_model(ref, None, "aws", None)
        p = info.get_prices(when)
        return Decimal(p.input_mtok) + Decimal(p.output_mtok)

    pricer = Pricer()
    for model in (
        "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "anthropic.claude-3-haiku-20240307-v1:0",
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/apac.anthropic.claude-3-5-sonnet-20240620-v1:0",
    ):
        # Bedrock's reply names the model without its profile: the requested id must decide the price.
        e = _event(model, response_model="claude-sonnet-4-5-20250929")
        pricer.price(e)
        assert e.total_cost == genai(model), model
        assert e.pricing_source is not None and e.pricing_source.startswith("genai-prices")
    assert genai("global.anthropic.claude-sonnet-4-5-20250929-v1:0") != genai(
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    )
    opaque = _event("arn:aws:bedrock:eu-west-1:123456789012:application-inference-profile/a1b2c3")
    pricer.price(opaque)
    assert (opaque.pricing_source, opaque.total_cost) == ("unpriced", None)


def test_override_for_the_base_id_prices_every_profile_of_it() -> None:
    pricer = Pricer(
        parse_entries(
            [{"provider": "bedrock", "model": "anthropic.claude-x-v1:0", "input_mtok": "1", "output_mtok": "2"}]
        )
    )
    for model in (
        "us.anthropic.claude-x-v1:0",
        "arn:aws:bedrock:us-east-1:1:inference-profile/global.anthropic.claude-x-v1:0",
    ):
        e = _event(model)
        pricer.price(e)
        assert (e.pricing_source, e.total_cost) == ("override", Decimal(3))
    other = _event("us.anthropic.claude-x-v1:0", provider="anthropic")  # only Bedrock ids lose their prefix
    pricer.price(other)
    assert other.pricing_source == "unpriced"
