"""Delivery guarantees end to end: SDK → HTTP → collector process(es) → database, with failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import meterline
from collector_support import SRC, ProcessCollector, ThreadCollector, request, wire_event
from meterline.sdk.sinks.base import SinkError
from meterline.sdk.sinks.http import HttpSink
from meterline.store import keys as key_store
from meterline.store.backend import open_stores

APP = textwrap.dedent(
    """
    import atexit, json, sys, time
    import meterline

    url, spool, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
    atexit.register(lambda: print(json.dumps(meterline.stats()), flush=True))  # runs after meterline's own hook
    meterline.init(destination=url, spool_dir=spool, flush_interval=0.05, max_retries=2, backoff_max=0.2,
                   exit_timeout=60)
    for i in range(total):
        meterline.record(provider="openai", model="gpt-4o-mini", input_tokens=10, output_tokens=1,
                         subscriber_id=f"c{i % 7}")
        if i % 500 == 499:
            time.sleep(0.05)  # a steady stream over a few seconds, so the collector dies mid-traffic
    print("SENT", flush=True)
    # no flush(), no waiting for the spool: the app just ends; its exit hook delivers and replays in time
    """
)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_sdk_loses_nothing_while_the_collector_is_killed_twice(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db = f"sqlite:///{tmp_path / 'collector.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    collector = ProcessCollector(db, "--no-auth", log=tmp_path / "collector.log").start()
    script = tmp_path / "app.py"
    script.write_text(APP)
    app = subprocess.Popen(
        [sys.executable, str(script), collector.url, str(tmp_path / "spool"), "20000"],
        env={**os.environ, "PYTHONPATH": SRC, "METERLINE_HOME": str(tmp_path / "home")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(2):
            time.sleep(0.6)
            collector.kill()  # SIGKILL: no graceful shutdown, requests cut mid-way
            time.sleep(0.5)
            collector.start()
        out, err = app.communicate(timeout=120)
    finally:
        if app.poll() is None:
            app.kill()
        collector.stop()
    assert app.returncode == 0, err[-3000:]
    stats = json.loads(out.strip().splitlines()[-1])
    store, reader = open_stores(db, pool_size=1)
    if reader is not store:
        reader.close()
    log = (tmp_path / "collector.log").read_text(errors="replace")[-3000:]
    try:
        assert store.count() == 20_000, json.dumps(stats) + log + err[-3000:]
        ids = store.fetch("SELECT COUNT(DISTINCT id) FROM events")[0][0]
        assert ids == 20_000
    finally:
        store.close()
    # the faults really happened, and were survived by retrying and spooling, not by luck
    assert stats["retries"] + stats["spooled"] > 0, stats
    assert stats["dropped_queue_full"] == stats["dropped_sink_failure"] == stats["dead_lettered"] == 0
    assert stats["written"] == 20_000, json.dumps(stats)  # duplicates acknowledged count as written
    assert stats["spool_files"] == 0 and stats["replayed"] == stats["spooled"], json.dumps(stats)


@pytest.mark.postgres
def test_two_collector_processes_on_one_postgres_count_exactly(postgres_url: str, tmp_path: Path) -> None:
    a = ProcessCollector(postgres_url, "--no-auth", log=tmp_path / "a.log").start()
    b = ProcessCollector(postgres_url, "--no-auth", log=tmp_path / "b.log").start()
    events = [wire_event(subscriber_id=f"s{i % 5}") for i in range(10_000)]
    # A gets 0..5999 and B 4000..9999: 2,000 events reach both processes at the same time
    shares = {a.url: events[:6000], b.url: events[4000:]}
    totals: dict[str, list[int]] = {}

    def send(url: str) -> None:
        acc = dup = 0
        chunk = shares[url]
        for i in range(0, len(chunk), 500):
            status, body = request(url + "/v1/events", "POST", {"events": chunk[i : i + 500]}, gzip_body=True)
            assert status == 200, body
            acc += body["accepted"]
            dup += body["duplicates"]
        totals[url] = [acc, dup]

    try:
        threads = [threading.Thread(target=send, args=(u,)) for u in shares]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        status, body = request(a.url + "/v1/usage?group_by=subscriber_id")
        assert status == 200
    finally:
        a.stop()
        b.stop()
    assert sum(v[0] for v in totals.values()) == 10_000
    assert sum(v[1] for v in totals.values()) == 2_000
    assert [(r["subscriber_id"], r["requests"]) for r in body["rows"]] == [(f"s{i}", 2000) for i in range(5)]


def test_http_sink_error_classes_and_batch_splitting(tmp_path: Path) -> None:
    with ThreadCollector(database=f"sqlite:///{tmp_path / 'c.db'}", max_batch_events=10) as c:
        ingest_key = key_store.create_key(c.app.state.writer, "ingest")[0]
        read_key = key_store.create_key(c.app.state.writer, "read")[0]
        events = [meterline.UsageEvent.from_wire(wire_event()) for _ in range(25)]
        sink = HttpSink(c.url, api_key=ingest_key)
        assert sink.write(events) == 0  # 25 > max_batch_events: split on 413 until it fits
        assert sink.write(events[:5]) == 0  # a replay: acknowledged, not stored twice
        assert c.store.count() == 25
        with pytest.raises(SinkError) as wrong_scope:
            HttpSink(c.url, api_key=read_key).write(events[:1])
        assert not wrong_scope.value.retryable and "403" in str(wrong_scope.value)
        with pytest.raises(SinkError) as no_key:
            HttpSink(c.url).write(events[:1])
        assert not no_key.value.retryable and "401" in str(no_key.value)
        url = c.url
        sink.close()
    with pytest.raises(SinkError) as down:
        HttpSink(url, api_key=ingest_key).write(events[:1])
    assert down.value.retryable


def test_http_sink_returns_the_collectors_rejections(tmp_path: Path) -> None:
    from datetime import datetime, timezone

    with ThreadCollector(database=f"sqlite:///{tmp_path / 'c.db'}", auth=False) as c:
        now = datetime.now(timezone.utc)
        good = meterline.UsageEvent(start_time=now, provider="openai", model="gpt-4o-mini")
        bad = meterline.UsageEvent(start_time=now, provider="openai", model="gpt-4o-mini", status="exploded")
        sink = HttpSink(c.url)
        assert sink.write([good, bad]) == 1
        sink.close()
        assert [e.id for e in c.store.iter_events()] == [good.id]


def test_retry_after_parsing() -> None:
    from meterline.sdk.sinks.http import retry_after_seconds

    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: no wait


@pytest.mark.postgres
def test_postgres_destination_in_the_sdk(postgres_url: str) -> None:
    meterline.init(destination=postgres_url, flush_interval=0.05)
    try:
        ids = [
            meterline.record(provider="openai", model="gpt-4o-mini", input_tokens=1000, output_tokens=100)
            for _ in range(1200)
        ]
        assert meterline.flush(20)
        stats = meterline.stats()
    finally:
        meterline.shutdown()
    assert stats["written"] == 1200
    from meterline.store.postgres import PostgresStore

    store = PostgresStore(postgres_url)
    try:
        assert store.count() == 1200
        assert {e.id for e in store.iter_events()} == set(ids)
    finally:
        store.close()
