"""One request being answered: its parsed body, the resolved usage/reply, and the ways to respond."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler
from typing import Any

from meterline.testing._state import Reply, State, Usage


class Call:
    def __init__(
        self,
        handler: BaseHTTPRequestHandler,
        state: State,
        path: str,
        query: str,
        headers: dict[str, str],
        body: Any,
        usage: Usage,
        reply: Reply,
    ) -> None:
        self.handler = handler
        self.state = state
        self.path = path
        self.query = query
        self.headers = headers
        self.body: dict[str, Any] = body if isinstance(body, dict) else {}
        self.usage = usage
        self.reply = reply
        self.request_id = "req_" + uuid.uuid4().hex[:24]
        # x-fake-response-headers: a JSON object of headers to add to the response (e.g. a gateway's marker)
        raw = headers.get("x-fake-response-headers")
        extra = json.loads(raw) if raw else {}
        if not isinstance(extra, dict):
            raise ValueError("x-fake-response-headers must be a JSON object")
        self.extra_headers: dict[str, str] = {str(k): str(v) for k, v in extra.items()}
        self.started = time.monotonic()

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)

    def _delays(self) -> tuple[float, float | None]:
        with self.state.lock:
            return self.state.delay_s, self.state.first_token_s

    def send_bytes(self, status: int, payload: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        delay, _ = self._delays()
        if delay:
            time.sleep(delay)
        h = self.handler
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(payload)))
        for name, value in {**(headers or {}), **self.extra_headers}.items():
            h.send_header(name, value)
        h.end_headers()
        h.wfile.write(payload)
        h.wfile.flush()

    def send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self.send_bytes(status, json.dumps(obj).encode(), "application/json", headers)

    def send_stream(
        self,
        content_type: str,
        events: Iterable[bytes],
        error_event: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Chunked response, one chunk per event; honours ``delay``/``first_token`` and ``fail_stream_after``."""
        delay, first_token = self._delays()
        failure = self.state.take_stream_failure()
        h = self.handler
        h.send_response(200)
        h.send_header("Content-Type", content_type)
        h.send_header("Transfer-Encoding", "chunked")
        for name, value in {**(headers or {}), **self.extra_headers}.items():
            h.send_header(name, value)
        h.end_headers()
        h.wfile.flush()
        wait = first_token if first_token is not None else delay
        if wait:
            time.sleep(wait)
        with self.state.lock:
            between = self.state.between_events_s
        for index, event in enumerate(events):
            if between and index:
                time.sleep(between)
            if failure is not None and index == failure.n_events:
                if failure.mode == "error_event" and error_event is not None:
                    self._chunk(error_event)
                    break
                self._disconnect()
                return
            self._chunk(event)
        h.wfile.write(b"0\r\n\r\n")
        h.wfile.flush()

    def _chunk(self, data: bytes) -> None:
        self.handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.handler.wfile.flush()

    def _disconnect(self) -> None:
        # Drop the connection mid-body (no terminating chunk): the client sees a truncated stream.
        h = self.handler
        h.close_connection = True
        h.wfile.flush()
        try:
            h.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def sse(data: Any, event: str | None = None) -> bytes:
    """One server-sent event; ``data`` is JSON-encoded unless it is already a string."""
    text = data if isinstance(data, str) else json.dumps(data)
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {text}\n\n".encode()


def tool_name(body: dict[str, Any]) -> str:
    """The first tool the request declared (OpenAI, Anthropic or Bedrock shape), else ``get_weather``."""
    tools = body.get("tools") or (body.get("toolConfig") or {}).get("tools") or []
    if tools and isinstance(tools[0], dict):
        first = tools[0]
        name = (
            (first.get("function") or {}).get("name") or first.get("name") or (first.get("toolSpec") or {}).get("name")
        )
        if isinstance(name, str):
            return name
    return "get_weather"


TOOL_INPUT: dict[str, Any] = {"location": "Paris"}
