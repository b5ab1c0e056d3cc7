"""revenium-python-sdk's LiteLLM and Anthropic middlewares, unchanged, metering to a meterline collector:
only REVENIUM_METERING_BASE_URL changes, with a ``hak_…`` key from ``keys create --style revenium``.

The SDK patches LiteLLM and the Anthropic SDK process-wide on import, so it runs in a subprocess, in its
own venv (``.ci/run`` creates it; ``METERLINE_REVENIUM_PYTHON`` points elsewhere). Locally the test skips
when that venv is missing; under CI=true it fails.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from interop_support import Collector, collector_fixture, tokens  # noqa: F401 - fixture
from meterline.interop.ingest import event_id
from meterline.store import keys as key_store

PYTHON = os.environ.get("METERLINE_REVENIUM_PYTHON", "/tmp/meterline-venv-revenium/bin/python")
SCRIPT = Path(__file__).with_name("revenium_client.py")
SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture
def revenium_python() -> str:
    ok = (
        Path(PYTHON).exists()
        and subprocess.run([PYTHON, "-c", "import revenium_middleware"], check=False).returncode == 0
    )
    if not ok:
        reason = (
            f"revenium-python-sdk venv not found at {PYTHON}: python -m venv --system-site-packages "
            f"{Path(PYTHON).parents[1]} && {Path(PYTHON).parent}/pip install revenium-python-sdk (as .ci/run does)"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason + " (CI=true: the Revenium compatibility test must run)")
        pytest.skip(reason)
    return PYTHON


class Flaky:
    """Forwards to the collector, but answers the first ``fail`` requests with 503 AFTER the collector
    stored them: the SDK retries an event that was already delivered."""

    def __init__(self, target: str, fail: int) -> None:
        flaky = self
        self.fail, self.seen = fail, 0
        self.lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                hdrs = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                req = urllib.request.Request(target + self.path, data=body, headers=hdrs, method="POST")
                try:
                    with urllib.request.urlopen(req, timeout=10) as resp:
                        status, text = resp.status, resp.read()
                except urllib.error.HTTPError as exc:
                    status, text = exc.code, exc.read()
                with flaky.lock:
                    flaky.seen += 1
                    if flaky.seen <= flaky.fail:
                        status, text = 503, b'{"status":503,"error":"Service Unavailable"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def revenium_key(collector: Collector) -> str:
    key, rec = key_store.create_key(collector.tc.app.state.writer, "ingest", "revenium sdk", style="revenium")
    assert key.startswith("hak_") and rec.scope == "ingest"
    return key


@pytest.fixture
def flaky(collector: Collector) -> Iterator[Flaky]:
    proxy = Flaky(collector.url, fail=1)
    yield proxy
    proxy.close()


def _run(python: str, mode: str, base: str, key: str, provider_url: str) -> list[dict[str, Any]]:
    env = {
        **os.environ,
        "PYTHONPATH": SRC,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "REVENIUM_METERING_BASE_URL": base,
        "REVENIUM_METERING_API_KEY": key,
    }
    env.pop("PYTEST_CURRENT_TEST", None)
    env.pop("METERLINE_RAISE_INTERNAL", None)
    proc = subprocess.run(
        [python, str(SCRIPT), mode, provider_url], env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: list[dict[str, Any]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_revenium_litellm_middleware(
    revenium_python: str, collector: Collector, revenium_key: str, flaky: Flaky, fake_provider: Any
) -> None:
    fake_provider.set_usage(input=300, output=25, cache_read=200, reasoning=5)
    calls = _run(revenium_python, "litellm", f"{flaky.url}/meter", revenium_key, fake_provider.url)
    events = collector.wait(2)
    assert flaky.seen >= 3  # the first delivery was answered 503 and sent again
    assert len(events) == 2, [e.to_wire() for e in events]
    assert {e.id for e in events} == {event_id("revenium", c["id"]) for c in calls}
    for e in events:
        assert (e.integration, e.provider, e.model) == ("revenium", "openai", "gpt-4o-mini")
        # LiteLLM's prompt_tokens (500) include the 200 cached: schema v1 keeps them apart
        assert calls[0]["prompt"] == 500 and calls[0]["cached"] == 200
        assert (e.input_tokens, e.cache_read_tokens, e.output_tokens) == (300, 200, 25)
        assert (e.organization_id, e.task_type, e.agent, e.trace_id) == ("acme", "support", "helpdesk", "trace-1")
        assert e.total_cost is not None  # priced by meterline: the middleware sends no cost
    assert sorted((e.subscriber_id, e.subscriber_email) for e in events) == [
        ("cust-1", "cust-1@example.com"),
        ("cust-2", "cust-2@example.com"),
    ]


def test_revenium_anthropic_middleware(
    revenium_python: str, collector: Collector, revenium_key: str, fake_provider: Any
) -> None:
    fake_provider.set_usage(input=40, output=12, cache_read=1000, cache_write=300)
    calls = _run(revenium_python, "anthropic", f"{collector.url}/meter", revenium_key, fake_provider.url)
    (e,) = collector.wait(1)
    assert e.id == event_id("revenium", calls[0]["id"])
    assert (e.provider, e.model, e.subscriber_id) == ("anthropic", "claude-3-5-haiku-20241022", "cust-3")
    assert tokens(e) == (40, 1000, 300, 12, 0)
    assert e.total_tokens == 1352 and e.stop_reason == "end" and e.status == "success"


def test_revenium_sdk_refuses_a_meterline_style_key_but_the_collector_accepts_a_hak_key(
    collector: Collector, revenium_key: str
) -> None:
    from collector_support import request

    body = {
        "transactionId": "tx-1",
        "model": "gpt-4o-mini",
        "provider": "OPENAI",
        "inputTokenCount": 10,
        "outputTokenCount": 2,
        "totalTokenCount": 12,
        "requestTime": "2026-11-02T10:00:00Z",
        "responseTime": "2026-11-02T10:00:01Z",
        "completionStartTime": "2026-11-02T10:00:01Z",
        "requestDuration": 1000,
        "isStreamed": False,
        "stopReason": "END",
        "costType": "AI",
    }
    url = f"{collector.url}/meter/v2/ai/completions"
    status, doc = request(url, "POST", body, headers={"x-api-key": revenium_key})
    assert status == 201 and doc["id"] == event_id("revenium", "tx-1") and doc["resourceType"]
    status, doc = request(url, "POST", body, headers={"x-api-key": "hak_not_a_key"})
    assert status == 401
