"""The hostile corpus (tests/hostile_corpus.py) against real collectors on SQLite and PostgreSQL: no request
draws a 5xx, the collector stays up and still stores and reports a good batch afterwards."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest

from collector_support import ThreadCollector, request, wire_event
from hostile_corpus import all_cases
from meterline.core.event import UsageEvent
from meterline.store import keys as key_store


@pytest.fixture
def database(any_database: str) -> str:
    """Every event store, ClickHouse included: what this module checks, all of them must do."""
    return any_database


@pytest.fixture
def collector(database: str) -> Iterator[ThreadCollector]:
    with ThreadCollector(database=database, max_batch_events=500, max_body_bytes=2_000_000) as c:
        yield c


def send(url: str, method: str, path: str, body: bytes | None, headers: dict[str, str], key: str) -> tuple[int, bytes]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    hdrs = {"Authorization": f"Bearer {key}", "Content-Type": "application/json", **headers}
    hdrs = {k: v for k, v in hdrs.items() if v}
    override = hdrs.pop("Content-Length-Override", None)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in hdrs.items():
            conn.putheader(k, v.encode("latin-1"))
        conn.putheader("Content-Length", override or str(len(body or b"")))
        conn.endheaders(body or b"")
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _store_out_of_window_rows(store: Any) -> None:
    """Rows an older version accepted (year 1, year 9999, costs of $5,000,000): queries must still answer."""
    rows = [
        UsageEvent(provider="p", model="m", start_time=datetime(1, 1, 1, tzinfo=timezone.utc)),
        UsageEvent(provider="p", model="m", start_time=datetime(9999, 12, 31, 23, 59, tzinfo=timezone.utc)),
        *(
            UsageEvent(
                provider="p",
                model="big",
                start_time=datetime(2026, 11, 2, tzinfo=timezone.utc),
                total_cost=Decimal("5000000"),
                input_cost=Decimal("5000000"),
                subscriber_id="whale",
            )
            for _ in range(3)
        ),
    ]
    assert store.insert(rows) == 5


def test_hostile_corpus_draws_no_5xx(collector: ThreadCollector) -> None:
    writer = collector.app.state.writer
    admin = key_store.create_key(writer, "admin", "corpus")[0]
    _store_out_of_window_rows(writer)
    cases = all_cases()
    assert len(cases) >= 200
    failures: list[str] = []
    statuses: dict[int, int] = {}
    for name, method, path, body, headers in cases:
        try:
            status, text = send(collector.url, method, path, body, headers, admin)
        except OSError as exc:
            failures.append(f"{name}: connection error {exc!r}")
            continue
        statuses[status] = statuses.get(status, 0) + 1
        if status >= 500:
            failures.append(f"{name}: {status} {text[:200]!r}")
        elif status >= 400:  # every refusal says what is wrong, in JSON
            try:
                detail = json.loads(text).get("detail")
            except ValueError:
                detail = None
            if not detail:
                failures.append(f"{name}: {status} without a detail: {text[:200]!r}")
    print(sorted(statuses.items()), len(cases))
    assert failures == [], "\n".join(failures)
    assert statuses.get(400, 0) + statuses.get(422, 0) + statuses.get(207, 0) > 150, statuses
    # still up, still storing and reporting
    good = [wire_event(subscriber_id="after-corpus") for _ in range(3)]
    status, body = request(collector.url + "/v1/events", "POST", {"events": good}, key=admin)
    assert (status, body["accepted"]) == (200, 3)
    for tz in ("UTC", "Europe/Paris", "Asia/Kolkata"):
        for bucket in ("hour", "day", "week", "month"):
            status, body = request(collector.url + f"/v1/usage?bucket={bucket}&tz={tz}", key=admin)
            assert status == 200, (tz, bucket, body)
    status, body = request(collector.url + "/v1/usage?group_by=subscriber_id", key=admin)
    assert status == 200
    rows = {r["subscriber_id"]: r for r in body["rows"]}
    assert rows["after-corpus"]["requests"] == 3
    assert rows["whale"]["total_cost"] == "15000000"  # three $5,000,000 events, summed exactly
    status, body = request(collector.url + "/v1/usage?group_by=subscriber_id&bucket=day", key=admin)
    assert status == 200 and {r["subscriber_id"]: r for r in body["rows"]}["whale"]["input_cost"] == "15000000"
