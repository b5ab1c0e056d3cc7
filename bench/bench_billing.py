"""Billing benchmark: invoice preview for one customer with 1,000,000 events in a month, and finalizing a
month for 10,000 customers, on SQLite and PostgreSQL.

    PYTHONPATH=src python bench/bench_billing.py [--events 1000000] [--customers 10000] [--skip-postgres]

Events are generated straight into the store (``store.insert`` in batches). Baselines, measured in the
same run on the same data: for the preview, one ``SELECT COUNT(*), SUM(total_cost)`` over the customer's
month (the least any invoice must read); for finalize, the single GROUP BY over the month that finalize
runs for all customers (``usage_by_customer``), without rating or writing invoices.
Goals: preview < 1 s; finalize of 10,000 customers < 60 s.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from meterline.billing import service as svc
from meterline.billing import store as billing_store
from meterline.billing.invoice import local_midnight, period_dates
from meterline.core.event import UsageEvent
from meterline.core.timeutil import to_micros
from meterline.store.backend import open_stores

PG_ADMIN = os.environ.get("METERLINE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
PERIOD = "2026-10"
MODELS = [("openai", "gpt-4o-mini"), ("openai", "gpt-4o"), ("anthropic", "claude-haiku-4-5"),
          ("anthropic", "claude-sonnet-4-5"), ("openai", "gpt-4.1-nano")]  # fmt: skip
PLAN = {"id": "bench", "minimum_usd": "1", "rules": [
    {"model": "gpt-4o*", "prices": {"input": "0.30", "output": "1.20", "cache_read": "0.03"},
     "free_tokens": {"input": 100000}},
    {"model": "claude-*", "prices": {"input": "1.2", "output": {"tiers": [{"up_to": 1000000, "mtok": "6"},
                                                                          {"up_to": None, "mtok": "5"}]}}},
    {"model": "*", "markup_percent": "25", "fixed_per_request": "0.0005"},
]}  # fmt: skip


def events(n: int, customers: list[str], seed: int, *, hours: int = 31 * 24, batch_size: int = 20_000) -> Any:
    """Batches of UsageEvents spread over ``hours`` from Oct 1 (the month), with exact costs already set."""
    rnd = random.Random(seed)
    start = datetime(2026, 10, 1, tzinfo=timezone.utc)
    span_us = hours * 3_600 * 1_000_000
    batch: list[UsageEvent] = []
    for i in range(n):
        provider, model = MODELS[i % len(MODELS)]
        inp, out = rnd.randint(50, 4000), rnd.randint(10, 800)
        batch.append(UsageEvent(
            id=str(uuid.UUID(int=rnd.getrandbits(128))), provider=provider, model=model,
            start_time=start + timedelta(microseconds=span_us * i // n), subscriber_id=customers[i % len(customers)],
            input_tokens=inp, output_tokens=out, cache_read_tokens=inp // 10,
            input_cost=Decimal(inp) * Decimal("0.00000015"), output_cost=Decimal(out) * Decimal("0.0000006"),
            total_cost=Decimal(inp) * Decimal("0.00000015") + Decimal(out) * Decimal("0.0000006"),
        ))  # fmt: skip
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def timed(fn: Callable[[], Any], runs: int = 1) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run(name: str, dest: str, n_events: int, n_customers: int) -> list[tuple[str, str, str, str, str]]:
    store, reader = open_stores(dest, pool_size=2)
    if reader is not store:
        reader.close()
    try:
        t0 = time.perf_counter()
        for b in events(n_events, ["big"], 1):
            store.insert(b)
        others = [f"cust-{i:05d}" for i in range(n_customers)]
        for b in events(n_customers * 5, others, 2):
            store.insert(b)
        if hasattr(store, "analyze"):
            store.analyze()
        print(f"[{name}] generated {n_events:,} + {n_customers * 5:,} events in {time.perf_counter() - t0:.0f} s",
              file=sys.stderr)  # fmt: skip
        billing_store.add_plan_version(store, PLAN)
        billing_store.add_customers(store, ["big", *others])
        for cid in ["big", *others]:
            svc.subscribe(store, cid, "bench", "2026-01-01")
        a, b = period_dates(PERIOD)
        lo, hi = to_micros(local_midnight(a, "UTC")), to_micros(local_midnight(b, "UTC"))
        ph = "?" if store.dialect.name == "sqlite" else "%s"
        base_sql = (f"SELECT COUNT(*), SUM(total_cost) FROM events WHERE subscriber_id = {ph} "
                    f"AND start_time >= {ph} AND start_time < {ph}")  # fmt: skip
        base = timed(lambda: store.fetch(base_sql, ("big", lo, hi)), 3)
        prev = timed(lambda: svc.preview(store, "big", PERIOD), 3)
        inv = svc.preview(store, "big", PERIOD)
        assert inv["requests"] == n_events, inv["requests"]
        scan = timed(lambda: billing_store.usage_by_customer(store, "subscriber_id", local_midnight(a, "UTC"),
                                                 local_midnight(b, "UTC")))  # fmt: skip
        t0 = time.perf_counter()
        done = svc.finalize(store, PERIOD)
        fin = time.perf_counter() - t0
        assert len(done) == n_customers + 1, len(done)
        assert done[-1].number == f"INV-{n_customers + 1:06d}"
        return [
            (name, f"preview, 1 customer, {n_events:,} events", f"{base * 1000:.0f} ms (count+sum)",
             f"{prev * 1000:.0f} ms", "met" if prev < 1 else "NOT met"),
            (name, f"finalize {n_customers + 1:,} customers ({n_events + 5 * n_customers:,} events)",
             f"{scan:.1f} s (usage sums alone)", f"{fin:.1f} s", "met" if fin < 60 else "NOT met"),
        ]  # fmt: skip
    finally:
        store.close()


def ingest(name: str, dest: str, n: int, with_trigger: bool) -> float:
    """Seconds to store ``n`` events through ``store.insert`` (batches of 500) in a database without or
    with billing in use: what keeping the hourly billing usage (its trigger) costs ingest."""
    from meterline.billing.model import parse_customer

    store, reader = open_stores(dest, pool_size=2)
    if reader is not store:
        reader.close()
    try:
        if with_trigger:  # the first billing record starts the hourly billing usage (its trigger)
            billing_store.save_customer(store, parse_customer({"id": "c0"}))
        # a live stream: batches of 500 (as the collector's clients send), 100 customers, within 2 hours
        batches = list(events(n, [f"c{i}" for i in range(100)], 3, hours=2, batch_size=500))
        t0 = time.perf_counter()
        for b in batches:
            store.insert(b)
        return time.perf_counter() - t0
    finally:
        store.close()


def ingest_rows(n: int, pg: bool) -> list[tuple[str, str, str, str, str]]:
    rows = []
    for name in ("SQLite", "PostgreSQL") if pg else ("SQLite",):
        times = {}
        for trig in (False, True):
            with tempfile.TemporaryDirectory() as tmp:
                if name == "SQLite":
                    times[trig] = ingest(name, f"sqlite:///{tmp}/i.db", n, trig)
                else:
                    times[trig] = with_pg(lambda url, t=trig: ingest("PostgreSQL", url, n, t))
        rows.append((name, f"store.insert of {n:,} events (billing rollup cost)",
                     f"{n / times[False]:,.0f} events/s, no billing", f"{n / times[True]:,.0f} events/s",
                     f"{(times[True] / times[False] - 1) * 100:+.0f} % time"))  # fmt: skip
    return rows


def with_pg(fn: Callable[[str], Any]) -> Any:
    import psycopg

    name = f"meterline_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(PG_ADMIN, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        return fn(PG_ADMIN.rsplit("/", 1)[0] + f"/{name}")
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--customers", type=int, default=10_000)
    ap.add_argument("--skip-postgres", action="store_true")
    ap.add_argument("--ingest", type=int, default=100_000, help="events for the ingest-cost rows (0: skip)")
    ap.add_argument("--only-ingest", action="store_true", help="only the ingest-cost rows")
    args = ap.parse_args()
    rows = ingest_rows(args.ingest, not args.skip_postgres) if args.ingest else []
    if not args.only_ingest:
        with tempfile.TemporaryDirectory() as tmp:
            rows += run("SQLite", f"sqlite:///{tmp}/bench.db", args.events, args.customers)
        if not args.skip_postgres:
            rows += with_pg(lambda url: run("PostgreSQL", url, args.events, args.customers))
    head = ("store", "operation", "baseline", "meterline", "goal")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(5)]
    for r in [head, *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main()
