"""How ``meterline serve`` treats connections, with raw sockets against a real subprocess (localhost only,
bounded loops): idle and partial-header connections are closed within the header timeout (408 for a partial
head), idle keep-alive connections within the keep-alive timeout, and an oversized request line or head gets a
414 / 431 status line (read by the client, not a TCP reset); the collector keeps serving afterwards.

Reproduces the hardening issue: before, 400 idle or partial-header connections stayed open (60 s and more)
and a ~190 KB query string could draw a reset instead of an answer."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector_support import ProcessCollector

HEADER_TIMEOUT = 1.5
KEEP_ALIVE = 1
SLACK = 2.5  # scheduling on a shared, busy machine


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessCollector]:
    root: Path = tmp_path_factory.mktemp("connections")
    # size limits at their defaults (16 KiB request line, 64 KiB head); short timeouts to keep the test fast
    c = ProcessCollector(
        f"sqlite:///{root / 'c.db'}",
        "--no-auth",
        "--header-timeout",
        str(HEADER_TIMEOUT),
        "--keep-alive",
        str(KEEP_ALIVE),
        log=root / "serve.log",
    ).start()
    try:
        yield c
    finally:
        c.stop()


def _connect(c: ProcessCollector) -> socket.socket:
    return socket.create_connection(("127.0.0.1", c.port), timeout=HEADER_TIMEOUT + SLACK + 5)


def _read_until_closed(s: socket.socket, limit: float) -> tuple[bytes, float, str]:
    """Everything the server sends until it closes: (bytes, seconds it took, how it ended)."""
    start = time.monotonic()
    data = b""
    while time.monotonic() - start < limit:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            return data, time.monotonic() - start, "reset"
        except TimeoutError:
            return data, time.monotonic() - start, "open"
        if not chunk:
            return data, time.monotonic() - start, "closed"
        data += chunk
    return data, time.monotonic() - start, "open"


def _healthy(c: ProcessCollector) -> bool:
    with _connect(c) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data, _, _ = _read_until_closed(s, 10)
    return data.startswith(b"HTTP/1.1 200")


def test_idle_and_partial_header_connections_are_closed_within_the_header_timeout(collector: ProcessCollector) -> None:
    idle = [_connect(collector) for _ in range(100)]
    partial = []
    for i in range(100):
        s = _connect(collector)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow-" + str(i).encode())  # never finishes its head
        partial.append(s)
    opened = time.monotonic()
    outcomes: dict[str, int] = {}
    try:
        for s in idle:
            data, _, how = _read_until_closed(s, HEADER_TIMEOUT + SLACK)
            assert data == b"", data[:100]
            outcomes[f"idle {how}"] = outcomes.get(f"idle {how}", 0) + 1
        for s in partial:
            data, _, how = _read_until_closed(s, HEADER_TIMEOUT + SLACK)
            assert data.startswith(b"HTTP/1.1 408 "), data[:100]
            assert b'"detail"' in data
            outcomes[f"partial {how}"] = outcomes.get(f"partial {how}", 0) + 1
        elapsed = time.monotonic() - opened
    finally:
        for s in idle + partial:
            s.close()
    assert outcomes == {"idle closed": 100, "partial closed": 100}, outcomes
    assert elapsed < HEADER_TIMEOUT + SLACK, elapsed
    assert _healthy(collector)


def test_an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout(collector: ProcessCollector) -> None:
    with _connect(collector) as s:
        for _ in range(3):  # the connection serves several requests, then idles
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            data = b""
            while b'"status":"ok"' not in data:
                chunk = s.recv(4096)
                assert chunk, data
                data += chunk
            assert data.startswith(b"HTTP/1.1 200")
        rest, waited, how = _read_until_closed(s, KEEP_ALIVE + SLACK)
    assert (rest, how) == (b"", "closed")
    assert waited < KEEP_ALIVE + SLACK


@pytest.mark.parametrize("size", [17_000, 190_000, 900_000])
def test_an_oversized_query_string_gets_414_not_a_reset(collector: ProcessCollector, size: int) -> None:
    with _connect(collector) as s:
        s.sendall(b"GET /v1/usage?model=" + b"m" * size + b" HTTP/1.1\r\nHost: t\r\n\r\n")
        data, _, how = _read_until_closed(s, 10)
    assert data.startswith(b"HTTP/1.1 414 "), (how, data[:200])
    assert b"max_request_line_bytes (16384 bytes)" in data
    assert how == "closed"
    assert _healthy(collector)


def test_an_oversized_head_gets_431(collector: ProcessCollector) -> None:
    with _connect(collector) as s:
        headers = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"v" * 1000) for i in range(80))  # ~81 KB of headers
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + headers + b"\r\n")
        data, _, how = _read_until_closed(s, 10)
    assert data.startswith(b"HTTP/1.1 431 "), (how, data[:200])
    assert b"max_header_bytes (65536 bytes)" in data
    assert how == "closed"
    # a head just under the limits is served
    with _connect(collector) as s:
        near = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"v" * 1000) for i in range(40))  # ~41 KB
        s.sendall(b"GET /healthz?" + b"q" * 15_000 + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" + near + b"\r\n")
        data, _, _ = _read_until_closed(s, 10)
    assert data.startswith(b"HTTP/1.1 200"), data[:200]


def test_a_malformed_request_gets_a_400_answer_then_a_clean_close(collector: ProcessCollector) -> None:
    with _connect(collector) as s:
        s.sendall(b"NOT HTTP AT ALL\r\n\r\n" + b"x" * 200_000)
        data, _, how = _read_until_closed(s, 10)
    assert data.startswith(b"HTTP/1.1 400 "), (how, data[:200])
    assert how == "closed"
