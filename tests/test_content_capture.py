"""Content capture end to end: LiteLLM, OpenAI SDK and Anthropic SDK calls (plain, streamed, tool calls,
embeddings) against the fake provider, redacted on the recorder thread, stored in event_content apart from
the usage rows, and no raw secret in the store or the spool."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import anthropic
import litellm
import openai
import pytest

import meterline
from conftest import MeterDB
from meterline.core.event import UsageEvent
from meterline.sdk import content as _content
from meterline.store.content import content_for

SECRET = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789"
EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"
PROMPT = [{"role": "user", "content": f"My key is {SECRET}, mail {EMAIL}, card {CARD}. Weather?"}]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}]
REDACTED_PROMPT = [
    {"role": "user", "content": "My key is [REDACTED:secret], mail [REDACTED:email], card [REDACTED:card]. Weather?"}
]


@pytest.fixture
def capture_db(tmp_path: Path) -> Any:
    db = MeterDB(tmp_path)
    db.init(capture_content=True, capture_headers=True, capture_raw_request=True)
    yield db
    meterline.shutdown()


def _raw_bytes(db: MeterDB) -> bytes:
    meterline.flush(10)
    data = db.path.read_bytes()
    for extra in db.path.parent.glob("meter.db-wal"):
        data += extra.read_bytes()
    return data


def _lit(fake: Any) -> dict[str, Any]:
    return {"api_base": fake.openai_base_url, "api_key": SECRET, "num_retries": 0}


def test_litellm_plain_stream_tools_and_embeddings_round_trip_redacted(capture_db: MeterDB, fake_provider: Any) -> None:
    meterline.instrument_litellm()
    try:
        fake_provider.set_reply(text="Sunny. Call me at +1-415-555-0132")
        litellm.completion(
            model="openai/gpt-4o-mini", messages=PROMPT, extra_headers={"X-Trace": "t-1"},
            usage_metadata={"agent": "plain"}, **_lit(fake_provider),
        )  # fmt: skip
        for _ in litellm.completion(
            model="openai/gpt-4o-mini", messages=PROMPT, stream=True, usage_metadata={"agent": "stream"},
            **_lit(fake_provider),
        ):  # fmt: skip
            pass
        fake_provider.set_reply(tool_use=True)
        litellm.completion(
            model="openai/gpt-4o-mini", messages=PROMPT, tools=TOOLS, usage_metadata={"agent": "tool"},
            **_lit(fake_provider),
        )  # fmt: skip
        for _ in litellm.completion(
            model="openai/gpt-4o-mini", messages=PROMPT, tools=TOOLS, stream=True,
            usage_metadata={"agent": "tool-stream"}, **_lit(fake_provider),
        ):  # fmt: skip
            pass
        fake_provider.set_reply()
        litellm.embedding(
            model="openai/text-embedding-3-small", input=[f"embed {EMAIL}"], usage_metadata={"agent": "embed"},
            **_lit(fake_provider),
        )  # fmt: skip
        events = {e.agent: e for e in capture_db.events()}
    finally:
        meterline.uninstrument("litellm")
    assert sorted(events) == ["embed", "plain", "stream", "tool", "tool-stream"]
    plain = events["plain"]
    assert plain.input_messages == REDACTED_PROMPT
    assert plain.output_text == "Sunny. Call me at [REDACTED:phone]"
    assert plain.request_headers == {"X-Trace": "t-1"}
    assert plain.raw_request["api_key"] == "[REDACTED:secret]"
    assert plain.raw_request["messages"] == REDACTED_PROMPT
    assert events["stream"].output_text == "Sunny. Call me at [REDACTED:phone]"
    for name in ("tool", "tool-stream"):
        [call] = events[name].output_tool_calls
        assert (call["name"], json.loads(call["arguments"])) == ("get_weather", {"location": "Paris"})
    assert events["embed"].input_messages == ["embed [REDACTED:email]"]
    raw = _raw_bytes(capture_db)
    for secret in (SECRET, EMAIL, CARD, "415-555-0132"):
        assert secret.encode() not in raw


def test_content_lives_in_its_own_table_not_in_the_usage_rows(capture_db: MeterDB, fake_provider: Any) -> None:
    meterline.instrument_litellm()
    try:
        litellm.completion(model="openai/gpt-4o-mini", messages=PROMPT, **_lit(fake_provider))
        [e] = capture_db.events()
    finally:
        meterline.uninstrument("litellm")
    conn = sqlite3.connect(capture_db.path)
    cols = [r[1] for r in conn.execute("PRAGMA table_info(events)")]
    assert "input_messages" not in cols and "output_text" not in cols and "raw_request" not in cols
    [(event_id, size, body)] = conn.execute("SELECT event_id, bytes, body FROM event_content").fetchall()
    assert event_id == e.id and size == len(body.encode())
    assert json.loads(body)["input_messages"] == REDACTED_PROMPT
    store = capture_db.store()
    try:
        assert content_for(store, e.id)["output_text"] == e.output_text  # type: ignore[index]
    finally:
        store.close()


def test_openai_sdk_stream_and_tools_with_headers_masked(capture_db: MeterDB, fake_provider: Any) -> None:
    meterline.instrument_openai()
    try:
        client = openai.OpenAI(base_url=fake_provider.openai_base_url, api_key=SECRET, max_retries=0)
        client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT, usage_metadata={"agent": "plain"})
        fake_provider.set_reply(tool_use=True)
        stream = client.chat.completions.create(
            model="gpt-4o-mini", messages=PROMPT, tools=TOOLS, stream=True, usage_metadata={"agent": "tools"}
        )
        for _ in stream:
            pass
        fake_provider.set_reply()
        client.embeddings.create(
            model="text-embedding-3-small", input=f"hello {EMAIL}", usage_metadata={"agent": "emb"}
        )
        events = {e.agent: e for e in capture_db.events()}
    finally:
        meterline.uninstrument("openai")
    plain = events["plain"]
    assert plain.input_messages == REDACTED_PROMPT
    assert plain.request_headers["Authorization"] == "[REDACTED:secret]"
    assert plain.raw_request["model"] == "gpt-4o-mini"
    [call] = events["tools"].output_tool_calls
    assert call["name"] == "get_weather" and json.loads(call["arguments"]) == {"location": "Paris"}
    assert events["emb"].input_messages == "hello [REDACTED:email]"
    assert SECRET.encode() not in _raw_bytes(capture_db)


def test_anthropic_sdk_tool_use_stream(capture_db: MeterDB, fake_provider: Any) -> None:
    meterline.instrument_anthropic()
    try:
        client = anthropic.Anthropic(base_url=fake_provider.url, api_key="sk-ant-api03-abcdefghijklmnopqrstuvwxyz")
        fake_provider.set_reply(tool_use=True)
        tools = [{"name": "get_weather", "input_schema": {"type": "object", "properties": {}}}]
        msgs = [{"role": "user", "content": f"weather? {EMAIL}"}]
        with client.messages.stream(model="claude-3-5-haiku-20241022", max_tokens=50, messages=msgs, tools=tools) as s:
            s.get_final_message()
        client.messages.create(model="claude-3-5-haiku-20241022", max_tokens=50, messages=msgs, tools=tools)
        events = capture_db.events()
    finally:
        meterline.uninstrument("anthropic")
    assert len(events) == 2
    for e in events:
        assert e.input_messages == [{"role": "user", "content": "weather? [REDACTED:email]"}]
        [call] = e.output_tool_calls
        assert call["name"] == "get_weather"
        args = call["arguments"]
        assert (json.loads(args) if isinstance(args, str) else args) == {"location": "Paris"}
        assert "[REDACTED:secret]" in e.request_headers.values()  # the credential header, masked
    assert b"sk-ant-api03" not in _raw_bytes(capture_db)


def test_redaction_runs_on_the_recorder_thread_and_the_hook_comes_first(tmp_path: Path) -> None:
    threads: list[str] = []

    def hook(messages: Any, text: str | None) -> tuple[Any, str | None]:
        threads.append(threading.current_thread().name)
        return messages, f"{text} {SECRET}"  # the presets still run after the hook

    db = MeterDB(tmp_path)
    db.init(capture_content=True, redact=hook)
    try:
        meterline.record(provider="openai", model="gpt-4o-mini", input_tokens=1, input_messages=[{"content": EMAIL}],
                         output_text="ok")  # fmt: skip
        [e] = db.events()
    finally:
        meterline.shutdown()
    assert threads == ["meterline-recorder"]
    assert (e.input_messages, e.output_text) == ([{"content": "[REDACTED:email]"}], "ok [REDACTED:secret]")


def test_size_cap_per_event(tmp_path: Path) -> None:
    db = MeterDB(tmp_path)
    db.init(capture_content=True, content_max_bytes=2000)
    try:
        meterline.record(
            provider="openai", model="m", input_messages=[{"content": "x" * 50_000}], output_text="y" * 9000
        )
        [e] = db.events()
    finally:
        meterline.shutdown()
    assert len(json.dumps({"input_messages": e.input_messages, "output_text": e.output_text})) <= 2000
    assert e.attributes[_content.TRUNCATED_ATTRIBUTE] is True
    assert e.output_text.startswith("yyy") and e.output_text.endswith("…[truncated]")


def test_spooled_events_are_already_redacted(tmp_path: Path) -> None:
    """The sink is down: what lands in the spool file has been through redaction."""
    from meterline.sdk.delivery.spool import Spool
    from meterline.sdk.recorder import Recorder
    from meterline.sdk.sinks.base import SinkError

    class Down:
        description = "down"

        def write(self, events: Any) -> int:
            raise SinkError("down", retryable=False)

        def close(self) -> None:
            pass

    _content.configure(_content.ContentPolicy(capture_content=True))
    try:
        spool = Spool(tmp_path / "spool")
        r = Recorder(Down(), spool=spool, max_retries=0)
        ev = UsageEvent.from_wire({"provider": "openai", "model": "m", "start_time": "2026-01-01T00:00:00Z"})
        ev.input_messages = [{"content": f"key {SECRET}"}]
        ev.error_message = f"Incorrect API key provided: {SECRET}"
        r.submit(ev)
        r.flush(10)
        r.shutdown(1)
    finally:
        _content.configure(_content.ContentPolicy())
    files = list((tmp_path / "spool").rglob("*"))
    data = b"".join(f.read_bytes() for f in files if f.is_file())
    assert b"[REDACTED:secret]" in data and SECRET.encode() not in data


def test_off_by_default_and_env_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = MeterDB(tmp_path)
    db.init()
    assert not _content.policy.capturing
    monkeypatch.setenv("METERLINE_CAPTURE_CONTENT", "true")
    monkeypatch.setenv("METERLINE_CAPTURE_HEADERS", "1")
    monkeypatch.setenv("METERLINE_CAPTURE_RAW_REQUEST", "yes")
    monkeypatch.setenv("METERLINE_REDACT", "emails")
    monkeypatch.setenv("METERLINE_REDACT_PATTERNS", '["ACME-\\\\d+"]')
    monkeypatch.setenv("METERLINE_CONTENT_MAX_BYTES", "4096")
    db.init()
    p = _content.policy
    try:
        assert (p.capture_content, p.capture_headers, p.capture_raw_request, p.max_bytes) == (True, True, True, 4096)
        assert p.redactor.presets == ("emails",)
        assert p.redactor.text("ACME-42 a@b.io 8.8.8.8") == "[REDACTED] [REDACTED:email] 8.8.8.8"
        monkeypatch.setenv("METERLINE_REDACT", "emials")
        with pytest.raises(ValueError, match="unknown preset 'emials'"):
            db.init()
    finally:
        meterline.shutdown()
        _content.configure(_content.ContentPolicy())


def test_content_reaches_a_collector_redacted_and_is_stored_apart(tmp_path: Path) -> None:
    """SDK -> HTTP collector -> store: the collector accepts the content fields and keeps them in event_content."""
    from collector_support import ThreadCollector

    with ThreadCollector(database=f"sqlite:///{tmp_path / 'c.db'}", auth=False) as c:
        meterline.init(destination=c.url, spool_dir=tmp_path / "spool", capture_content=True, capture_raw_request=True)
        try:
            meterline.record(provider="openai", model="gpt-4o-mini", input_tokens=3, output_text="x" * 5000,
                             input_messages=PROMPT, raw_request={"api_key": SECRET, "messages": PROMPT})  # fmt: skip
            assert meterline.flush(10)
        finally:
            meterline.shutdown()
        [e] = list(c.store.iter_events())
        assert e.input_messages == REDACTED_PROMPT and e.output_text == "x" * 5000
        assert e.raw_request == {"api_key": "[REDACTED:secret]", "messages": REDACTED_PROMPT}
        assert content_for(c.store, e.id)["input_messages"] == REDACTED_PROMPT  # type: ignore[index]
    assert SECRET.encode() not in (tmp_path / "c.db").read_bytes()
