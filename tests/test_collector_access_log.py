"""The collector's access log (uvicorn, `meterline serve` in a real process) never contains an API key,
whatever query parameter or path a client put it in."""

from __future__ import annotations

import time
from pathlib import Path

from collector_support import ProcessCollector, request
from meterline.server.hardening import scrub_url
from meterline.store import keys as key_store
from meterline.store.backend import open_stores


def test_scrub_url_keeps_filters_and_redacts_secrets() -> None:
    assert scrub_url("/v1/usage?model=gpt-4o&api_key=abc&token=t&x=1") == (
        "/v1/usage?model=gpt-4o&api_key=[redacted]&token=[redacted]&x=1"
    )
    assert scrub_url("/v1/events?k=ml_a_0123456789abcdef") == "/v1/events?k=[redacted]"
    assert scrub_url("/v1/traces/ml_r_0123456789abcdef") == "/v1/traces/[redacted]"


def test_access_log_never_contains_a_key(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'c.db'}"
    writer, reader = open_stores(database)
    key = key_store.create_key(writer, "admin", "log-test")[0]
    writer.close()
    reader.close()
    log = tmp_path / "collector.log"
    c = ProcessCollector(database, "--log-level", "info", log=log).start()
    try:
        for query in (f"api_key={key}", f"key={key}", f"token={key}", f"access_token={key}", f"q={key}",
                      f"model=gpt-4o&apikey={key}&x-api-key={key}"):  # fmt: skip
            status, _ = request(f"{c.url}/v1/usage?{query}", key=key)
            assert status == 200
        assert request(f"{c.url}/v1/traces/{key}", key=key)[0] == 404
        assert request(f"{c.url}/v1/usage?group_by=model", key=key)[0] == 200
    finally:
        c.stop()
    deadline = time.monotonic() + 5
    text = log.read_text()
    while "group_by=model" not in text and time.monotonic() < deadline:
        time.sleep(0.1)
        text = log.read_text()
    assert "GET /v1/usage?group_by=model" in text  # the access log is on, and keeps plain filters
    assert text.count("[redacted]") >= 7
    assert key not in text and key[10:] not in text
