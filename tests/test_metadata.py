"""Metadata scopes, decorators, spellings, environment fallbacks and selective metering."""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

import meterline
from meterline.core.metadata import MetadataError, environment_fallbacks, hash_credential, normalise
from meterline.sdk.scopes import current_metadata, should_meter


def test_revenium_spellings_are_accepted_and_credentials_hashed() -> None:
    nested = normalise(
        {
            "subscriber": {"id": "u1", "email": "a@b.c", "credential": {"name": "prod", "value": "sk-1"}},
            "organizationName": "acme",
            "productId": "search",
            "taskType": "qa",
        }
    )
    flat = normalise(
        {
            "subscriber.id": "u1",
            "subscriber.email": "a@b.c",
            "subscriber_credential_name": "prod",
            "subscriber_credential": "sk-1",
            "organization_name": "acme",
            "product_id": "search",
            "task_type": "qa",
        }
    )
    expected = {
        "subscriber_id": "u1",
        "subscriber_email": "a@b.c",
        "credential_name": "prod",
        "credential_hash": hash_credential("sk-1"),
        "organization_id": "acme",
        "product_id": "search",
        "task_type": "qa",
    }
    assert nested == expected
    assert flat == expected
    assert "sk-1" not in repr(nested)


def test_unknown_keys_become_attributes_and_owned_fields_are_refused() -> None:
    assert normalise({"customer_tier": "gold", "seats": 3}) == {"attributes": {"customer_tier": "gold", "seats": 3}}
    with pytest.raises(MetadataError, match="'total_cost': is measured by meterline"):
        meterline.metadata(total_cost="1")
    with pytest.raises(MetadataError, match="'response_quality_score': must be a number between 0 and 1; got 2"):
        meterline.metadata(response_quality_score=2)


def test_per_call_metadata_is_lenient_but_drops_bad_fields(caplog: pytest.LogCaptureFixture) -> None:
    assert normalise({"agent": "a", "retry_number": "x"}, strict=False) == {"agent": "a"}
    assert "retry_number" in caplog.text


def test_nesting_inner_wins_tags_concatenate() -> None:
    with meterline.metadata(subscriber_id="outer", product_id="p", tags=["a"], attributes={"x": 1}):
        with meterline.metadata(subscriber_id="inner", tags=["b"], attributes={"y": 2}):
            assert dict(current_metadata()) == {
                "subscriber_id": "inner",
                "product_id": "p",
                "tags": ["a", "b"],
                "attributes": {"x": 1, "y": 2},
            }
        assert current_metadata()["subscriber_id"] == "outer"
    assert dict(current_metadata()) == {}


def test_decorators_sync_async_and_generators() -> None:
    @meterline.metadata(agent="sync")
    def f() -> Any:
        return dict(current_metadata())

    @meterline.metadata(agent="async")
    async def g() -> Any:
        await asyncio.sleep(0)
        return dict(current_metadata())

    @meterline.track_task("stream")
    def gen() -> Any:
        yield dict(current_metadata())
        yield dict(current_metadata())

    @meterline.track_task("astream")
    async def agen() -> Any:
        yield dict(current_metadata())

    async def collect() -> list[Any]:
        return [x async for x in agen()]

    assert f() == {"agent": "sync"}
    assert asyncio.run(g()) == {"agent": "async"}
    it = gen()
    assert next(it) == {"task_type": "stream"}
    # while the generator is suspended, the caller's scope is untouched
    assert dict(current_metadata()) == {}
    assert next(it) == {"task_type": "stream"}
    assert asyncio.run(collect()) == [{"task_type": "astream"}]


@dataclass
class Request:
    customer_id: str


class Service:
    tenant = "t-9"

    @meterline.track_organization(name_from_attr="tenant")
    @meterline.track_subscriber(name_from_attr="req.customer_id")
    def handle(self, req: Request) -> Any:
        return dict(current_metadata())


def test_track_decorators_resolve_args_and_attributes() -> None:
    @meterline.track_subscriber(name_from_arg="customer")
    @meterline.track_quality(0.9)
    def answer(question: str, customer: str) -> Any:
        return dict(current_metadata())

    @meterline.track_agent
    def planner() -> Any:
        return dict(current_metadata())

    assert answer("q", customer="c-1") == {"subscriber_id": "c-1", "response_quality_score": 0.9}
    assert Service().handle(Request("c-2")) == {"organization_id": "t-9", "subscriber_id": "c-2"}
    assert planner() == {"agent": "planner"}
    with pytest.raises(TypeError, match="has no argument 'nope'"):
        meterline.track_product(name_from_arg="nope")(planner)


def test_with_context_carries_metadata_into_threads() -> None:
    with meterline.metadata(subscriber_id="c-7"):
        with ThreadPoolExecutor(2) as pool:
            carried = pool.submit(meterline.with_context(lambda: dict(current_metadata()))).result()
            bare = pool.submit(lambda: dict(current_metadata())).result()
        t_result: list[Any] = []
        t = threading.Thread(target=meterline.with_context(lambda: t_result.append(dict(current_metadata()))))
        t.start()
        t.join()
    assert carried == {"subscriber_id": "c-7"}
    assert bare == {}
    assert t_result == [{"subscriber_id": "c-7"}]


def test_environment_fallbacks_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPLOYMENT_ENV", "staging")
    monkeypatch.setenv("ENVIRONMENT", "prod")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("METERLINE_RETRY_NUMBER", "2")
    monkeypatch.setenv("METERLINE_TRACE_TYPE", "batch")
    assert environment_fallbacks() == {
        "environment": "prod",
        "region": "eu-west-1",
        "trace_type": "batch",
        "retry_number": 2,
    }
    monkeypatch.setenv("METERLINE_ENVIRONMENT", "dev")
    assert environment_fallbacks()["environment"] == "dev"


def test_selective_metering(monkeypatch: pytest.MonkeyPatch) -> None:
    assert should_meter()
    monkeypatch.setenv("METERLINE_SELECTIVE_METERING", "true")
    assert not should_meter()
    with meterline.meter(product_id="p"):
        assert should_meter()
        assert current_metadata()["product_id"] == "p"
    assert not should_meter()


def test_selective_metering_flag_follows_every_change_of_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    # The flag is read from os.environ's own dict on each call (not cached at import or init): every change
    # made through os.environ counts at once, whatever the spelling.
    from meterline.sdk.scopes import selective_metering_enabled

    for raw, expected in [("true", True), (" ON ", True), ("0", False), ("yes", True), ("", False), ("1", True)]:
        monkeypatch.setenv("METERLINE_SELECTIVE_METERING", raw)
        assert selective_metering_enabled() is expected, raw
        assert should_meter() is not expected
    os.environ["METERLINE_SELECTIVE_METERING"] = "false"
    assert should_meter()
    monkeypatch.delenv("METERLINE_SELECTIVE_METERING")
    assert not selective_metering_enabled() and should_meter()
