"""Continuous export (``METERLINE_FORWARD``) from several collector replicas: one forwards each target at a time.

The issue "Hardening": forwarding was documented as "run it on ONE replica"; with the same configuration on N
collectors, N forwarders sent every event (the ledger is read before it is written), and with none configured
nothing was sent. Each export cursor now has a lease in the database the collectors share (``store.leases``):
only its holder sends, renewing it before each send; a holder that stops releases it, one that is killed loses
it after the TTL. Checked here with three ``meterline serve`` processes on one SQLite file and on one PostgreSQL
database, against a target that records who sent each request and when.
"""

from __future__ import annotations

import collections
import itertools
import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from collector_support import ProcessCollector, request
from meterline.core.event import UsageEvent
from meterline.interop.export import ChargeBy, Exporter, make_target
from meterline.interop.export import ledger as export_ledger
from meterline.store import leases
from meterline.store.backend import open_stores
from meterline.store.leases import Lease

TTL = 2.0
POLL = 0.2


class CountingTarget:
    """A Lago batch endpoint that takes everything and records each request: (sender's key, start, end, ids)."""

    def __init__(self, delay: float = 0.02) -> None:
        self.delay = delay
        self.lock = threading.Lock()
        self.requests: list[tuple[str, float, float, list[str]]] = []
        self.receipts: collections.Counter[str] = collections.Counter()
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                t0 = time.monotonic()
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                ids = [e["transaction_id"] for e in json.loads(body)["events"]]
                time.sleep(target.delay)  # a send takes a while: room for a second sender to overlap
                with target.lock:
                    target.receipts.update(ids)
                    target.requests.append((self.headers.get("authorization", ""), t0, time.monotonic(), ids))
                out = json.dumps({"events": []}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self) -> CountingTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, n: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.receipts) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.receipts) >= n, f"{len(self.receipts)} of {n} events arrived"

    def senders(self, since: float = 0.0) -> list[str]:
        """Who sent, in the order the requests began (``since``: monotonic time)."""
        with self.lock:
            return [who for who, t0, _, _ in sorted(self.requests, key=lambda r: r[1]) if t0 >= since]

    def first_request(self, sender: str) -> float:
        with self.lock:
            return min(t0 for who, t0, _, _ in self.requests if who == sender)


def _events(n: int) -> list[UsageEvent]:
    now = datetime.now(timezone.utc)
    return [
        UsageEvent(provider="openai", model="gpt-4o-mini", start_time=now - timedelta(minutes=30, seconds=i),
                   input_tokens=100 + i, output_tokens=10, subscriber_id=f"cust-{i % 7}")
        for i in range(n)
    ]  # fmt: skip


@pytest.fixture
def store(database: str) -> Iterator[Any]:
    writer, reader = open_stores(database, pool_size=2)
    if reader is not writer:
        reader.close()
    yield writer
    writer.close()


def test_three_collectors_forward_each_event_once_one_at_a_time_and_take_over(
    database: str, store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with CountingTarget() as target:
        monkeypatch.setenv("METERLINE_FORWARD", f"lago+{target.url}?charge_by=subscriber_id&poll_seconds={POLL}")
        monkeypatch.setenv("METERLINE_FORWARD_LEASE_SECONDS", str(TTL))
        collectors: dict[str, ProcessCollector] = {}
        try:
            for name in ("a", "b", "c"):  # each sends with its own key: the target tells them apart
                monkeypatch.setenv("LAGO_API_KEY", f"key-{name}")
                collectors[f"Bearer key-{name}"] = ProcessCollector(database, "--no-auth", log=tmp_path / f"{name}.log")
                collectors[f"Bearer key-{name}"].start()
            store.insert(_events(300))
            target.wait_for(300)
            time.sleep(3 * POLL)  # the holder writes its ledger rows; the others keep asking for the lease
            assert len(set(target.senders())) == 1, f"several collectors sent: {collections.Counter(target.senders())}"
            first = target.senders()[0]
            leased = {who: request(f"{c.url}/v1/exports")[1][0]["lease"] for who, c in collectors.items()}
            assert leased[first]["this_collector"] and leased[first]["seconds_left"] > 0
            assert all(not v["this_collector"] and v["holder"] == leased[first]["holder"]
                       for who, v in leased.items() if who != first)  # fmt: skip

            # the holder is killed: another takes over within the TTL and one poll
            killed = time.monotonic()
            collectors[first].kill()
            store.insert(_events(200))
            target.wait_for(500)
            (second,) = set(target.senders(since=killed))
            assert second != first
            assert target.first_request(second) - killed < TTL + POLL + 1.0  # (1 s: scheduling on a busy box)

            # the new holder stops cleanly: it releases the lease, the last one takes over at its next poll
            time.sleep(3 * POLL)
            collectors[second].stop()
            stopped = time.monotonic()
            store.insert(_events(100))
            target.wait_for(600)
            (third,) = set(target.senders(since=stopped))
            assert third not in (first, second)
            assert target.first_request(third) - stopped < TTL  # released, not expired
            time.sleep(3 * POLL)
        finally:
            for c in collectors.values():
                c.stop()
    logs = "".join(p.read_text() for p in tmp_path.glob("*.log"))
    assert len(target.receipts) == 600 and set(target.receipts.values()) == {1}, logs[-3000:]
    # never two senders at once: in start order, each request began after the previous one (any sender) ended
    spans = sorted((t0, t1, who) for who, t0, t1, _ in target.requests)
    assert all(nxt[0] >= prev[1] for prev, nxt in itertools.pairwise(spans) if nxt[2] != prev[2])
    order = target.senders()
    runs = [who for k, who in enumerate(order) if k == 0 or order[k - 1] != who]
    assert runs == [first, second, third]


def test_a_forwarder_that_loses_its_lease_stops_sending_at_once(store: Any) -> None:
    """Renewal before each send: once another collector holds the lease, not one more batch goes out."""
    store.insert(_events(350))
    with CountingTarget(delay=0) as target:
        exporter = Exporter(
            store,
            make_target("lago", target.url, "k", ChargeBy("subscriber_id")),
            lease=Lease(store, "export:t", ttl=30, holder="one"),
        )
        other = Lease(store, "export:t", ttl=30, holder="two")
        real_send = exporter.target.send

        def send_then_lose(items: Any) -> Any:
            result = real_send(items)
            # the lease is taken away (as when this collector stalled past its TTL and another took over)
            store.execute("UPDATE meterline_leases SET expires = 0 WHERE name = 'export:t'")
            assert other.hold()
            return result

        exporter.target.send = send_then_lose  # type: ignore[method-assign]
        report = exporter.run_once()
        assert report.sent == 100 and len(target.requests) == 1  # the first batch only
        assert export_ledger.counts(store, exporter.cursor) == {"sent": 100}
        assert leases.current(store, "export:t") is not None and leases.current(store, "export:t")[0] == "two"  # type: ignore[index]

        # the standby's follow: it stands by while "two" holds it, and forwards the rest once "two" releases it
        exporter.target.send = real_send  # type: ignore[method-assign]
        done = threading.Thread(target=exporter.follow, args=(0.05,))
        done.start()
        try:
            time.sleep(0.4)
            assert len(target.requests) == 1
            other.release()
            target.wait_for(350, timeout=20)
        finally:
            exporter.stop()
            done.join(10)
        assert set(target.receipts.values()) == {1}
        assert leases.current(store, "export:t") is None  # released when it stopped


def test_lease_take_renew_expire_release_on_every_store(any_database: str) -> None:
    writer, reader = open_stores(any_database, pool_size=2)
    if reader is not writer:
        reader.close()
    try:
        a = Lease(writer, "export:x", ttl=0.6, holder="A")
        b = Lease(writer, "export:x", ttl=0.6, holder="B")
        assert a.hold() and a.held
        assert not b.hold() and not b.held
        assert a.hold()  # renewed
        held = leases.current(writer, "export:x")
        assert held is not None and held[0] == "A" and 0 < held[1] <= 0.6
        time.sleep(0.8)  # A died: its lease expires
        assert leases.current(writer, "export:x") is None
        assert b.hold() and not a.hold() and not a.held
        a.release()  # not A's to release: B keeps it
        assert leases.current(writer, "export:x") is not None
        b.release()
        assert a.hold()
        assert Lease(writer, "export:y", ttl=5, holder="B").hold()  # one lease per name
        if writer.meta_apart:  # the ClickHouse store: the lease lives in its SQL metadata database
            assert sorted(writer.meta.fetch("SELECT name, holder FROM meterline_leases")) == [
                ("export:x", "A"),
                ("export:y", "B"),
            ]
        with pytest.raises(ValueError, match="ttl must be > 0"):
            Lease(writer, "export:z", ttl=0)
    finally:
        writer.close()
