"""Anthropic integration lifecycle: exact uninstrument, old clients covered, selective metering, layering,
threads, and a metering bug never reaching the caller."""

from __future__ import annotations

import threading
from typing import Any

import anthropic
import pytest
from anthropic import _base_client
from anthropic.resources.beta.messages import messages as beta_messages
from anthropic.resources.messages import messages as first_party

import meterline
from anthropic_support import ANTHROPIC_MODEL, MSGS, PRICES, assert_cost, assert_tokens
from meterline.core import errors as _errors
from meterline.integrations import anthropic as ml_anthropic
from meterline.sdk.scopes import in_call as _in_call


def _originals() -> list[Any]:
    return [
        _base_client.SyncAPIClient.__dict__["request"],
        _base_client.AsyncAPIClient.__dict__["request"],
        first_party.Messages.__dict__["create"],
        first_party.Messages.__dict__["stream"],
        first_party.AsyncMessages.__dict__["create"],
        beta_messages.Messages.__dict__["create"],
        beta_messages.AsyncMessages.__dict__["stream"],
    ]


def client(fake: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key="sk-fake", max_retries=0)


def create(c: Any, **kw: Any) -> Any:
    return c.messages.create(model=ANTHROPIC_MODEL, max_tokens=10, messages=MSGS, **kw)


def test_instrument_is_idempotent_and_uninstrument_exact(meter_db: Any, fake_provider: Any) -> None:
    before = _originals()
    old_client = client(fake_provider)  # created before instrumenting: still metered
    raw_before = old_client.messages.with_raw_response  # cached wrapper around the original create
    assert meterline.instrument("anthropic") == ["anthropic"]
    ml_anthropic.instrument()
    try:
        assert _originals() != before
        create(old_client)
        raw_before.create(model=ANTHROPIC_MODEL, max_tokens=10, messages=MSGS).parse()
        assert len(meter_db.events()) == 2  # once each, not twice after instrumenting twice
    finally:
        assert ml_anthropic.uninstrument() is True
    assert ml_anthropic.uninstrument() is False
    assert _originals() == before
    create(old_client)
    with pytest.raises(TypeError):
        create(old_client, usage_metadata={"agent": "x"})  # the SDK's own signature again
    assert len(meter_db.events()) == 2


def test_meterline_instrument_covers_anthropic(meter_db: Any, fake_provider: Any) -> None:
    assert "anthropic" in meterline.instrument()
    try:
        create(client(fake_provider))
        assert len(meter_db.events()) == 1
    finally:
        meterline.uninstrument()
    assert not ml_anthropic.is_instrumented()


def test_selective_metering_and_inner_layer(meter_db: Any, fake_provider: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ml_anthropic.instrument()
    try:
        c = client(fake_provider)
        monkeypatch.setenv("METERLINE_SELECTIVE_METERING", "true")
        create(c, usage_metadata={"agent": "outside"})  # not metered, but the metadata is still removed
        assert "usage_metadata" not in fake_provider.requests[-1].body
        assert "x-meterline-usage-metadata" not in fake_provider.requests[-1].headers
        with meterline.meter(product_id="metered"):
            create(c)
        monkeypatch.delenv("METERLINE_SELECTIVE_METERING")
        token = _in_call.set(True)  # an outer layer (e.g. LiteLLM) already meters this call
        try:
            create(c)
            list(create(c, stream=True))
        finally:
            _in_call.reset(token)
        events = meter_db.events()
        assert [(e.product_id, e.agent) for e in events] == [("metered", None)]
    finally:
        ml_anthropic.uninstrument()


def test_in_call_is_set_while_the_request_runs(meter_db: Any, fake_provider: Any) -> None:
    seen: list[bool] = []
    ml_anthropic.instrument()
    try:
        c = anthropic.Anthropic(
            base_url=fake_provider.anthropic_base_url,
            api_key="k",
            max_retries=0,
            http_client=_SpyClient(seen),
        )
        create(c)
    finally:
        ml_anthropic.uninstrument()
    assert seen == [True]
    assert len(meter_db.events()) == 1


class _SpyClient(anthropic.DefaultHttpxClient):
    """The SDK's own HTTP client, noting whether meterline marked the call as metered when it is sent."""

    def __init__(self, seen: list[bool]) -> None:
        super().__init__()
        self._seen = seen

    def send(self, request: Any, **kw: Any) -> Any:
        self._seen.append(_in_call.get())
        return super().send(request, **kw)


def test_32_threads_x_50_calls_on_one_shared_client(meter_db: Any, fake_provider: Any) -> None:
    meter_db.init(prices=PRICES)
    ml_anthropic.instrument()
    # The SDK's own retries absorb connection resets of the small fake server under a 32-thread burst;
    # a retried call is still one event.
    c = anthropic.Anthropic(base_url=fake_provider.anthropic_base_url, api_key="sk-fake", max_retries=3)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(50):
                with meterline.metadata(subscriber_id=f"t{n}"):
                    usage = {"input": n + 1, "output": i + 1, "cache_read": 3}
                    if i % 2:
                        create(c, extra_headers={"x-fake-usage": __import__("json").dumps(usage)})
                    else:
                        with c.messages.stream(
                            model=ANTHROPIC_MODEL,
                            max_tokens=10,
                            messages=MSGS,
                            extra_headers={"x-fake-usage": __import__("json").dumps(usage)},
                        ) as s:
                            s.get_final_message()
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(32)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        ml_anthropic.uninstrument()
    assert errors == []
    events = meter_db.events(timeout=60)
    assert len(events) == 1600 and len({e.id for e in events}) == 1600
    for e in events:
        n = int(e.subscriber_id[1:])  # type: ignore[index]
        assert e.input_tokens == n + 1 and e.cache_read_tokens == 3 and e.status == "success"
    assert sum(e.output_tokens for e in events) == 32 * sum(range(1, 51))
    assert sum(e.stream for e in events) == 800
    one = next(e for e in events if e.subscriber_id == "t4" and e.output_tokens == 7)
    assert_tokens(one, 5, 7, 3)
    assert_cost(one, input=5, output=7, cache_read=3)


@pytest.mark.allow_internal_errors
def test_a_metering_bug_never_reaches_the_caller(
    meter_db: Any, fake_provider: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("METERLINE_RAISE_INTERNAL", "0")

    def broken(self: Any, message: Any) -> None:
        raise RuntimeError("meterline bug")

    monkeypatch.setattr("meterline.integrations._call.CallMeter.anthropic_message", broken)
    ml_anthropic.instrument()
    try:
        m = create(client(fake_provider))
    finally:
        ml_anthropic.uninstrument()
    assert m.content[0].text == "Hello from the meterline fake provider."  # type: ignore[union-attr]
    # the reply is read on the recorder's thread: the bug shows there, and the call is still one event
    [e] = meter_db.events()
    assert (e.status, e.input_tokens, e.output_tokens) == ("success", 0, 0)
    assert _errors.internal_errors() == 1 and "meterline bug" in str(_errors.last_internal_error())
    assert meterline.stats()["dropped_internal_error"] == 0


def test_capture_content_off_by_default_and_on_when_asked(meter_db: Any, fake_provider: Any) -> None:
    ml_anthropic.instrument()
    try:
        create(client(fake_provider))
        (plain,) = meter_db.events()
        assert plain.input_messages is None and plain.output_text is None
        meter_db.init(capture_content=True)
        with client(fake_provider).messages.stream(model=ANTHROPIC_MODEL, max_tokens=5, messages=MSGS) as s:
            s.get_final_message()
        captured = meter_db.events()[-1]
    finally:
        ml_anthropic.uninstrument()
    assert captured.input_messages == MSGS and captured.output_text == "Hello from the meterline fake provider."
