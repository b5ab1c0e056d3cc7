"""A local stand-in for Lago, OpenMeter and Stripe's ingest endpoints, for the export tests.

It implements the request schemas as published and validates every request against them: Lago events
with lago-python-client's own models (no package ships Lago's OpenAPI file), OpenMeter's CloudEvents with
the CloudEvents 1.0 JSON schema plus OpenMeter's required ``subject``, Stripe meter events as the
``stripe`` package form-encodes them. It de-duplicates like each service (Lago: transaction_id, OpenMeter:
source+id, Stripe: identifier), can answer 429 storms with Retry-After, and records everything."""

from __future__ import annotations

import collections
import json
import random
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CLOUDEVENT_SCHEMA = {
    "type": "object",
    "required": ["id", "source", "specversion", "type", "subject"],
    "properties": {
        "id": {"type": "string", "minLength": 1},
        "source": {"type": "string", "minLength": 1},
        "specversion": {"const": "1.0"},
        "type": {"type": "string", "minLength": 1},
        "subject": {"type": "string", "minLength": 1},
        "time": {"type": "string", "format": "date-time"},
        "datacontenttype": {"type": "string"},
        "data": {"type": ["object", "null"]},
    },
}


class BillingTarget:
    def __init__(self, api_key: str = "target-key", rate_limit: float = 0.0, retry_after: str = "0.01") -> None:
        self.api_key = api_key
        self.rate_limit = rate_limit  # share of requests answered 429 (the storm)
        self.retry_after = retry_after
        self.lock = threading.Lock()
        self.rng = random.Random(7)
        self.stored: dict[str, dict[str, Any]] = {}  # dedupe key -> item, as the real service keeps it
        self.receipts: collections.Counter[str] = collections.Counter()  # dedupe key -> accepted sends
        self.batches: list[int] = []
        self.throttled = 0
        self.repeats = 0  # items sent again after the service had stored them
        self.invalid: list[str] = []
        self.bodies: list[bytes] = []
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                target._handle(self)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> BillingTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_for(self, n: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.stored) < n and time.monotonic() < deadline:
            time.sleep(0.05)

    # -- dispatch --------------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        body = h.rfile.read(int(h.headers.get("content-length") or 0))
        with self.lock:
            self.bodies.append(body)
            if h.headers.get("authorization") != f"Bearer {self.api_key}":
                return _answer(h, 401, {"status": 401, "error": "Unauthorized"})
            if self.rate_limit and self.rng.random() < self.rate_limit:
                self.throttled += 1
                return _answer(h, 429, {"error": "too many requests"}, {"Retry-After": self.retry_after})
            if h.path == "/api/v1/events/batch":
                return self._lago(h, body)
            if h.path == "/api/v1/events":
                return self._openmeter(h, body)
            if h.path == "/v1/billing/meter_events":
                return self._stripe(h, body)
        return _answer(h, 404, {"error": "not found"})

    def _lago(self, h: BaseHTTPRequestHandler, body: bytes) -> None:
        from lago_python_client.models.event import Event

        doc = json.loads(body)
        events = doc["events"]
        if len(events) > 100:
            return _answer(
                h, 422, {"status": 422, "code": "validation_errors", "error_details": {"events": ["too_many_events"]}}
            )
        errors: dict[str, Any] = {}
        for i, ev in enumerate(events):
            try:
                Event(**ev)  # the published client's model of an event input
                float(ev["timestamp"])
                assert ev["transaction_id"] and ev["external_subscription_id"] and ev["code"]
            except Exception as exc:  # noqa: BLE001 - any schema failure is a 422 for this event
                self.invalid.append(f"lago {i}: {exc}")
                errors[str(i)] = {"event": ["invalid"]}
                continue
            if ev["transaction_id"] in self.stored:
                self.repeats += 1
                errors[str(i)] = {"transaction_id": ["value_already_exist"]}
        if errors:  # Lago stores none of a batch with an invalid event
            return _answer(h, 422, {"status": 422, "code": "validation_errors", "error_details": errors})
        self.batches.append(len(events))
        for ev in events:
            self.stored[ev["transaction_id"]] = ev
            self.receipts[ev["transaction_id"]] += 1
        return _answer(h, 200, {"events": events})

    def _openmeter(self, h: BaseHTTPRequestHandler, body: bytes) -> None:
        import jsonschema

        if h.headers.get("content-type") != "application/cloudevents-batch+json":
            return _answer(h, 415, {"title": "Unsupported Media Type"})
        events = json.loads(body)
        for ev in events:
            try:
                jsonschema.validate(ev, CLOUDEVENT_SCHEMA, format_checker=jsonschema.FormatChecker())
            except jsonschema.ValidationError as exc:
                self.invalid.append(f"openmeter: {exc.message}")
                return _answer(h, 400, {"title": "Bad Request", "detail": exc.message})
        self.batches.append(len(events))
        for ev in events:
            key = f"{ev['source']}|{ev['id']}"
            self.repeats += key in self.stored
            if key not in self.stored:
                self.stored[key] = ev
                self.receipts[key] += 1
        h.send_response(204)
        h.end_headers()
        return None

    def _stripe(self, h: BaseHTTPRequestHandler, body: bytes) -> None:
        form = dict(urllib.parse.parse_qsl(body.decode()))
        required = ("event_name", "payload[stripe_customer_id]", "payload[value]", "identifier", "timestamp")
        missing = [k for k in required if not form.get(k)]
        now = time.time()
        if (
            missing
            or not form["payload[value]"].isdigit()
            or not now - 35 * 86400 <= int(form["timestamp"]) <= now + 300
        ):
            self.invalid.append(f"stripe: {form}")
            return _answer(
                h, 400, {"error": {"type": "invalid_request_error", "message": f"invalid: {missing or form}"}}
            )
        if form["identifier"] in self.stored:
            self.repeats += 1
            message = f"An event with identifier {form['identifier']} already exists."
            return _answer(h, 400, {"error": {"type": "invalid_request_error", "message": message}})
        self.batches.append(1)
        self.stored[form["identifier"]] = form
        self.receipts[form["identifier"]] += 1
        return _answer(h, 200, {"object": "billing.meter_event", **form})


def _answer(h: BaseHTTPRequestHandler, status: int, doc: Any, headers: dict[str, str] | None = None) -> None:
    data = json.dumps(doc).encode()
    h.send_response(status)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(data)))
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(data)
