"""What the fake provider answers with: usage, reply, queued failures, delays, and what it recorded.

Default usage (when neither ``set_usage`` nor an ``x-fake-usage`` header gives a count):

* ``input``  = ceil(characters of all request text / 4), see :func:`request_text`;
* ``output`` = number of whitespace-separated words in the reply text (also for tool-use replies);
* cache_read = cache_write = cache_write_1h = reasoning = 0.

:func:`default_usage` computes exactly this so tests can derive expected counts independently.
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

DEFAULT_REPLY = "Hello from the meterline fake provider."
STOP_VALUES = (None, "max_tokens", "stop_sequence")
USAGE_KEYS = ("input", "output", "cache_read", "cache_write", "cache_write_1h", "reasoning")


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON, else the raw bytes
    time: float


@dataclass(frozen=True)
class Usage:
    """meterline's additive counts: ``input`` is uncached; ``cache_write`` includes ``cache_write_1h``;
    ``output`` includes ``reasoning``."""

    input: int
    output: int
    cache_read: int = 0
    cache_write: int = 0
    cache_write_1h: int = 0
    reasoning: int = 0


@dataclass(frozen=True)
class Reply:
    text: str = DEFAULT_REPLY
    tool_use: bool = False
    stop: str | None = None  # None (natural end) | "max_tokens" | "stop_sequence"


@dataclass
class Failure:
    status: int
    times: int
    body: Any = None
    retry_after: float | None = None
    path_contains: str | None = None


@dataclass
class StreamFailure:
    n_events: int
    times: int
    mode: str  # "disconnect" | "error_event"


def _collect(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, list):
        for item in value:
            _collect(item, out)
    elif isinstance(value, dict):
        # Only text-bearing keys: roles, ids, cache_control etc. are not prompt text.
        for key in ("text", "content"):
            if key in value:
                _collect(value[key], out)


def request_text(body: Any) -> str:
    """All prompt text of a request body: ``system``, ``messages[].content`` (strings or ``text`` blocks),
    ``prompt`` and ``input`` (strings or lists of strings), concatenated without separators."""
    if not isinstance(body, dict):
        return ""
    out: list[str] = []
    for key in ("system", "messages", "prompt", "input"):
        if key in body:
            _collect(body[key], out)
    return "".join(out)


def default_usage(body: Any, reply_text: str = DEFAULT_REPLY) -> Usage:
    """The usage the fake reports for ``body`` when nothing overrides it (see the module docstring)."""
    return Usage(input=math.ceil(len(request_text(body)) / 4), output=len(reply_text.split()))


def usage_from_mapping(raw: dict[str, Any], base: Usage) -> Usage:
    unknown = set(raw) - set(USAGE_KEYS)
    if unknown:
        raise ValueError(f"unknown usage keys {sorted(unknown)}; expected a subset of {list(USAGE_KEYS)}")
    values = {k: getattr(base, k) for k in USAGE_KEYS}
    for key, val in raw.items():
        if val is None:
            continue
        if not isinstance(val, int) or isinstance(val, bool) or val < 0:
            raise ValueError(f"usage {key!r} must be a non-negative int, got {val!r}")
        values[key] = val
    return Usage(**values)


@dataclass
class State:
    """Mutable server settings shared by all handler threads (guarded by ``lock``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[RecordedRequest] = field(default_factory=list)
    usage: dict[str, int | None] | None = None
    reply: Reply = field(default_factory=Reply)
    failures: list[Failure] = field(default_factory=list)
    stream_failures: list[StreamFailure] = field(default_factory=list)
    delay_s: float = 0.0
    first_token_s: float | None = None
    between_events_s: float = 0.0

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.usage = None
            self.reply = Reply()
            self.failures.clear()
            self.stream_failures.clear()
            self.delay_s = 0.0
            self.first_token_s = None
            self.between_events_s = 0.0

    def record(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> RecordedRequest:
        body: Any = raw
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw
        req = RecordedRequest(method, path, headers, body, time.time())
        with self.lock:
            self.requests.append(req)
        return req

    def take_failure(self, path: str) -> Failure | None:
        with self.lock:
            for failure in self.failures:
                if failure.path_contains is None or failure.path_contains in path:
                    failure.times -= 1
                    if failure.times <= 0:
                        self.failures.remove(failure)
                    return failure
        return None

    def take_stream_failure(self) -> StreamFailure | None:
        with self.lock:
            if not self.stream_failures:
                return None
            failure = self.stream_failures[0]
            failure.times -= 1
            if failure.times <= 0:
                self.stream_failures.pop(0)
            return failure
