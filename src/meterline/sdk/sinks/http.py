"""HTTP sink: batches to a meterline collector's ``POST /v1/events`` (standard library only).

The body is gzip JSON ``{"events": [...]}`` with ``Authorization: Bearer <key>``. The collector is
idempotent on the event id, so a retried or replayed batch never double-counts.
Failures: network errors, 5xx, 408 and 429 are retryable (``Retry-After`` passed on as a hint); other
4xx are not (a bad key, a bad request); 413 splits the batch in two and sends the halves. Events the
collector rejects as invalid are logged, returned as the count and kept in ``last_rejections`` (the
recorder dead-letters them). 400/413/422 for a whole batch blame the batch's content and a 500 is unclear
(see :class:`SinkError` ``data_fault``): the recorder splits such a batch to find the culprit.
A 5xx is unclear: retried first, then split, and an event is blamed only when the collector took the
other part of the batch.
"""

from __future__ import annotations

import gzip
import http.client
import json
import logging
import threading
import time
import urllib.parse
from collections.abc import Sequence
from email.utils import parsedate_to_datetime
from typing import Any

from meterline._version import __version__
from meterline.core.errors import error_detail
from meterline.core.event import UsageEvent
from meterline.sdk.sinks.base import SinkError

logger = logging.getLogger("meterline")

RETRYABLE_STATUS = frozenset({408, 429})
DATA_FAULT_STATUS = frozenset({400, 413, 422})


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


class HttpSink:
    def __init__(self, destination: str, *, api_key: str | None = None, timeout: float = 30.0) -> None:
        url = urllib.parse.urlsplit(destination)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"destination {destination!r}: expected http(s)://host[:port][/prefix]")
        self.destination = destination
        self.api_key = api_key
        self.timeout = timeout
        self._scheme = url.scheme
        self._host = url.hostname
        self._port = url.port
        self._path = url.path.rstrip("/") + "/v1/events"
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()
        self.last_rejections: list[dict[str, Any]] = []

    @property
    def description(self) -> str:
        return self.destination

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self.timeout)
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _post(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        headers = {
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "User-Agent": f"meterline/{__version__}",
        }
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        with self._lock:
            for attempt in (0, 1):
                try:
                    conn = self._connection()
                    conn.request("POST", self._path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    if resp.getheader("connection", "").lower() == "close":
                        self._drop_connection()
                    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
                except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                    # a kept-alive connection the server closed meanwhile: one fresh attempt
                    self._drop_connection()
                    if attempt:
                        raise SinkError(f"{self.destination}: {exc}", retryable=True) from exc
                except (TimeoutError, OSError, http.client.HTTPException) as exc:
                    self._drop_connection()
                    raise SinkError(f"{self.destination}: {exc}", retryable=True) from exc
        raise AssertionError("unreachable")

    def write(self, events: Sequence[UsageEvent]) -> int:
        self.last_rejections = []
        return self._write(events)

    def _write(self, events: Sequence[UsageEvent]) -> int:
        if not events:
            return 0
        doc = {"events": [e.to_wire(compact=True) for e in events]}
        body = gzip.compress(json.dumps(doc, separators=(",", ":"), default=str).encode(), compresslevel=1)
        status, headers, data = self._post(body)
        if status in (200, 207):
            return self._rejections(data)
        detail = error_detail(data)
        if status == 413 and len(events) > 1:  # the collector's limits are lower than our batch size
            half = len(events) // 2
            return self._write(events[:half]) + self._write(events[half:])
        retryable = status >= 500 or status in RETRYABLE_STATUS
        raise SinkError(
            f"{self.destination} answered {status}: {detail}",
            retryable=retryable,
            retry_after=retry_after_seconds(headers.get("retry-after")),
            # a 5xx may come from one unstorable event (an older collector answers 503 for a store error)
            data_fault=True if status in DATA_FAULT_STATUS else None if status >= 500 else False,
        )

    def _rejections(self, data: bytes) -> int:
        try:
            result: Any = json.loads(data)
            rejected = result.get("rejected") or []
            self.last_rejections.extend(r for r in rejected if isinstance(r, dict))
        except (ValueError, AttributeError, TypeError):
            return 0
        for r in rejected[:5]:
            logger.warning(
                "meterline: collector rejected event %s: %s: %s", r.get("id"), r.get("field"), r.get("reason")
            )
        return len(rejected)

    def after_fork_in_child(self) -> None:
        """The parent's kept-alive connection (and maybe its lock) must not be shared: start afresh."""
        self._lock = threading.Lock()
        self._conn = None  # the child's copy of the socket closes with it; the parent's stays open

    def close(self) -> None:
        with self._lock:
            self._drop_connection()
