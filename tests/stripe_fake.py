"""A local stand-in for Stripe's ``POST /v1/billing/meter_events`` that counts every request, for the pacing and
resume tests of the Stripe export (tests/test_interop_stripe_export.py).

Like Stripe it checks the Bearer key and the form (``event_name``, ``payload[stripe_customer_id]``,
``payload[value]``, ``identifier``, ``timestamp``), stores each ``identifier`` once and answers a second send of
one with Stripe's 400 "already exists". On top of that it can:
- fail given request numbers (1-based, counting every request): ``fail_at={51: (429, {})}``; status 0 drops the
  connection before handling the request, status -1 handles (stores) it and then drops the connection;
- enforce a steady rate limit, ``limit`` requests per rolling second (the requests it lets through count), and
  answer 429 beyond it (with ``Retry-After`` only when ``retry_after`` is set: Stripe sends none);
- refuse given identifiers with a 400 (a bad event).
"""

from __future__ import annotations

import collections
import json
import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

PATH = "/v1/billing/meter_events"


class FakeStripe:
    def __init__(
        self,
        *,
        api_key: str = "sk_test_fake",
        fail_at: dict[int, tuple[int, dict[str, str]]] | None = None,
        limit: float | None = None,
        retry_after: str | None = None,
        refuse: set[str] | None = None,
    ) -> None:
        self.api_key = api_key
        self.fail_at = dict(fail_at or {})
        self.limit = limit
        self.retry_after = retry_after
        self.refuse = set(refuse or ())
        self.lock = threading.Lock()
        self.requests = 0  # every request, whatever the answer
        self.arrivals: list[float] = []  # monotonic arrival time of each request
        self.answers: list[int] = []  # the status of each request (0: connection dropped)
        self.posted: collections.Counter[str] = collections.Counter()  # identifier -> requests carrying it
        self.stored: dict[str, dict[str, str]] = {}  # identifier -> form, as Stripe keeps it
        self.receipts: collections.Counter[str] = collections.Counter()  # identifier -> accepted (200) sends
        self.throttled = 0  # 429s answered by the rate limit
        self.invalid: list[str] = []
        self._window: collections.deque[float] = collections.deque()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                fake._handle(self)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> FakeStripe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def busiest_second(self) -> int:
        """The most requests that arrived within any one second."""
        best, start = 0, 0
        for end, t in enumerate(self.arrivals):
            while t - self.arrivals[start] >= 1.0:
                start += 1
            best = max(best, end - start + 1)
        return best

    # -- one request -------------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        body = h.rfile.read(int(h.headers.get("content-length") or 0))
        now = time.monotonic()
        with self.lock:
            self.requests += 1
            self.arrivals.append(now)
            form = dict(urllib.parse.parse_qsl(body.decode()))
            identifier = form.get("identifier", "")
            self.posted[identifier] += 1
            status, headers = self.fail_at.get(self.requests, (None, {}))
            if status == 0:  # the connection drops before Stripe sees the request
                return self._drop(h)
            if status is not None and status > 0:
                self.answers.append(status)
                return _answer(h, status, {"error": {"type": "api_error", "message": f"HTTP {status}"}}, headers)
            if h.headers.get("authorization") != f"Bearer {self.api_key}":
                self.answers.append(401)
                return _answer(h, 401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key"}})
            if self.limit is not None:
                while self._window and now - self._window[0] >= 1.0:
                    self._window.popleft()
                if len(self._window) >= self.limit:
                    self.throttled += 1
                    self.answers.append(429)
                    extra = {}
                    if self.retry_after is not None:
                        extra["Retry-After"] = self.retry_after
                    message = "Request rate limit exceeded."
                    return _answer(h, 429, {"error": {"type": "rate_limit_error", "message": message}}, extra)
                self._window.append(now)
            answer, doc = self._meter_event(form, identifier)
            if status == -1:  # stored, but the answer never reaches the client
                return self._drop(h)
            self.answers.append(answer)
            return _answer(h, answer, doc)

    def _meter_event(self, form: dict[str, str], identifier: str) -> tuple[int, dict[str, Any]]:
        required = ("event_name", "payload[stripe_customer_id]", "payload[value]", "identifier", "timestamp")
        missing = [k for k in required if not form.get(k)]
        if missing or not form["payload[value]"].isdigit():
            self.invalid.append(f"stripe: {form}")
            return 400, {"error": {"type": "invalid_request_error", "message": f"invalid: {missing or form}"}}
        if identifier in self.refuse:
            return 400, {"error": {"type": "invalid_request_error", "message": "No such customer"}}
        if identifier in self.stored:
            message = f"An event with identifier {identifier} already exists."
            return 400, {"error": {"type": "invalid_request_error", "message": message}}
        self.stored[identifier] = form
        self.receipts[identifier] += 1
        return 200, {"object": "billing.meter_event", **form}

    def _drop(self, h: BaseHTTPRequestHandler) -> None:
        self.answers.append(0)
        h.close_connection = True
        h.connection.shutdown(socket.SHUT_RDWR)


class _QuietServer(HTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a connection dropped on purpose is not an error worth a traceback


def _answer(h: BaseHTTPRequestHandler, status: int, doc: Any, headers: dict[str, str] | None = None) -> None:
    data = json.dumps(doc).encode()
    h.send_response(status)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(data)))
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(data)
