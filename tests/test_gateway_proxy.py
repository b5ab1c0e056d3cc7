"""End to end: the real LiteLLM proxy (``meterline gateway``) meters every request exactly once.

One proxy process for the module (~12 s to start) against the local fake provider, a SQLite destination,
virtual keys through meterline.gateway.auth; requests are plain HTTP.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway_util import MASTER, cost, id_of, post, wait_for_events, write_config
from meterline.gateway.events import event_id
from meterline.testing import FakeProvider, default_usage
from meterline.testing.proxy import ProxyProcess


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("gateway")
    with FakeProvider() as fake:
        config = write_config(root, fake.url)
        db = root / "events.db"
        env = {
            "METERLINE_DESTINATION": f"sqlite:///{db}",
            "METERLINE_HOME": str(root / "home"),
            "METERLINE_GATEWAY_KEYS": str(root / "keys.json"),
            "LITELLM_MASTER_KEY": MASTER,
            "METERLINE_BUDGETS": "off",
        }
        with ProxyProcess(config, env=env) as proxy:
            yield {"url": proxy.url, "fake": fake, "db": db, "proxy": proxy}


def _chat(messages_text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": messages_text}]}


def test_every_request_is_metered_once_with_identity(gateway: dict[str, Any]) -> None:
    url, fake, db = gateway["url"], gateway["fake"], gateway["db"]
    sent: dict[str, dict[str, Any]] = {}  # event id -> what the test expects

    def upstream_usage() -> Any:
        return default_usage(fake.requests[-1].body)

    # 1. non-streamed chat, key A, caller headers (meterline + Revenium names), body user and metadata;
    #    the caller's x-meterline-team-id must lose against the key's team (trust rule)
    status, headers, body = post(
        f"{url}/v1/chat/completions",
        {"model": "gpt-4o-mini", **_chat("How much does metering cost per request?"), "user": "end-7",
         "metadata": {"trace_id": "trace-1", "subscriber": {"email": "e@example.com"}}},
        "sk-a-1",
        {"x-meterline-subscriber-id": "sub-42", "x-revenium-product-name": "checkout",
         "x-meterline-team-id": "spoofed-team", "x-meterline-tags": "beta,eu"},
    )  # fmt: skip
    assert status == 200, body
    assert headers.get("x-meterline-metered") == "gateway"
    u = upstream_usage()
    sent[id_of(headers)] = {"model": "gpt-4o-mini", "input": u.input, "output": u.output, "alias": "app-a",
                            "team": "team-a", "org": "org-1", "user": "alice", "end_user": "end-7", "stream": False,
                            "operation": "chat", "subscriber": "sub-42", "product": "checkout", "trace": "trace-1",
                            "group": "gpt-4o-mini", "fallback": 0}  # fmt: skip

    # 2. streamed chat, key B
    status, headers, body = post(
        f"{url}/v1/chat/completions", {"model": "gpt-4o-mini", "stream": True, **_chat("stream me a reply")}, "sk-b-1"
    )
    assert status == 200 and b"data: [DONE]" in body
    u = upstream_usage()
    sent[id_of(headers)] = {"model": "gpt-4o-mini", "input": u.input, "output": u.output, "alias": "app-b",
                            "team": "team-b", "org": "org-2", "user": None, "end_user": None, "stream": True,
                            "operation": "chat", "group": "gpt-4o-mini", "fallback": 0}  # fmt: skip

    # 3. embeddings
    status, headers, body = post(f"{url}/v1/embeddings", {"model": "embed", "input": "embed this sentence"}, "sk-a-1")
    assert status == 200, body
    u = upstream_usage()
    sent[id_of(headers)] = {"model": "text-embedding-3-small", "input": u.input, "output": 0, "alias": "app-a",
                            "team": "team-a", "org": "org-1", "stream": False, "operation": "embedding",
                            "group": "embed", "fallback": 0}  # fmt: skip

    # 4. Anthropic /v1/messages: meterline metadata sits under litellm_metadata there
    status, headers, body = post(
        f"{url}/v1/messages",
        {"model": "claude-haiku", "max_tokens": 50, "messages": [{"role": "user", "content": "Bonjour Claude"}],
         "litellm_metadata": {"subscriber_id": "sub-msg", "agent": "support-bot"}},
        "sk-b-1",
    )  # fmt: skip
    assert status == 200, body
    u = upstream_usage()
    sent[id_of(headers)] = {"model": "claude-3-5-haiku-20241022", "input": u.input, "output": u.output,
                            "alias": "app-b", "team": "team-b", "stream": False, "operation": "chat",
                            "subscriber": "sub-msg", "agent": "support-bot", "group": "claude-haiku",
                            "provider": "anthropic", "fallback": 0}  # fmt: skip

    # 4b. /v1/messages streamed (Anthropic SSE)
    status, headers, body = post(
        f"{url}/v1/messages",
        {"model": "claude-haiku", "max_tokens": 50, "stream": True,
         "messages": [{"role": "user", "content": "Stream it, Claude"}]},
        "sk-a-1",
    )  # fmt: skip
    assert status == 200 and b"message_stop" in body, body
    u = upstream_usage()
    sent[id_of(headers)] = {"model": "claude-3-5-haiku-20241022", "input": u.input, "output": u.output,
                            "alias": "app-a", "team": "team-a", "stream": True, "operation": "chat",
                            "group": "claude-haiku", "provider": "anthropic", "fallback": 0}  # fmt: skip

    # 5. a fallback: "flaky" cannot connect, the proxy falls back to gpt-4o-mini; one event, depth 1
    status, headers, body = post(
        f"{url}/v1/chat/completions", {"model": "flaky", **_chat("fall back please")}, "sk-a-1"
    )
    assert status == 200, body
    u = upstream_usage()
    sent[id_of(headers)] = {"model": "gpt-4o-mini", "input": u.input, "output": u.output, "alias": "app-a",
                            "team": "team-a", "stream": False, "operation": "chat", "group": "gpt-4o-mini",
                            "fallback": 1}  # fmt: skip

    # 6. /v1/completions with the master key (no identity)
    status, headers, body = post(f"{url}/v1/completions", {"model": "gpt-4o-mini", "prompt": "Say hi"}, MASTER)
    assert status == 200, body
    u = upstream_usage()
    sent[id_of(headers)] = {"model": "gpt-4o-mini", "input": u.input, "output": u.output, "alias": None,
                            "team": None, "stream": False, "operation": "completion", "group": "gpt-4o-mini",
                            "fallback": 0}  # fmt: skip

    # 7. an upstream failure (the provider answers 400): metered once as an error, no tokens
    fake.fail_next(status=400, path_contains="chat")
    status, headers, body = post(
        f"{url}/v1/chat/completions", {"model": "gpt-4o-mini", **_chat("this one fails")}, "sk-a-1",
        {"x-meterline-subscriber-id": "sub-err"},
    )  # fmt: skip
    assert status == 400, body
    failed_id = id_of(headers)

    events = wait_for_events(db, [*sent, failed_id])
    time.sleep(2.5)  # anything metered twice would be written by now
    events = wait_for_events(db, [*sent, failed_id])
    assert len(events) == len(sent) + 1, sorted((e.model, e.status) for e in events.values())

    for eid, want in sent.items():
        e = events[eid]
        assert e.integration == "litellm_proxy"
        assert e.status == "success", (want, e.error_message)
        assert e.provider == want.get("provider", "openai")
        assert e.model == want["model"]
        assert e.operation == want["operation"]
        assert e.stream is want["stream"]
        assert (e.input_tokens, e.output_tokens, e.cache_read_tokens) == (want["input"], want["output"], 0)
        assert e.total_tokens == want["input"] + want["output"]
        assert e.total_cost == cost(want["model"], want["input"], want["output"])
        assert e.api_key_alias == want["alias"]
        assert e.team_id == want["team"]
        assert e.model_group == want["group"]
        assert e.fallback_depth == want["fallback"]
        assert e.deployment_id and len(e.deployment_id) == 64
        assert e.api_key_hash and len(e.api_key_hash) == 64 and "sk-" not in e.api_key_hash
        for field, key in (("organization_id", "org"), ("user_id", "user"), ("end_user_id", "end_user"),
                           ("subscriber_id", "subscriber"), ("product_id", "product"), ("trace_id", "trace"),
                           ("agent", "agent")):  # fmt: skip
            if key in want:
                assert getattr(e, field) == want[key], field

    first = events[next(iter(sent))]
    assert first.subscriber_email == "e@example.com"
    assert first.tags == ["beta", "eu"]
    assert first.api_base == f"{fake.url}/v1"
    assert first.stop_reason == "end"
    stream_event = events[list(sent)[1]]
    assert stream_event.time_to_first_token_ms is not None and stream_event.time_to_first_token_ms >= 0
    assert stream_event.api_key_hash != first.api_key_hash  # two keys, two hashes

    err = events[failed_id]
    assert (err.status, err.stop_reason, err.total_tokens) == ("error", "error", 0)
    assert err.error_type == "BadRequestError"
    assert (err.team_id, err.subscriber_id, err.model_group) == ("team-a", "sub-err", "gpt-4o-mini")
    assert (err.total_cost, err.pricing_source) == (0, "failed-call")


def test_a_stream_the_client_abandons_is_one_cancelled_event(gateway: dict[str, Any]) -> None:
    """The client hangs up mid-stream: one event, ``cancelled`` (LiteLLM alone would log it as a success)."""
    import http.client
    import urllib.parse

    fake = gateway["fake"]
    fake.set_reply(text=" ".join(f"word{i}" for i in range(40)))
    fake.delay(0, between_events=0.1)  # ~4 s of stream: the client leaves after the first words
    try:
        parts = urllib.parse.urlsplit(gateway["url"])
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        body = {"model": "gpt-4o-mini", "stream": True, **_chat("tell me a long story"), "user": "quitter"}
        conn.request("POST", "/v1/chat/completions", json.dumps(body),
                     {"Authorization": "Bearer sk-a-1", "Content-Type": "application/json"})  # fmt: skip
        resp = conn.getresponse()
        assert resp.status == 200
        call_id = id_of({k.lower(): v for k, v in resp.getheaders()})
        data_lines = 0
        while data_lines < 3:  # the role chunk and two words arrived
            data_lines += resp.readline().startswith(b"data: ")
        conn.sock.close()  # hang up mid-stream
        conn.close()
        events = wait_for_events(Path(gateway["db"]), [call_id], timeout=30)
    finally:
        fake.delay(0)
        fake.set_reply()
    e = events[call_id]
    assert (e.status, e.stop_reason, e.stream, e.integration) == ("cancelled", "cancelled", True, "litellm_proxy")
    assert (e.api_key_alias, e.team_id, e.end_user_id) == ("app-a", "team-a", "quitter")
    # no usage chunk reached the client: the counts are LiteLLM's own count of what was streamed, marked estimated
    assert e.usage_source == "estimated" and e.model == "gpt-4o-mini" and e.provider == "openai"
    assert e.input_tokens > 0 and 2 <= e.output_tokens < 40


def test_unknown_key_is_rejected_and_metered_without_the_raw_key(gateway: dict[str, Any]) -> None:
    status, _, body = post(
        f"{gateway['url']}/v1/chat/completions", {"model": "gpt-4o-mini", **_chat("hi")}, "sk-not-a-real-key"
    )
    assert status == 401
    assert "unknown API key" in json.loads(body)["error"]["message"]
    time.sleep(2.5)
    db = Path(gateway["db"])
    raw = b"".join(p.read_bytes() for p in (db, db.with_name(db.name + "-wal")) if p.exists())
    assert b"sk-not-a-real-key" not in raw  # LiteLLM reports the raw key as the 'hash' on auth failures


def test_an_instrumented_litellm_client_does_not_count_gateway_calls_again(
    gateway: dict[str, Any], meter_db: Any
) -> None:
    """Client (LiteLLM SDK, meterline instrumented) -> gateway: the gateway's event is authoritative
    (x-meterline-metered: gateway), so the call is counted once in all, streamed or not."""
    import litellm

    import meterline

    meterline.instrument_litellm()
    try:
        ids = []
        for stream in (False, True):
            response = litellm.completion(
                model="openai/gpt-4o-mini",
                api_base=f"{gateway['url']}/v1",
                api_key="sk-b-1",
                messages=[{"role": "user", "content": f"through the gateway, stream={stream}"}],
                stream=stream,
                **({"stream_options": {"include_usage": True}} if stream else {}),
            )
            if stream:
                chunks = list(response)
                call_id = chunks[-1]._hidden_params["additional_headers"]["llm_provider-x-litellm-call-id"]
            else:
                call_id = response._hidden_params["additional_headers"]["llm_provider-x-litellm-call-id"]
            ids.append(event_id(call_id))
    finally:
        meterline.uninstrument("litellm")
    assert meter_db.events() == []  # the client side recorded nothing
    events = wait_for_events(gateway["db"], ids)
    assert [events[i].team_id for i in ids] == ["team-b", "team-b"]
    assert [events[i].stream for i in ids] == [False, True]


def test_calls_answered_before_sigterm_are_all_stored(gateway: dict[str, Any]) -> None:
    """Runs last: it stops the module's proxy. LiteLLM runs success callbacks on a worker that its own
    shutdown does not drain; meterline's handler drains it before the proxy exits."""
    import sqlite3
    from concurrent.futures import ThreadPoolExecutor

    url, db = gateway["url"], gateway["db"]
    with ThreadPoolExecutor(8) as pool:
        results = list(
            pool.map(
                lambda i: post(f"{url}/v1/chat/completions", {"model": "gpt-4o-mini", **_chat(f"burst {i}")}, MASTER),
                range(60),
            )
        )
    assert all(status == 200 for status, _, _ in results)
    ids = [id_of(headers) for _, headers, _ in results]
    gateway["proxy"].stop()  # SIGTERM right after the burst
    conn = sqlite3.connect(db)
    try:
        stored = {row[0] for row in conn.execute("SELECT id FROM events")}
    finally:
        conn.close()
    assert set(ids) <= stored, f"{len(set(ids) - stored)} of {len(ids)} answered calls were not stored"
