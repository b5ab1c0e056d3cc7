"""Prometheus metrics in the text exposition format, without a client library.

Per process: with several replicas or workers, Prometheus scrapes each and sums.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

# request-latency histogram buckets, seconds
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events_ingested = 0
        self.events_rejected = 0
        self.events_duplicate = 0
        self._requests: dict[tuple[str, str, str], int] = {}
        self._latency: dict[str, list[float]] = {}  # route -> [bucket counts..., sum, count]

    def count_events(self, accepted: int, duplicates: int, rejected: int) -> None:
        with self._lock:
            self.events_ingested += accepted
            self.events_duplicate += duplicates
            self.events_rejected += rejected

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            key = (method, route, str(status))
            self._requests[key] = self._requests.get(key, 0) + 1
            h = self._latency.get(route)
            if h is None:
                h = self._latency[route] = [0.0] * (len(BUCKETS) + 2)
            for i, b in enumerate(BUCKETS):
                if seconds <= b:
                    h[i] += 1
            h[-2] += seconds
            h[-1] += 1

    def render(self) -> str:
        with self._lock:
            lines = [
                "# HELP meterline_events_ingested_total Events stored by POST /v1/events.",
                "# TYPE meterline_events_ingested_total counter",
                f"meterline_events_ingested_total {self.events_ingested}",
                "# HELP meterline_events_rejected_total Invalid events refused by POST /v1/events.",
                "# TYPE meterline_events_rejected_total counter",
                f"meterline_events_rejected_total {self.events_rejected}",
                "# HELP meterline_events_duplicate_total Events acknowledged whose id was already stored.",
                "# TYPE meterline_events_duplicate_total counter",
                f"meterline_events_duplicate_total {self.events_duplicate}",
                "# HELP meterline_http_requests_total HTTP requests by method, route and status.",
                "# TYPE meterline_http_requests_total counter",
            ]
            for (method, route, status), n in sorted(self._requests.items()):
                lines.append(
                    f'meterline_http_requests_total{{method="{method}",route="{_esc(route)}",status="{status}"}} {n}'
                )
            lines += [
                "# HELP meterline_http_request_duration_seconds Request latency by route.",
                "# TYPE meterline_http_request_duration_seconds histogram",
            ]
            for route, h in sorted(self._latency.items()):
                r = _esc(route)
                for i, b in enumerate(BUCKETS):
                    lines.append(f'meterline_http_request_duration_seconds_bucket{{route="{r}",le="{b}"}} {int(h[i])}')
                lines.append(f'meterline_http_request_duration_seconds_bucket{{route="{r}",le="+Inf"}} {int(h[-1])}')
                lines.append(f'meterline_http_request_duration_seconds_sum{{route="{r}"}} {h[-2]:.6f}')
                lines.append(f'meterline_http_request_duration_seconds_count{{route="{r}"}} {int(h[-1])}')
        return "\n".join(lines) + "\n"


def _esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


class MetricsMiddleware:
    """Pure ASGI middleware: counts every HTTP request by its route template (not the raw path, so
    ``/v1/traces/{trace_id}`` is one series)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(
        self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(scope["method"], path, status, time.perf_counter() - start)
