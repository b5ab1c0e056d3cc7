"""Compatible ingest routes with raw HTTP: field mapping, client-sent vs meterline-priced cost, idempotency
from the client's ids, each client's own error format, key scopes, and hostile input (nothing accepted
is lost, the collector keeps serving)."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from collector_support import request
from interop_support import Collector, collector_fixture, tokens  # noqa: F401 - fixture
from meterline.interop.ingest import event_id
from meterline.store import keys as key_store

SRC = str(Path(__file__).resolve().parents[1] / "src")
REVENIUM = {
    "transactionId": "chatcmpl-1",
    "model": "gpt-4o-mini",
    "provider": "OPENAI",
    "inputTokenCount": 1500,  # OpenAI-shaped: includes the 1000 cached
    "outputTokenCount": 200,
    "totalTokenCount": 1700,
    "cacheReadTokenCount": 1000,
    "cacheCreationTokenCount": 0,
    "reasoningTokenCount": 64,
    "requestTime": "2026-11-02T10:00:00Z",
    "responseTime": "2026-11-02T10:00:02Z",
    "completionStartTime": "2026-11-02T10:00:01Z",
    "requestDuration": 2000,
    "timeToFirstToken": 850,
    "isStreamed": True,
    "stopReason": "TOKEN_LIMIT",
    "costType": "AI",
    "operationType": "CHAT",
    "subscriber": {"id": "cust-1", "email": "a@acme.test", "credential": {"name": "prod", "value": "sk-secret"}},
    "organizationName": "acme",
    "productName": "assistant",
    "taskType": "summarise",
    "environment": "production",
    "responseQualityScore": 0.9,
    "middlewareSource": "PYTHON",
}


def _post(c: Collector, path: str, body: Any, **kw: Any) -> tuple[int, Any]:
    headers = kw.pop("headers", {})
    if "x-api-key" not in {h.lower() for h in headers}:
        kw.setdefault("key", c.key)
    return request(f"{c.url}{path}", "POST", body, headers=headers, **kw)


def test_revenium_mapping_priced_by_meterline_and_retries_stored_once(collector: Collector) -> None:
    for _ in range(3):  # the SDK's retries resend the same transactionId
        status, doc = _post(collector, "/meter/v2/ai/completions", REVENIUM, headers={"x-api-key": collector.key})
        assert status == 201 and doc["id"] == event_id("revenium", "chatcmpl-1") and doc["label"] == "chatcmpl-1"
    (e,) = collector.events()
    assert (e.provider, e.model, e.integration, e.stream, e.stop_reason) == (
        "openai",
        "gpt-4o-mini",
        "revenium",
        True,
        "max_tokens",
    )
    assert tokens(e) == (500, 1000, 0, 200, 64) and e.total_tokens == 1700
    assert (e.duration_ms, e.time_to_first_token_ms) == (2000.0, 850.0)
    assert (e.subscriber_id, e.subscriber_email, e.credential_name) == ("cust-1", "a@acme.test", "prod")
    assert e.credential_hash and "sk-secret" not in json.dumps(e.to_wire())
    assert (e.organization_id, e.product_id, e.task_type, e.environment) == (
        "acme",
        "assistant",
        "summarise",
        "production",
    )
    assert e.attributes == {"revenium.middlewareSource": "PYTHON"}
    # gpt-4o-mini: 0.15 input, 0.075 cached, 0.60 output per 1M
    assert e.total_cost == Decimal("0.000075") + Decimal("0.000075") + Decimal("0.00012")


def test_revenium_cost_sent_by_the_client_is_kept_and_anthropic_input_is_net(collector: Collector) -> None:
    body = {
        **REVENIUM,
        "transactionId": "msg-1",
        "provider": "ANTHROPIC",
        "model": "claude-3-5-haiku-20241022",
        "inputTokenCount": 40,  # Anthropic: uncached only
        "cacheCreationTokenCount": 300,
        "totalCost": 0.00123,
        "inputTokenCost": 0.0001,
        "stopReason": "END",
    }
    assert _post(collector, "/meter/v2/ai/completions", body)[0] == 201
    (e,) = collector.events()
    assert tokens(e) == (40, 1000, 300, 200, 64)
    assert (e.total_cost, e.input_cost, e.pricing_source) == (Decimal("0.00123"), Decimal("0.0001"), "revenium")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"transactionId": None}, "transactionId: required"),
        ({"inputTokenCount": -1}, "inputTokenCount: must be a non-negative integer; got -1"),
        ({"stopReason": "MAYBE"}, "stopReason: must be one of END"),
        ({"requestTime": "yesterday"}, "requestTime: not an ISO 8601 time"),
        ({"totalCost": "lots"}, "totalCost: not a decimal number"),
        ({"responseQualityScore": 7}, "must be a number between 0 and 1"),
    ],
)
def test_revenium_errors_name_the_camelcase_field(collector: Collector, change: dict[str, Any], message: str) -> None:
    status, doc = _post(collector, "/meter/v2/ai/completions", {**REVENIUM, **change})
    assert status == 400 and doc["status"] == 400 and doc["path"] == "/meter/v2/ai/completions"
    assert message in doc["message"]
    assert collector.events() == []


def test_lago_mapping_prompt_tokens_include_the_cache_and_client_cost_is_kept(collector: Collector) -> None:
    event = {
        "transaction_id": "tx-9",
        "external_subscription_id": "sub-1",
        "external_customer_id": "cust-1",
        "code": "llm",
        "timestamp": 1793613600.5,
        "properties": {
            "model": "claude-3-5-haiku-20241022",
            "custom_llm_provider": "anthropic",
            "prompt_tokens": 1340,  # LiteLLM's spelling: includes cache read 1000 and write 300
            "cache_read_input_tokens": 1000,
            "cache_creation_input_tokens": 300,
            "completion_tokens": 12,
            "response_cost": 0.0042,
            "feature": "search",
        },
    }
    status, doc = _post(collector, "/lago/api/v1/events", {"event": event}, gzip_body=True)
    assert (
        status == 200
        and doc["event"]["transaction_id"] == "tx-9"
        and doc["event"]["lago_id"] == event_id("lago", "tx-9")
    )
    (e,) = collector.events()
    assert tokens(e) == (40, 1000, 300, 12, 0) and e.provider == "anthropic"
    assert (e.subscription_id, e.subscriber_id, e.start_time.timestamp()) == ("sub-1", "cust-1", 1793613600.5)
    assert (e.total_cost, e.pricing_source) == (Decimal("0.0042"), "lago")
    assert e.attributes == {"lago.code": "llm", "lago.feature": "search"}


def test_lago_batch_stores_the_valid_events_and_names_the_bad_ones_by_index(collector: Collector) -> None:
    good = {"transaction_id": "a", "external_subscription_id": "s", "code": "c", "properties": {"model": "gpt-4o"}}
    items = [
        good,
        {**good, "transaction_id": ""},
        {**good, "transaction_id": "b", "properties": {"model": "gpt-4o", "input_tokens": "x"}},
    ]
    status, doc = _post(collector, "/lago/api/v1/events/batch", {"events": items})
    assert status == 422 and doc["code"] == "validation_errors"
    assert doc["error_details"] == {
        "1": {"transaction_id": ["value_is_mandatory"]},
        "2": {"properties.input_tokens": ["invalid_value"]},
    }
    assert [e.id for e in collector.events()] == [event_id("lago", "a")]
    status, doc = _post(collector, "/lago/api/v1/events/batch", {"events": [good] * 101})
    assert status == 422 and doc["error_details"] == {"events": ["too_many_events"]}
    status, doc = _post(collector, "/lago/api/v1/events", {"evnt": good})
    assert status == 400 and "param is missing or the value is empty: event" in doc["error"]


def test_openmeter_cloudevents_single_batch_and_json(collector: Collector) -> None:
    def ce(i: int, **kw: Any) -> dict[str, Any]:
        data = {"model": "gpt-4o-mini", "prompt_tokens": 100, "completion_tokens": 10, "cost": None}
        return {
            "specversion": "1.0",
            "id": f"e{i}",
            "source": "app",
            "type": "tokens",
            "subject": "u1",
            "data": data,
            **kw,
        }

    one = {"Content-Type": "application/cloudevents+json"}
    assert _post(collector, "/openmeter/api/v1/events", ce(1), headers=one) == (204, "")
    batch = {"Content-Type": "application/cloudevents-batch+json"}
    assert _post(collector, "/openmeter/api/v1/events", [ce(1), ce(2)], headers=batch) == (204, "")
    assert _post(collector, "/openmeter/api/v1/events", [ce(3)])[0] == 204  # application/json
    status, doc = _post(collector, "/openmeter/api/v1/events", [ce(4), ce(5, subject="")], headers=batch)
    assert status == 400 and doc["errors"] == [
        {"index": 1, "field": "subject", "reason": "required, a non-empty string"}
    ]
    status, doc = _post(collector, "/openmeter/api/v1/events", ce(6), headers={"Content-Type": "text/plain"})
    assert status == 415 and doc["status"] == 415
    events = collector.events()
    assert sorted(e.id for e in events) == sorted(event_id("openmeter", f"app\x00e{i}") for i in (1, 2, 3, 4))
    assert all(e.subscriber_id == "u1" and e.input_tokens == 100 for e in events)


def test_otlp_hostile_bodies(collector: Collector) -> None:
    url = "/v1/traces"
    import urllib.error
    import urllib.request

    from google.rpc.status_pb2 import Status

    headers = {"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {collector.key}"}
    req = urllib.request.Request(f"{collector.url}{url}", data=b"\x00\xff garbage", headers=headers, method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 400
    assert "not a protobuf ExportTraceServiceRequest" in Status.FromString(err.value.read()).message
    status, doc = _post(collector, url, None, raw=b"{not json", headers={"Content-Type": "application/json"})
    assert status == 400 and "not JSON" in doc["message"]
    status, doc = _post(
        collector,
        url,
        None,
        raw=b"\x1f\x8b\x08 not gzip at all",
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert status == 400
    status, doc = _post(collector, url, {"resourceSpans": []})
    assert (status, doc) == (200, {})
    assert request(f"{collector.url}/healthz")[0] == 200


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/meter/v2/ai/completions", REVENIUM),
        ("/lago/api/v1/events", {"event": {}}),
        ("/openmeter/api/v1/events", {}),
        ("/v1/traces", {}),
    ],
)
def test_compatible_routes_need_an_ingest_key(collector: Collector, path: str, body: Any) -> None:
    assert request(f"{collector.url}{path}", "POST", body)[0] == 401
    read_key, _ = key_store.create_key(collector.tc.app.state.writer, "read")
    assert request(f"{collector.url}{path}", "POST", body, key=read_key)[0] == 403


def test_keys_create_style_revenium_prints_a_hak_key(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'k.db'}"
    env = {"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin", "METERLINE_HOME": str(tmp_path)}
    cmd = [
        sys.executable,
        "-m",
        "meterline",
        "keys",
        "create",
        "--scope",
        "ingest",
        "--style",
        "revenium",
        "--database",
        db,
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    key = out.stdout.strip()
    assert key.startswith("hak_i_") and len(key) > 40
    from meterline.store.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "k.db")
    rec = key_store.find_key(store, key)
    assert rec is not None and rec.scope == "ingest" and rec.prefix == key[:10]
    assert not store.fetch("SELECT 1 FROM api_keys WHERE key_hash = ?", (key,))  # hashed at rest
    store.close()
