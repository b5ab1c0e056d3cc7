"""The store unavailable is a 503 with ``Retry-After`` on every route, never a 500; nothing acknowledged is lost.

Reproduction of the hardening issue: with PostgreSQL down, ``POST /v1/events`` answered 503 until the API-key
cache expired (~5 s), then 500 (``authenticate`` → ``find_key`` → ``psycopg.OperationalError``), and
``GET /v1/usage`` 500 at once. The shared PostgreSQL cannot be stopped here, so the collector reaches it
through a TCP proxy this test runs and closes for 10 s (connections refused, open ones cut): the same errors
as a stopped server. Under load during the outage every answer must be 503 + Retry-After; afterwards every
acknowledged event is stored exactly once and the client's retries of the refused batches land.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sqlite3
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector_support import ThreadCollector, request, wire_event
from meterline.store import availability
from meterline.store import keys as key_store

OUTAGE_S = 10.0


class TcpProxy:
    """127.0.0.1:<port> → upstream, with ``down()`` (refuse new connections, cut open ones) and ``up()``."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = 0
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            cut, self._open = self._open, []
        for s in cut:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by down()
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def _http(url: str, method: str = "GET", body: Any = None, key: str = "") -> tuple[int, dict[str, str], Any]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            status, hdrs, text = resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        status, hdrs, text = exc.code, dict(exc.headers), exc.read()
    try:
        return status, {k.lower(): v for k, v in hdrs.items()}, json.loads(text)
    except ValueError:
        return status, {k.lower(): v for k, v in hdrs.items()}, text


class Load:
    """Clients that keep calling the collector; an ingest client re-sends a refused batch until it lands."""

    def __init__(self, url: str, ingest_key: str, read_key: str) -> None:
        self.url, self.ingest_key, self.read_key = url, ingest_key, read_key
        self.answers: list[tuple[str, float, float, int, dict[str, str], Any]] = []  # route, t0, t1, status, …
        self.sent: set[str] = set()  # every event id a client generated
        self.acked: list[str] = []  # ids of the batches answered 2xx (repeats included)
        self.lago_acked: set[str] = set()  # event ids of the Lago events answered 200
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def _record(self, route: str, t0: float, status: int, headers: dict[str, str], body: Any) -> None:
        with self.lock:
            self.answers.append((route, t0, time.monotonic(), status, headers, body))

    def ingest(self, deadline: float) -> None:
        batch: list[dict[str, Any]] | None = None
        while time.monotonic() < deadline:
            if batch is None:
                if self.stop.is_set():
                    return  # nothing pending: done
                batch = [wire_event(model=f"m{i % 3}") for i in range(20)]
                with self.lock:
                    self.sent.update(e["id"] for e in batch)
            t0 = time.monotonic()
            status, headers, body = _http(self.url + "/v1/events", "POST", {"events": batch}, self.ingest_key)
            self._record("POST /v1/events", t0, status, headers, body)
            if status in (200, 207):
                with self.lock:
                    self.acked.extend(e["id"] for e in batch)
                batch = None
            else:
                time.sleep(0.05)  # a real client waits Retry-After; here the load stays on during the outage

    def lago(self, deadline: float) -> None:
        pending: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            if pending is None:
                if self.stop.is_set():
                    return
                tx = f"lago-{uuid.uuid4()}"
                pending = {"transaction_id": tx, "external_subscription_id": "s", "code": "llm"}
                pending["properties"] = {"model": "gpt-4o-mini", "input_tokens": 10, "output_tokens": 2}
            t0 = time.monotonic()
            status, headers, body = _http(self.url + "/lago/api/v1/events", "POST", {"event": pending}, self.ingest_key)
            self._record("POST /lago/api/v1/events", t0, status, headers, body)
            if status == 200:
                with self.lock:
                    self.lago_acked.add(body["event"]["lago_id"])
                pending = None
            else:
                time.sleep(0.05)

    def reads(self, deadline: float) -> None:
        while time.monotonic() < deadline and not self.stop.is_set():
            for path in ("/v1/usage?group_by=model", "/v1/events?limit=5"):
                t0 = time.monotonic()
                status, headers, body = _http(self.url + path, key=self.read_key)
                self._record("GET " + path.split("?")[0], t0, status, headers, body)
            time.sleep(0.02)


@pytest.fixture
def proxied_postgres(postgres_url: str) -> Iterator[tuple[str, str, TcpProxy]]:
    """(the database's direct URL, the same database through a TCP proxy, the proxy)."""
    host_port = postgres_url.split("@", 1)[1].split("/", 1)[0]
    host, _, port = host_port.partition(":")
    proxy = TcpProxy((host, int(port or 5432)))
    proxy.up()
    try:
        yield postgres_url, postgres_url.replace(host_port, f"127.0.0.1:{proxy.port}"), proxy
    finally:
        proxy.down()


@pytest.mark.postgres
def test_postgres_outage_answers_503_with_retry_after_and_loses_nothing(
    proxied_postgres: tuple[str, str, TcpProxy],
) -> None:
    import psycopg

    direct, proxied, proxy = proxied_postgres
    # key cache of 1 s: the outage runs well past it (the path that answered 500)
    with ThreadCollector(database=proxied, key_cache_seconds=1.0, pool_size=4) as c:
        ingest_key, _ = key_store.create_key(c.store, "ingest")
        read_key, _ = key_store.create_key(c.store, "read")
        load = Load(c.url, ingest_key, read_key)
        deadline = time.monotonic() + OUTAGE_S + 60
        workers = [threading.Thread(target=load.ingest, args=(deadline,)) for _ in range(3)]
        workers += [threading.Thread(target=load.lago, args=(deadline,))]
        workers += [threading.Thread(target=load.reads, args=(deadline,)) for _ in range(2)]
        for w in workers:
            w.start()
        time.sleep(1.5)
        went_down = time.monotonic()
        proxy.down()  # "PostgreSQL stopped"
        time.sleep(OUTAGE_S)
        came_back = time.monotonic()
        proxy.up()
        time.sleep(3.0)
        load.stop.set()
        for w in workers:
            w.join(deadline - time.monotonic() + 5)
        assert not any(w.is_alive() for w in workers), "a client could not get its batch stored"
        assert request(c.url + "/readyz")[0] == 200

    answers = load.answers
    by_status: dict[tuple[str, int], int] = {}
    for route, _, _, status, _, _ in answers:
        by_status[(route, status)] = by_status.get((route, status), 0) + 1
    print("answers by route and status:", sorted(by_status.items()))
    assert {s for (_, s) in by_status} <= {200, 207, 503}, by_status  # never a 500
    for route, _, _, status, headers, _ in answers:
        if status == 503:
            assert headers.get("retry-after", "").isdigit(), (route, headers)
    # every request made while the database was away (after the first second: requests in flight when it went
    # away may have finished) was answered 503; reads and ingest alike, long after the key cache expired
    during = [a for a in answers if a[1] > went_down + 1.0 and a[2] < came_back]
    assert len(during) > 50, len(during)
    assert {a[3] for a in during} == {503}, sorted({(a[0], a[3]) for a in during})
    late = {a[0] for a in during if a[1] > went_down + 3.0}  # the keys' cache entries expired long before
    assert late == {"POST /v1/events", "POST /lago/api/v1/events", "GET /v1/usage", "GET /v1/events"}, late
    lago_503 = next(a[5] for a in during if a[0] == "POST /lago/api/v1/events")
    assert (lago_503["status"], lago_503["error"], lago_503["code"]) == (
        503,
        "Service Unavailable",
        "store_unavailable",
    )
    ingest_503 = next(a[5] for a in during if a[0] == "POST /v1/events")
    assert "store unavailable" in ingest_503["detail"] and "127.0.0.1" not in ingest_503["detail"]
    assert any(a[3] == 200 and a[1] > came_back for a in answers if a[0] == "GET /v1/usage")

    # nothing lost, nothing doubled: every generated event (acknowledged at last, after its retries) is stored once
    with psycopg.connect(direct) as conn:
        rows = conn.execute("SELECT id, COUNT(*) FROM events GROUP BY id").fetchall()
    stored = {str(r[0]): r[1] for r in rows}
    assert set(load.acked) == load.sent  # every batch was acknowledged at last
    assert set(stored) == load.sent | load.lago_acked, (len(load.sent), len(load.lago_acked), len(stored))
    assert max(stored.values()) == 1
    print(f"events sent {len(load.sent)}, acknowledged {len(load.acked)} times, stored {len(stored)}")


def test_sqlite_locked_past_its_busy_timeout_answers_503_then_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from meterline.store.sqlite import SQLiteStore

    # the collector's busy timeout is 30 s; 0.3 s here, so "locked beyond its timeout" comes quickly
    monkeypatch.setattr(SQLiteStore.__init__, "__kwdefaults__", {"timeout_s": 0.3, "create": True})
    path = tmp_path / "c.db"
    with ThreadCollector(database=f"sqlite:///{path}") as c:
        key, _ = key_store.create_key(c.app.state.writer, "admin")
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            status, headers, body = _http(c.url + "/v1/events", "POST", {"events": [wire_event()]}, key)
            assert (status, headers.get("retry-after")) == (503, "5"), body
            assert "store unavailable" in body["detail"]
            status, headers, body = _http(c.url + "/v1/keys", "POST", {"scope": "read"}, key)  # another writing route
            assert (status, headers.get("retry-after")) == (503, "5"), body
            assert _http(c.url + "/v1/usage", key=key)[0] == 200  # WAL: reads go on
        finally:
            other.execute("ROLLBACK")
            other.close()
        status, _, body = _http(c.url + "/v1/events", "POST", {"events": [wire_event()]}, key)
        assert (status, body["accepted"]) == (200, 1)


def test_which_errors_mean_the_store_is_unavailable() -> None:
    import psycopg

    assert availability.unavailable(sqlite3.OperationalError("database is locked"))
    assert not availability.unavailable(sqlite3.OperationalError("no such table: events"))
    assert not availability.unavailable(sqlite3.IntegrityError("UNIQUE constraint failed"))
    # a real driver error from a closed port, for each engine
    port = _closed_port()
    with pytest.raises(psycopg.OperationalError) as pg:
        psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/x", connect_timeout=2)
    assert availability.unavailable(pg.value)
    assert availability.unavailable(psycopg.errors.AdminShutdown("terminating connection"))
    assert availability.unavailable(psycopg.errors.DeadlockDetected("deadlock"))
    assert availability.unavailable(psycopg.InterfaceError("the connection is closed"))
    assert not availability.unavailable(psycopg.errors.ProgramLimitExceeded("target lists can have at most 1664"))
    assert not availability.unavailable(psycopg.errors.UndefinedTable("relation does not exist"))
    assert not availability.unavailable(ValueError("a bug"))
    clickhouse_connect = pytest.importorskip("clickhouse_connect")
    from clickhouse_connect.driver.exceptions import DatabaseError

    with pytest.raises(Exception) as ch:  # whatever the driver raises for a refused connection
        clickhouse_connect.get_client(host="127.0.0.1", port=port, connect_timeout=2, send_receive_timeout=2)
    assert availability.unavailable(ch.value), repr(ch.value)
    assert not availability.unavailable(DatabaseError("Code: 62. Syntax error"))
    assert sqlite3.OperationalError in availability.error_types("sqlite:///x.db")
    assert psycopg.OperationalError in availability.error_types("postgresql://h/db")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
