"""Collector benchmark: HTTP ingest throughput and usage-query latency, on SQLite, PostgreSQL and ClickHouse.

    PYTHONPATH=src python bench/bench_collector.py [--events 100000] [--stored 1000000] [--skip-postgres]
        [--skip-clickhouse] [--scale 1000000,10000000] [--insert-lock N] [--id-lookup N [--id-lookup-stored M]]

Ingest: ``meterline serve`` in a subprocess (one process, like a default deployment), two client threads
posting pre-built gzip batches of 500 events over keep-alive connections; the baseline is the same
events inserted straight into the store in this process (no HTTP, no validation).
Queries: ``GET /v1/usage`` over ``--stored`` events generated straight through the store, grouped by
day x model and by customer; the baseline is the same query through the store object (no HTTP).
Goals: >= 20,000 events/s ingest, < 300 ms per usage query.
ClickHouse (the embedded engine, chdb, from ``pip install 'meterline[chdb]'``): ingest as above; then
``--scale`` sizes loaded server-side into PostgreSQL and ClickHouse with identical data (``bench/_bulk.py``),
and usage queries timed through the store objects side by side, including the shapes the daily rollup cannot
answer (two dimensions, a zone with daylight saving, hour buckets), which scan events. Goal: ClickHouse
queries >= 5x faster than PostgreSQL on 10M events.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

SRC = str(Path(__file__).resolve().parents[1] / "src")
sys.path.insert(0, SRC)

from meterline.core.event import UsageEvent  # noqa: E402
from meterline.pricing import get_pricer  # noqa: E402
from meterline.store.backend import open_stores  # noqa: E402
from meterline.store.query import UsageQuery  # noqa: E402

PG_ADMIN = os.environ.get("METERLINE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
MODELS = [
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4o"),
    ("anthropic", "claude-haiku-4-5"),
    ("anthropic", "claude-sonnet-4-5"),
    ("openai", "gpt-4.1-nano"),
]


def make_events(n: int, days: int = 30, customers: int = 1000) -> list[UsageEvent]:
    rnd = random.Random(7)
    start = datetime(2026, 10, 1, tzinfo=timezone.utc)
    pricer = get_pricer()
    out = []
    for _ in range(n):
        provider, model = rnd.choice(MODELS)
        e = UsageEvent(
            start_time=start + timedelta(seconds=rnd.randrange(days * 86400)),
            provider=provider,
            model=model,
            input_tokens=rnd.randrange(50, 4000),
            output_tokens=rnd.randrange(10, 800),
            subscriber_id=f"cust-{rnd.randrange(customers):04d}",
            environment=rnd.choice(("prod", "staging")),
            integration="litellm",
        )
        e.finalize_totals()
        pricer.price(e)
        out.append(e)
    return out


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, database: str, workers: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [
            sys.executable,
            "-m",
            "meterline",
            "serve",
            "--database",
            database,
            "--port",
            str(self.port),
            "--no-auth",
            "--log-level",
            "warning",
            "--workers",
            str(workers),
        ]
        self.proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": SRC}, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("collector did not start") from None
                time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


def bench_ingest(database: str, n: int, clients: int = 2, workers: int = 1) -> tuple[float, float]:
    """(events/s over HTTP, events/s straight into the store)."""
    events = make_events(n)
    bodies = [
        gzip.compress(json.dumps({"events": [e.to_wire(compact=True) for e in events[i : i + 500]]}).encode(), 1)
        for i in range(0, n, 500)
    ]
    server = Server(database, workers)
    try:
        work = list(bodies)
        lock = threading.Lock()
        errors: list[str] = []

        def client() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
            while True:
                with lock:
                    if not work:
                        break
                    body = work.pop()
                conn.request(
                    "POST",
                    "/v1/events",
                    body=body,
                    headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
                )
                resp = conn.getresponse()
                data = resp.read()
                if resp.status != 200:
                    errors.append(f"{resp.status} {data[:200]!r}")
            conn.close()

        t0 = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        http_rate = n / (time.perf_counter() - t0)
        if errors:
            raise RuntimeError(errors[0])
    finally:
        server.stop()
    writer, reader = open_stores(database)
    try:
        assert reader.count() == n, reader.count()
        fresh = make_events(n)
        t0 = time.perf_counter()
        for i in range(0, n, 500):
            writer.insert(fresh[i : i + 500])
        direct_rate = n / (time.perf_counter() - t0)
    finally:
        writer.close()
        if reader is not writer:
            reader.close()
    return http_rate, direct_rate


def fill(database: str, n: int) -> None:
    writer, reader = open_stores(database)
    try:
        done = 0
        while done < n:
            k = min(50_000, n - done)
            events = make_events(k)
            for e in events:
                e.id = str(uuid.uuid4())
            for i in range(0, k, 5000):
                writer.insert(events[i : i + 5000])
            done += k
        if hasattr(writer, "analyze"):
            writer.analyze()
    finally:
        writer.close()
        if reader is not writer:
            reader.close()


def timed(fn: Callable[[], Any], repeat: int = 5) -> float:
    fn()  # warm caches
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs) * 1000


def bench_queries(database: str) -> list[tuple[str, float, float]]:
    server = Server(database)
    writer, reader = open_stores(database)
    try:
        out = []
        for label, params, q in (
            ("day x model", {"bucket": "day", "group_by": "model"}, UsageQuery(group_by=["model"], bucket="day")),
            ("customer", {"group_by": "subscriber_id"}, UsageQuery(group_by=["subscriber_id"])),
        ):
            url = server.url + "/v1/usage?" + urllib.parse.urlencode(params)

            def over_http(url: str = url) -> Any:
                with urllib.request.urlopen(url, timeout=120) as r:
                    return r.read()

            out.append((label, timed(over_http), timed(lambda q=q: reader.usage(q))))
        return out
    finally:
        server.stop()
        writer.close()
        if reader is not writer:
            reader.close()


SCALE_QUERIES = (
    ("day x model (rollup)", UsageQuery(group_by=["model"], bucket="day")),
    ("customer (rollup)", UsageQuery(group_by=["subscriber_id"])),
    # PostgreSQL scans events for these; ClickHouse reads its hourly rollup ("ClickHouse scan ms": scanning events)
    ("day x model, Europe/Paris", UsageQuery(group_by=["model"], bucket="day", tz="Europe/Paris")),
    ("customer x model", UsageQuery(group_by=["subscriber_id", "model"])),
    ("hour, prod only", UsageQuery(bucket="hour", filters={"environment": "prod"})),
)


def bench_scale(
    pg_url: str | None, ch_url: str | None, n: int
) -> list[tuple[str, float | None, float | None, float | None]]:
    """Load ``n`` identical events server-side into each engine and time the usage queries (store objects)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _bulk import clickhouse_fill, postgres_fill

    stores: dict[str, Any] = {}
    try:
        if pg_url:
            pg, _ = open_stores(pg_url, pool_size=2)
            t0 = time.perf_counter()
            postgres_fill(pg, n)
            print(f"[postgresql] loaded {n:,} events server-side in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
            stores["pg"] = pg
        if ch_url:
            ch, _ = open_stores(ch_url)
            t0 = time.perf_counter()
            clickhouse_fill(ch, n)
            print(f"[clickhouse] loaded {n:,} events server-side in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
            stores["ch"] = ch
        rows = []
        for label, q in SCALE_QUERIES:
            answers = {k: sorted(map(str, s.usage(q))) for k, s in stores.items()}
            if len(answers) == 2 and answers["pg"] != answers["ch"]:
                raise RuntimeError(f"{label}: PostgreSQL and ClickHouse disagree")
            times = {k: timed(lambda s=s, q=q: s.usage(q), repeat=3) for k, s in stores.items()}
            scan = None
            if "ch" in stores:  # the same query scanning events (what the hourly rollup saves)
                stores["ch"].hourly_reads = False
                scan = timed(lambda q=q: stores["ch"].usage(q), repeat=3)
                stores["ch"].hourly_reads = True
            rows.append((label, times.get("pg"), times.get("ch"), scan))
        return rows
    finally:
        for s in stores.values():
            s.close()


def bench_insert_lock(
    ch_dir: Path, meta: str, n: int, batch: int, writers: int, rounds: int = 6
) -> tuple[float, float, float]:
    """(events/s with the insert lock of the metadata database, events/s without it: the path before the fix,
    ms per batch the lock alone takes), ``n`` new events per path through ``ClickHouseStore.insert`` in batches of
    ``batch``, ``writers`` store objects (collectors) on threads inserting disjoint events. The two paths alternate
    over ``rounds`` rounds (the first one's order flips each round) on one database, so part build-up slows both
    alike. The lock alone: taken and released 200 times for ``batch`` new ids, nothing inserted."""
    from meterline.store.clickhouse import ClickHouseStore

    dest = f"chdb://{ch_dir}?database=l{uuid.uuid4().hex[:8]}&meta={urllib.parse.quote(meta, safe='')}"
    stores = [ClickHouseStore(dest) for _ in range(writers)]
    elapsed = {True: 0.0, False: 0.0}
    try:
        per_round = n // rounds
        for r in range(rounds):
            for locked in (True, False) if r % 2 == 0 else (False, True):
                events = make_events(per_round)
                for e in events:
                    e.id = str(uuid.uuid4())
                for s in stores:
                    s.serialise_inserts = locked

                def write(k: int, events: list[UsageEvent] = events) -> None:
                    mine = events[k::writers]
                    for i in range(0, len(mine), batch):
                        stores[k].insert(mine[i : i + batch])

                threads = [threading.Thread(target=write, args=(k,)) for k in range(writers)]
                t0 = time.perf_counter()
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                elapsed[locked] += time.perf_counter() - t0
        total = per_round * rounds
        if stores[0].count() != 2 * total:
            raise RuntimeError(f"insert-lock bench: {stores[0].count()} events stored, {2 * total} sent")
        ids = [[str(uuid.uuid4()) for _ in range(batch)] for _ in range(200)]
        t0 = time.perf_counter()
        for chunk in ids:
            with stores[0]._insert_lock.hold(chunk):
                pass
        hold_ms = (time.perf_counter() - t0) / len(ids) * 1000
        return total / elapsed[True], total / elapsed[False], hold_ms
    finally:
        for s in stores:
            s.close()


def _insert_before_event_ids(store: Any, events: list[UsageEvent]) -> int:
    """``ClickHouseStore.insert`` as it was before ``event_ids`` (for ``--id-lookup`` only): ids looked up in
    ``events`` within the batch's start_time range (missing a retry with another start_time), same lock."""
    from meterline.store.schema import COLUMN_NAMES, TABLE, event_to_row

    start = COLUMN_NAMES.index("start_time")
    unique: dict[str, UsageEvent] = {}
    for e in events:
        unique.setdefault(e.id, e)
    rows = [event_to_row(e) for e in unique.values()]
    with store._lock, store._locked([r[0] for r in rows]):
        lo, hi = min(r[start] for r in rows), max(r[start] for r in rows)
        seen = {
            r[0]
            for r in store.fetch_clickhouse(
                f"SELECT id FROM {TABLE} WHERE start_time >= %s AND start_time <= %s AND id IN %s",
                [lo, hi, tuple(r[0] for r in rows)],
            )
        }
        fresh = [r for r in rows if r[0] not in seen]
        if fresh:
            store.insert_clickhouse(TABLE, fresh, COLUMN_NAMES)
        return len(fresh)


def bench_id_lookup(ch_dir: Path, n: int, batch: int, stored: int, rounds: int = 6) -> tuple[float, float]:
    """(events/s of ``ClickHouseStore.insert`` with its ``event_ids`` look-up table, events/s of the insert of
    before: ids looked up in ``events`` within the batch's start_time range, no ``event_ids`` view), ``n`` new
    events per path in batches of ``batch`` into two databases that each hold ``stored`` events first (loaded
    server-side). The paths alternate over ``rounds`` rounds (the first one's order flips each round)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _bulk import clickhouse_fill
    from meterline.store.clickhouse import ClickHouseStore

    new, old = (ClickHouseStore(f"chdb://{ch_dir}?database=i{uuid.uuid4().hex[:8]}") for _ in range(2))
    old.command_clickhouse("DROP VIEW event_ids_mv")
    old.command_clickhouse("DROP TABLE event_ids")
    elapsed = {True: 0.0, False: 0.0}
    try:
        for s in (new, old):
            clickhouse_fill(s, stored)
        per_round = n // rounds
        for r in range(rounds):
            for with_ids in (True, False) if r % 2 == 0 else (False, True):
                events = make_events(per_round)
                for e in events:
                    e.id = str(uuid.uuid4())
                t0 = time.perf_counter()
                for i in range(0, len(events), batch):
                    if with_ids:
                        new.insert(events[i : i + batch])
                    else:
                        _insert_before_event_ids(old, events[i : i + batch])
                elapsed[with_ids] += time.perf_counter() - t0
        total = per_round * rounds
        for s in (new, old):
            if s.count() != stored + total:
                raise RuntimeError(f"id-lookup bench: {s.count()} events stored, {stored + total} expected")
        return total / elapsed[True], total / elapsed[False]
    finally:
        new.close()
        old.close()


def postgres_database() -> tuple[str, Callable[[], None]]:
    import psycopg

    admin = psycopg.connect(PG_ADMIN, autocommit=True)
    name = f"meterline_bench_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()

    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name, drop


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000, help="events sent over HTTP per backend")
    ap.add_argument("--stored", type=int, default=1_000_000, help="events stored for the query benchmark")
    ap.add_argument("--skip-postgres", action="store_true")
    ap.add_argument("--skip-sqlite", action="store_true")
    ap.add_argument("--skip-clickhouse", action="store_true")
    ap.add_argument("--scale", default="1000000,10000000", help="event counts for the PostgreSQL/ClickHouse queries")
    ap.add_argument("--only-scale", action="store_true", help="skip the ingest and HTTP query parts")
    ap.add_argument(
        "--insert-lock", type=int, default=0, metavar="N",
        help="ClickHouse: N events per path through store.insert with and without the metadata insert lock",
    )  # fmt: skip
    ap.add_argument("--only-insert-lock", action="store_true", help="run only the --insert-lock part")
    ap.add_argument(
        "--id-lookup", type=int, default=0, metavar="N",
        help="ClickHouse: N events per path through store.insert with event_ids vs the start_time-range look-up",
    )  # fmt: skip
    ap.add_argument("--id-lookup-stored", type=int, default=1_000_000, metavar="M", help="events stored first")
    ap.add_argument("--only-id-lookup", action="store_true", help="run only the --id-lookup part")
    args = ap.parse_args()
    if args.only_insert_lock or args.only_id_lookup:
        args.only_scale, args.scale = True, ""
    if args.only_id_lookup:
        args.insert_lock = 0
    tmp = Path(tempfile.mkdtemp(prefix="meterline-bench-"))
    backends: list[tuple[str, Callable[[], tuple[str, Callable[[], None]]]]] = []
    if not args.skip_sqlite:
        backends.append(("sqlite", lambda: (f"sqlite:///{tmp / f'{uuid.uuid4().hex}.db'}", lambda: None)))
    if not args.skip_postgres:
        backends.append(("postgresql", postgres_database))
    # the embedded engine opens one directory per process: every ClickHouse database of this run lives in it
    ch_dir = tmp / "chdb"
    if not args.skip_clickhouse:
        backends.append(("clickhouse", lambda: (f"chdb://{ch_dir}?database=b{uuid.uuid4().hex[:8]}", lambda: None)))
    ingest_rows, query_rows = [], []
    for name, make in [] if args.only_scale else backends:
        for workers in (1, 2) if name == "postgresql" else (1,):
            db, drop = make()
            try:
                http_rate, direct = bench_ingest(db, args.events, workers=workers)
                ingest_rows.append((f"{name}, {workers} worker{'s' if workers > 1 else ''}", http_rate, direct))
            finally:
                drop()
        if name == "clickhouse":  # this process now holds the engine: no subprocess server may open it again
            continue
        db, drop = make()
        try:
            t0 = time.perf_counter()
            fill(db, args.stored)
            print(f"[{name}] stored {args.stored:,} events in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
            for label, http_ms, store_ms in bench_queries(db):
                query_rows.append((name, label, http_ms, store_ms))
        finally:
            drop()
    scale_rows: list[tuple[int, str, float | None, float | None, float | None]] = []
    for n in [int(x) for x in args.scale.split(",") if x]:
        pg_url, drop = postgres_database() if not args.skip_postgres else (None, lambda: None)
        ch_url = None if args.skip_clickhouse else f"chdb://{ch_dir}?database=s{uuid.uuid4().hex[:8]}"
        try:
            for label, pg_ms, ch_ms, ch_scan in bench_scale(pg_url, ch_url, n):
                scale_rows.append((n, label, pg_ms, ch_ms, ch_scan))
                print(f"[scale] {n:,} {label}: PostgreSQL {pg_ms} ms, ClickHouse {ch_ms} ms (scan {ch_scan} ms)",
                      file=sys.stderr, flush=True)  # fmt: skip
        finally:
            drop()
    lock_rows: list[tuple[str, int, int, float, float, float]] = []
    if args.insert_lock and not args.skip_clickhouse:
        metas: list[tuple[str, Callable[[], tuple[str, Callable[[], None]]]]] = [
            ("SQLite", lambda: (f"sqlite:///{tmp / f'meta-{uuid.uuid4().hex[:8]}.db'}", lambda: None))
        ]
        if not args.skip_postgres:
            metas.append(("PostgreSQL", postgres_database))
        for meta_name, make_meta in metas:
            for batch, writers in ((500, 1), (50, 1), (500, 2), (50, 2)):
                meta, drop = make_meta()
                try:
                    locked, old, hold_ms = bench_insert_lock(ch_dir, meta, args.insert_lock, batch, writers)
                finally:
                    drop()
                lock_rows.append((meta_name, batch, writers, locked, old, hold_ms))
                print(f"[insert-lock] meta {meta_name}, batches of {batch}, {writers} writer(s): "
                      f"{locked:,.0f} vs {old:,.0f} events/s, lock alone {hold_ms:.2f} ms",
                      file=sys.stderr, flush=True)  # fmt: skip
    id_rows: list[tuple[int, float, float]] = []
    if args.id_lookup and not args.skip_clickhouse:
        for batch in (500, 50):
            with_ids, before = bench_id_lookup(ch_dir, args.id_lookup, batch, args.id_lookup_stored)
            id_rows.append((batch, with_ids, before))
            print(f"[id-lookup] batches of {batch}: {with_ids:,.0f} vs {before:,.0f} events/s",
                  file=sys.stderr, flush=True)  # fmt: skip
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"\nIngest over HTTP: {args.events:,} events, batches of 500, 2 client threads, "
        "`meterline serve` with 1 or 2 worker processes"
    )
    print("| backend | HTTP events/s | baseline: store.insert events/s | goal >= 20,000/s |")
    print("|---|---:|---:|---|")
    for name, rate, direct in ingest_rows:
        print(f"| {name} | {rate:,.0f} | {direct:,.0f} | {'met' if rate >= 20_000 else 'MISSED'} |")
    print(f"\nGET /v1/usage over {args.stored:,} stored events (median of 5)")
    print("| backend | grouping | HTTP ms | baseline: store.usage ms | goal < 300 ms |")
    print("|---|---|---:|---:|---|")
    for name, label, http_ms, store_ms in query_rows:
        print(f"| {name} | {label} | {http_ms:,.0f} | {store_ms:,.0f} | {'met' if http_ms < 300 else 'MISSED'} |")
    if scale_rows:
        print("\nstore.usage on identical data loaded server-side (median of 3, ms)")
        print("| events | query | PostgreSQL ms | ClickHouse ms | PostgreSQL / ClickHouse | ClickHouse scan ms |")
        print("|---:|---|---:|---:|---:|---:|")
        for n, label, pg_ms, ch_ms, ch_scan in scale_rows:
            ratio = f"{pg_ms / ch_ms:.1f}x" if pg_ms and ch_ms else "-"
            pg_s = f"{pg_ms:,.0f}" if pg_ms is not None else "-"
            ch_s = f"{ch_ms:,.0f}" if ch_ms is not None else "-"
            scan_s = f"{ch_scan:,.0f}" if ch_scan is not None else "-"
            print(f"| {n:,} | {label} | {pg_s} | {ch_s} | {ratio} | {scan_s} |")
    if lock_rows:
        print(f"\nClickHouse (chdb) store.insert, {args.insert_lock:,} new events per path: with the metadata "
              "insert lock vs without it (the path before the fix), alternating rounds")  # fmt: skip
        print(
            "| metadata database | batch | writers | locked events/s | unlocked events/s | locked / unlocked "
            "| the lock alone, ms per batch |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|")
        for meta_name, batch, writers, locked, old, hold_ms in lock_rows:
            print(f"| {meta_name} | {batch} | {writers} | {locked:,.0f} | {old:,.0f} | {locked / old:.2f} "
                  f"| {hold_ms:.2f} |")  # fmt: skip
    if id_rows:
        print(f"\nClickHouse (chdb) store.insert, {args.id_lookup:,} new events per path into "
              f"{args.id_lookup_stored:,} stored: ids looked up in event_ids vs in events within the batch's "
              "start_time range (before), alternating rounds")  # fmt: skip
        print("| batch | event_ids events/s | before events/s | event_ids / before |")
        print("|---:|---:|---:|---:|")
        for batch, with_ids, before in id_rows:
            print(f"| {batch} | {with_ids:,.0f} | {before:,.0f} | {with_ids / before:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
