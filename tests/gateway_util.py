"""Shared set-up for the gateway tests: a proxy config against the fake provider, HTTP helpers."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from meterline.core.event import UsageEvent
from meterline.gateway.events import event_id
from meterline.store import SQLiteStore

MASTER = "sk-master-test"
KEYS = {
    "sk-a-1": {"key_alias": "app-a", "team_id": "team-a", "org_id": "org-1", "user_id": "alice"},
    "sk-b-1": {"key_alias": "app-b", "team_id": "team-b", "org_id": "org-2"},
}
# USD per million tokens (genai-prices), for independent cost checks
PRICES = {
    "gpt-4o-mini": (Decimal("0.15"), Decimal("0.6")),
    "claude-3-5-haiku-20241022": (Decimal("0.8"), Decimal("4")),
    "text-embedding-3-small": (Decimal("0.02"), Decimal("0")),
}


def write_config(root: Path, fake_url: str, *, extra: str = "") -> Path:
    (root / "keys.json").write_text(json.dumps({"keys": KEYS}))
    config = root / "gateway.yaml"
    config.write_text(
        f"""
model_list:
  - model_name: gpt-4o-mini
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{fake_url}/v1", api_key: fake}}
  - model_name: claude-haiku
    litellm_params: {{model: anthropic/claude-3-5-haiku-20241022, api_base: "{fake_url}", api_key: fake}}
  - model_name: embed
    litellm_params: {{model: openai/text-embedding-3-small, api_base: "{fake_url}/v1", api_key: fake}}
  - model_name: flaky
    litellm_params: {{model: openai/gpt-4o, api_base: "http://127.0.0.1:9/v1", api_key: fake, max_retries: 0}}
litellm_settings:
  num_retries: 0
  request_timeout: 30
router_settings:
  fallbacks: [{{"flaky": ["gpt-4o-mini"]}}]
general_settings:
  master_key: {MASTER}
  custom_auth: meterline.gateway.auth.user_api_key_auth
{extra}
"""
    )
    return config


def post(
    url: str, body: Mapping[str, Any], key: str, headers: Mapping[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def wait_for_events(db: Path, ids: list[str], timeout: float = 20.0) -> dict[str, UsageEvent]:
    """Events by id once every id in ``ids`` is stored (the proxy's recorder writes about every second)."""
    deadline = time.monotonic() + timeout
    found: dict[str, UsageEvent] = {}
    while time.monotonic() < deadline:
        if db.exists():
            store = SQLiteStore(db)
            try:
                found = {e.id: e for e in store.iter_events()}
            finally:
                store.close()
            if all(i in found for i in ids):
                return found
        time.sleep(0.25)
    missing = [i for i in ids if i not in found]
    raise AssertionError(f"{len(missing)} events not stored within {timeout}s: {missing}")


def id_of(headers: Mapping[str, str]) -> str:
    """The event id meterline derives from the proxy's call id (x-litellm-call-id)."""
    return event_id(headers["x-litellm-call-id"])


def cost(model: str, input_tokens: int, output_tokens: int) -> Decimal:
    inp, out = PRICES[model]
    return inp / 10**6 * input_tokens + out / 10**6 * output_tokens


class WebhookReceiver:
    """A local HTTP server that records the JSON bodies POSTed to it (budget alert webhooks)."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        received: list[dict[str, Any]] = []
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with lock:
                    received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.received = received
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def thresholds(self, expect: int, timeout: float = 10.0) -> list[int]:
        """The thresholds received, once at least ``expect`` alerts arrived (or the timeout passed)."""
        deadline = time.monotonic() + timeout
        while len(self.received) < expect and time.monotonic() < deadline:
            time.sleep(0.05)
        return sorted(a["threshold_percent"] for a in self.received)
