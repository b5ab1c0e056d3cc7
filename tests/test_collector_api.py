"""The collector over real HTTP (uvicorn on a thread) on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from collector_support import ThreadCollector, request, wire_event
from meterline.store import keys as key_store


@pytest.fixture
def database(any_database: str) -> str:
    """Every event store, ClickHouse included: what this module checks, all of them must do."""
    return any_database


MTOK = Decimal(10) ** 6
# gpt-4o-mini list prices (USD per million tokens)
IN, OUT = Decimal("0.15") / MTOK, Decimal("0.60") / MTOK


@pytest.fixture
def collector(database: str) -> Iterator[ThreadCollector]:
    with ThreadCollector(database=database, max_batch_events=100, max_body_bytes=200_000) as c:
        yield c


@pytest.fixture
def keys(collector: ThreadCollector) -> dict[str, str]:
    return {
        scope: key_store.create_key(collector.app.state.writer, scope, f"test-{scope}")[0] for scope in key_store.SCOPES
    }


def post(c: ThreadCollector, events: list[dict[str, Any]], key: str, **kw: Any) -> tuple[int, Any]:
    return request(c.url + "/v1/events", "POST", {"events": events}, key=key, **kw)


def test_ingest_is_idempotent_and_prices_unpriced_events(collector: ThreadCollector, keys: dict[str, str]) -> None:
    batch = [wire_event(subscriber_id="acme") for _ in range(3)]
    assert post(collector, batch, keys["ingest"]) == (200, {"accepted": 3, "duplicates": 0, "rejected": []})
    again = [*batch, wire_event(), batch[0]]  # a re-sent batch, one new event, one repeated inside the batch
    assert post(collector, again, keys["ingest"], gzip_body=True) == (
        200,
        {"accepted": 1, "duplicates": 4, "rejected": []},
    )
    assert collector.store.count() == 4
    stored = {e.id: e for e in collector.store.iter_events()}
    e = stored[batch[0]["id"]]
    assert (e.input_cost, e.output_cost) == (IN * 1000, OUT * 100)
    assert e.total_cost == IN * 1000 + OUT * 100
    assert e.pricing_source is not None and e.pricing_source.startswith("genai-prices")
    # a sender's own cost is kept, not re-priced
    priced = wire_event(input_cost="0.5", output_cost="0.25", total_cost="0.75")
    assert post(collector, [priced], keys["admin"])[0] == 200
    assert collector.store.trace  # read API available
    got = next(x for x in collector.store.iter_events() if x.id == priced["id"])
    assert got.total_cost == Decimal("0.75")


def test_invalid_events_are_rejected_by_field_and_the_rest_stored(
    collector: ThreadCollector, keys: dict[str, str]
) -> None:
    good = wire_event()
    bad_tokens = wire_event(input_tokens=-5)
    bad_cost = wire_event(total_cost=0.01)
    no_id = wire_event()
    del no_id["id"]
    status, body = post(collector, [bad_tokens, good, bad_cost, no_id, {"model": "x"}], keys["ingest"])
    assert status == 207
    assert body["accepted"] == 1 and body["duplicates"] == 0
    assert [(r["index"], r["field"]) for r in body["rejected"]] == [
        (0, "input_tokens"),
        (2, "total_cost"),
        (3, "id"),
        (4, "provider"),
    ]
    assert body["rejected"][0]["id"] == bad_tokens["id"]
    assert "non-negative integer" in body["rejected"][0]["reason"]
    assert "decimal strings" in body["rejected"][1]["reason"]
    assert [e.id for e in collector.store.iter_events()] == [good["id"]]
    status, body = request(collector.url + "/v1/events", "POST", raw=b"{not json", key=keys["ingest"])
    assert status == 400 and "not JSON" in body["detail"]


def test_limits_answer_413_naming_the_limit(collector: ThreadCollector, keys: dict[str, str]) -> None:
    status, body = post(collector, [wire_event() for _ in range(101)], keys["ingest"])
    assert status == 413 and "max_batch_events (100)" in body["detail"]
    big = [wire_event(attributes={f"k{i}": "x" * 1000 for i in range(60)}) for _ in range(5)]
    status, body = post(collector, big, keys["ingest"])
    assert status == 413 and "max_body_bytes (200000 bytes)" in body["detail"]
    # gzip cannot smuggle a larger body in: the limit applies after decompression
    status, body = post(collector, big, keys["ingest"], gzip_body=True)
    assert status == 413 and "max_body_bytes" in body["detail"]
    assert collector.store.count() == 0


def test_auth_401_403_and_revocation(collector: ThreadCollector, keys: dict[str, str]) -> None:
    usage = collector.url + "/v1/usage"
    status, body = request(usage)
    assert status == 401 and "missing API key" in body["detail"] and "Authorization: Bearer" in body["detail"]
    status, body = request(usage, key="ml_r_not-a-real-key")
    assert (status, body["detail"]) == (401, "unknown or revoked API key")
    status, body = request(usage, key=keys["ingest"])
    assert status == 403 and "scope 'ingest'" in body["detail"] and "'read'" in body["detail"]
    status, _ = post(collector, [wire_event()], keys["read"])
    assert status == 403
    assert request(usage, key=keys["read"])[0] == 200
    assert request(usage, headers={"x-api-key": keys["read"]})[0] == 200
    # keys API: admin only; a revoked key stops working at once on this replica
    assert request(collector.url + "/v1/keys", key=keys["read"])[0] == 403
    status, created = request(collector.url + "/v1/keys", "POST", {"scope": "read"}, key=keys["admin"])
    assert status == 201 and created["key"].startswith("ml_r_")
    assert request(usage, key=created["key"])[0] == 200
    status, listed = request(collector.url + "/v1/keys", key=keys["admin"])
    assert created["id"] in [k["id"] for k in listed] and all("key" not in k for k in listed)
    assert request(collector.url + f"/v1/keys/{created['id']}", "DELETE", key=keys["admin"])[0] == 200
    assert request(usage, key=created["key"])[0] == 401
    # keys are stored hashed, never in clear
    rows = collector.app.state.reader.fetch("SELECT key_hash FROM api_keys")
    assert key_store.hash_key(created["key"]) in {r[0] for r in rows}
    assert created["key"] not in {r[0] for r in rows}


def _usage(c: ThreadCollector, key: str, **params: Any) -> list[dict[str, Any]]:
    from urllib.parse import urlencode

    status, body = request(c.url + "/v1/usage?" + urlencode(params, doseq=True), key=key)
    assert status == 200, body
    rows: list[dict[str, Any]] = body["rows"]
    return rows


def test_usage_groups_buckets_and_time_zones(collector: ThreadCollector, keys: dict[str, str]) -> None:
    events = [
        wire_event(start_time="2026-03-01T23:30:00Z", subscriber_id="a"),  # 2 March in Paris
        wire_event(start_time="2026-03-01T10:00:00Z", subscriber_id="a", status="error", output_tokens=0),
        wire_event(
            start_time="2026-03-02T10:00:00Z",
            subscriber_id="b",
            model="claude-haiku-4-5",
            provider="anthropic",
            cache_read_tokens=2000,
        ),
        wire_event(start_time="2026-03-09T10:00:00Z", subscriber_id="b", model="my-private-model"),
    ]
    assert post(collector, events, keys["ingest"])[0] == 200
    rows = _usage(collector, keys["read"], group_by="subscriber_id")
    by_sub = {r["subscriber_id"]: r for r in rows}
    assert by_sub["a"]["requests"] == 2 and by_sub["a"]["errors"] == 1
    assert by_sub["a"]["output_tokens"] == 100 and by_sub["a"]["input_tokens"] == 2000
    assert Decimal(by_sub["a"]["total_cost"]) == IN * 2000 + OUT * 100
    assert Decimal(by_sub["a"]["output_cost"]) == OUT * 100
    assert by_sub["b"]["unpriced"] == 1 and by_sub["b"]["cache_read_tokens"] == 2000
    assert isinstance(by_sub["a"]["total_cost"], str)

    utc = _usage(collector, keys["read"], bucket="day")
    assert [(r["bucket"][:10], r["requests"]) for r in utc] == [("2026-03-01", 2), ("2026-03-02", 1), ("2026-03-09", 1)]
    paris = _usage(collector, keys["read"], bucket="day", tz="Europe/Paris")
    assert [(r["bucket"], r["requests"]) for r in paris] == [
        ("2026-03-01T00:00:00+01:00", 1),
        ("2026-03-02T00:00:00+01:00", 2),
        ("2026-03-09T00:00:00+01:00", 1),
    ]
    weeks = _usage(collector, keys["read"], bucket="week", group_by=["model"])
    assert [(r["bucket"][:10], r["model"], r["requests"]) for r in weeks] == [
        ("2026-02-23", "gpt-4o-mini", 2),
        ("2026-03-02", "claude-haiku-4-5", 1),
        ("2026-03-09", "my-private-model", 1),
    ]
    filtered = _usage(
        collector,
        keys["read"],
        group_by="model",
        subscriber_id=["b"],
        start="2026-03-02T00:00:00Z",
        end="2026-03-05T00:00:00Z",
    )
    assert [(r["model"], r["requests"]) for r in filtered] == [("claude-haiku-4-5", 1)]
    status, body = request(collector.url + "/v1/usage?group_by=colour", key=keys["read"])
    assert status == 400 and "unknown dimension 'colour'" in body["detail"]
    status, body = request(collector.url + "/v1/usage?bucket=year", key=keys["read"])
    assert status == 400 and "bucket" in body["detail"]


def test_events_pagination_and_traces(collector: ThreadCollector, keys: dict[str, str]) -> None:
    trace = str(uuid.uuid4())
    events = [
        wire_event(
            start_time=f"2026-04-01T10:00:{i:02d}Z",
            trace_id=trace if i < 3 else None,
            environment="prod" if i % 2 else "dev",
        )
        for i in range(25)
    ]
    events[1]["status"] = "error"
    assert post(collector, events, keys["ingest"])[0] == 200
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        url = collector.url + "/v1/events?limit=10" + (f"&cursor={cursor}" if cursor else "")
        status, body = request(url, key=keys["read"])
        assert status == 200
        seen += [e["id"] for e in body["events"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and seen == [e["id"] for e in events]
    status, body = request(collector.url + "/v1/events?environment=prod&limit=100", key=keys["read"])
    assert [e["id"] for e in body["events"]] == [e["id"] for e in events if e["environment"] == "prod"]
    status, body = request(collector.url + "/v1/events?cursor=garbage", key=keys["read"])
    assert status == 400 and "cursor" in body["detail"]

    status, body = request(collector.url + f"/v1/traces/{trace}", key=keys["read"])
    assert status == 200
    assert [e["id"] for e in body["events"]] == [e["id"] for e in events[:3]]
    totals = body["totals"]
    assert (totals["requests"], totals["errors"], totals["input_tokens"]) == (3, 1, 3000)
    assert Decimal(totals["total_cost"]) == 3 * (IN * 1000 + OUT * 100)
    assert request(collector.url + "/v1/traces/nope", key=keys["read"])[0] == 404


def test_health_readiness_metrics_and_docs(collector: ThreadCollector, keys: dict[str, str]) -> None:
    assert request(collector.url + "/healthz") == (200, {"status": "ok", "detail": None})
    assert request(collector.url + "/readyz")[0] == 200
    ev = wire_event()
    post(collector, [ev, wire_event(), wire_event(input_tokens="x")], keys["ingest"])
    post(collector, [ev], keys["ingest"])
    status, text = request(collector.url + "/metrics")
    assert status == 200
    lines = text.splitlines()
    assert "meterline_events_ingested_total 2" in lines
    assert "meterline_events_rejected_total 1" in lines
    assert "meterline_events_duplicate_total 1" in lines
    assert 'meterline_http_requests_total{method="POST",route="/v1/events",status="207"} 1' in lines
    assert 'meterline_http_request_duration_seconds_count{route="/v1/events"} 2' in lines
    status, spec = request(collector.url + "/openapi.json")
    assert status == 200 and {"/v1/events", "/v1/usage", "/v1/traces/{trace_id}"} <= set(spec["paths"])
    assert request(collector.url + "/docs")[0] == 200


def test_collector_prices_with_the_users_price_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from meterline.pricing import Pricer, set_pricer

    table = tmp_path / "prices.toml"
    table.write_text('[[model]]\nmodel = "acme-private-*"\ninput_mtok = "2"\noutput_mtok = "8"\n')
    monkeypatch.setenv("METERLINE_PRICES", str(table))
    try:
        with ThreadCollector(database=f"sqlite:///{tmp_path / 'c.db'}", auth=False) as c:
            ev = wire_event(provider="acme", model="acme-private-7b", input_tokens=1500, output_tokens=250)
            assert request(c.url + "/v1/events", "POST", {"events": [ev]})[0] == 200
            (stored,) = list(c.store.iter_events())
    finally:
        set_pricer(Pricer())
    assert stored.input_cost == Decimal(2) / MTOK * 1500
    assert stored.output_cost == Decimal(8) / MTOK * 250
    assert stored.pricing_source == "override"
