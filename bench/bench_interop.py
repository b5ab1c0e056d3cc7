"""Compatible-ingest benchmark: events/s through the Revenium, Lago and OTLP routes vs native ``/v1/events``.

    PYTHONPATH=src python bench/bench_interop.py [--events 20000] [--postgres]

``meterline serve`` in a subprocess (one process, a fresh database per run), two client threads on
keep-alive connections, bodies built beforehand and sent uncompressed, each in the shape its real client
sends: Revenium one completion per request (as the SDK does), Lago batches of 100 (``events/batch``),
OTLP protobuf exports of 512 spans (the BatchSpanProcessor's default). The baseline is native
``/v1/events`` with the SAME number of events per request (so the table compares the mapping, not the
batch size), interleaved with the route's requests on the same collector and store (so load from anything
else on the machine hits both alike); native with batches of 500 is shown for context.
Goal: each route within 2x of its baseline.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

SRC = str(Path(__file__).resolve().parents[1] / "src")
sys.path.insert(0, SRC)
sys.path.insert(0, str(Path(__file__).parent))

from bench_collector import Server, make_events, postgres_database  # noqa: E402
from meterline.core.event import UsageEvent  # noqa: E402
from meterline.store.backend import open_stores  # noqa: E402


def native_bodies(events: list[UsageEvent], per: int) -> list[tuple[str, str, bytes]]:
    return [
        (
            "/v1/events",
            "application/json",
            json.dumps({"events": [e.to_wire(compact=True) for e in events[i : i + per]]}).encode(),
        )
        for i in range(0, len(events), per)
    ]


def revenium_bodies(events: list[UsageEvent]) -> list[tuple[str, str, bytes]]:
    out = []
    for e in events:
        t = e.start_time.strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "transactionId": f"chatcmpl-{uuid.uuid4().hex}",
            "model": e.model,
            "provider": e.provider.upper(),
            "inputTokenCount": e.input_tokens,
            "outputTokenCount": e.output_tokens,
            "totalTokenCount": e.total_tokens,
            "cacheReadTokenCount": 0,
            "cacheCreationTokenCount": 0,
            "reasoningTokenCount": 0,
            "requestTime": t,
            "responseTime": t,
            "completionStartTime": t,
            "requestDuration": 420,
            "isStreamed": False,
            "stopReason": "END",
            "costType": "AI",
            "operationType": "CHAT",
            "subscriber": {"id": e.subscriber_id},
            "environment": e.environment,
            "middlewareSource": "PYTHON",
        }
        out.append(("/meter/v2/ai/completions", "application/json", json.dumps(body).encode()))
    return out


def lago_bodies(events: list[UsageEvent]) -> list[tuple[str, str, bytes]]:
    out = []
    for i in range(0, len(events), 100):
        items = [
            {
                "transaction_id": uuid.uuid4().hex,
                "external_subscription_id": e.subscriber_id,
                "code": "llm_usage",
                "timestamp": str(int(e.start_time.timestamp())),
                "properties": {
                    "model": e.model,
                    "provider": e.provider,
                    "prompt_tokens": e.input_tokens,
                    "completion_tokens": e.output_tokens,
                    "total_tokens": e.total_tokens,
                },
            }
            for e in events[i : i + 100]
        ]
        out.append(("/lago/api/v1/events/batch", "application/json", json.dumps({"events": items}).encode()))
    return out


def otlp_bodies(events: list[UsageEvent]) -> list[tuple[str, str, bytes]]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    def kv(key: str, value: Any) -> KeyValue:
        v = AnyValue(int_value=value) if isinstance(value, int) else AnyValue(string_value=str(value))
        return KeyValue(key=key, value=v)

    out = []
    for i in range(0, len(events), 512):
        req = ExportTraceServiceRequest()
        spans = req.resource_spans.add().scope_spans.add().spans
        for e in events[i : i + 512]:
            s = spans.add()
            s.trace_id, s.span_id = os.urandom(16), os.urandom(8)
            s.name = f"chat {e.model}"
            s.kind = 3
            s.start_time_unix_nano = int(e.start_time.timestamp() * 1e9)
            s.end_time_unix_nano = s.start_time_unix_nano + 420_000_000
            s.attributes.extend(
                [
                    kv("gen_ai.operation.name", "chat"),
                    kv("gen_ai.provider.name", e.provider),
                    kv("gen_ai.request.model", e.model),
                    kv("gen_ai.response.model", e.model),
                    kv("gen_ai.usage.input_tokens", e.input_tokens),
                    kv("gen_ai.usage.output_tokens", e.output_tokens),
                    kv("meterline.subscriber_id", e.subscriber_id),
                ]
            )
        out.append(("/v1/traces", "application/x-protobuf", req.SerializeToString()))
    return out


def send_pair(
    database: str, native: list[tuple[str, str, bytes]], route: list[tuple[str, str, bytes]], n: int, clients: int = 2
) -> tuple[float, float]:
    """(native events/s, route events/s) for ``n`` events each way, sent interleaved to ONE collector, so
    load from anything else on the machine hits both alike. A kind's rate is its events over the summed
    time of its requests, divided by the number of client threads."""
    server = Server(database)
    work = [("native", *b) for b in native] + [("route", *b) for b in route]
    work.sort(key=lambda w: hash(w[3]))  # interleave, reproducibly
    lock = threading.Lock()
    errors: list[str] = []
    spent = {"native": 0.0, "route": 0.0}

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
        while True:
            with lock:
                if not work:
                    break
                kind, path, ctype, body = work.pop()
            t0 = time.perf_counter()
            conn.request("POST", path, body=body, headers={"Content-Type": ctype})
            resp = conn.getresponse()
            data = resp.read()
            took = time.perf_counter() - t0
            with lock:
                spent[kind] += took
            if resp.status not in (200, 201, 204):
                errors.append(f"{path}: {resp.status} {data[:200]!r}")
        conn.close()

    try:
        threads = [threading.Thread(target=client) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        server.stop()
    if errors:
        raise RuntimeError(errors[0])
    writer, reader = open_stores(database)
    stored = reader.count()
    writer.close()
    if reader is not writer:
        reader.close()
    if stored != 2 * n:
        raise RuntimeError(f"{2 * n} events sent, {stored} stored")
    return n * clients / spent["native"], n * clients / spent["route"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=20_000, help="events per batched run (Revenium: a quarter)")
    ap.add_argument("--postgres", action="store_true", help="PostgreSQL at $METERLINE_TEST_PG instead of SQLite")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="meterline-bench-interop-"))

    def fresh() -> tuple[str, Callable[[], None]]:
        if args.postgres:
            return postgres_database()
        return f"sqlite:///{tmp / f'{uuid.uuid4().hex}.db'}", lambda: None

    def run(
        native: list[tuple[str, str, bytes]], route: list[tuple[str, str, bytes]], count: int
    ) -> tuple[float, float]:
        db, drop = fresh()
        try:
            return send_pair(db, native, route, count)
        finally:
            drop()

    n, n_one = args.events, args.events // 4
    events = make_events(2 * n)
    mine, theirs = events[:n], events[n:]  # distinct ids for the native half and the route half
    rows = []
    for label, per, route_bodies, count in (
        ("Revenium /meter/v2/ai/completions", 1, revenium_bodies(theirs[:n_one]), n_one),
        ("Lago /lago/api/v1/events/batch", 100, lago_bodies(theirs), n),
        ("OTLP /v1/traces (protobuf)", 512, otlp_bodies(theirs), n),
    ):
        base, rate = run(native_bodies(mine[:count], per), route_bodies, count)
        rows.append((label, per, rate, base))
    native_500, _ = run(native_bodies(mine, 500), native_bodies(theirs, 500), n)
    store = "PostgreSQL" if args.postgres else "SQLite"
    print(
        f"\nCompatible ingest on {store}: `meterline serve` (1 process), 2 client threads, uncompressed bodies, "
        "route and native requests interleaved"
    )
    print("| route | events/request | events/s | native /v1/events, same events/request | ratio | goal <= 2x |")
    print("|---|---:|---:|---:|---:|---|")
    for label, per, rate, base in rows:
        ratio = base / rate
        print(f"| {label} | {per} | {rate:,.0f} | {base:,.0f} | {ratio:.2f}x | {'met' if ratio <= 2 else 'MISSED'} |")
    print(f"| (context) native /v1/events | 500 | {native_500:,.0f} | | | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
