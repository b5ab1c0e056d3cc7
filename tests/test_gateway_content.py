"""The gateway (real LiteLLM proxy) with capture on: prompts, replies, tool calls, headers and the client's
request body stored in event_content, redacted; the virtual key never stored."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from gateway_util import MASTER, id_of, post, wait_for_events, write_config
from meterline.testing import FakeProvider
from meterline.testing.proxy import ProxyProcess

EMAIL = "jane.doe@example.com"


def test_gateway_captures_redacted_content_streams_and_tool_calls(tmp_path: Path) -> None:
    with FakeProvider() as fake:
        config = write_config(tmp_path, fake.url)
        db = tmp_path / "events.db"
        env = {
            "METERLINE_DESTINATION": f"sqlite:///{db}",
            "METERLINE_HOME": str(tmp_path / "home"),
            "METERLINE_GATEWAY_KEYS": str(tmp_path / "keys.json"),
            "LITELLM_MASTER_KEY": MASTER,
            "METERLINE_BUDGETS": "off",
            "METERLINE_CAPTURE_CONTENT": "true",
            "METERLINE_CAPTURE_HEADERS": "true",
            "METERLINE_CAPTURE_RAW_REQUEST": "true",
        }
        with ProxyProcess(config, env=env) as proxy:
            msgs = [{"role": "user", "content": f"mail {EMAIL} about my order"}]
            status, headers, _ = post(f"{proxy.url}/v1/chat/completions", {"model": "gpt-4o-mini", "messages": msgs},
                                      "sk-a-1", {"x-request-id": "r-1"})  # fmt: skip
            assert status == 200
            plain = id_of(headers)
            fake.set_reply(tool_use=True)
            tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
            status, headers, _ = post(f"{proxy.url}/v1/chat/completions",
                                      {"model": "gpt-4o-mini", "messages": msgs, "tools": tools}, "sk-a-1")  # fmt: skip
            tool = id_of(headers)
            fake.set_reply()
            req = urllib.request.Request(
                f"{proxy.url}/v1/chat/completions",
                data=json.dumps({"model": "gpt-4o-mini", "messages": msgs, "stream": True}).encode(),
                headers={"Authorization": "Bearer sk-a-1", "Content-Type": "application/json"},
                method="POST",
            )
            with urllib.request.urlopen(req, timeout=60) as r:
                stream = id_of({k.lower(): v for k, v in r.headers.items()})
                r.read()
            events = wait_for_events(db, [plain, tool, stream])
    redacted = [{"role": "user", "content": "mail [REDACTED:email] about my order"}]
    e = events[plain]
    assert e.input_messages == redacted and e.output_text == "Hello from the meterline fake provider."
    assert e.request_headers["x-request-id"] == "r-1"
    assert e.request_headers.get("authorization", "[REDACTED:secret]") == "[REDACTED:secret]"
    assert e.raw_request["messages"] == redacted
    [call] = events[tool].output_tool_calls
    assert call["name"] == "get_weather" and json.loads(call["arguments"]) == {"location": "Paris"}
    assert events[stream].output_text == "Hello from the meterline fake provider."
    raw = db.read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("events.db-wal"))
    assert b"sk-a-1" not in raw and EMAIL.encode() not in raw

