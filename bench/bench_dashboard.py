"""Dashboard benchmark: each page's server time over 1,000,000 stored events, on SQLite and PostgreSQL.

    PYTHONPATH=src python bench/bench_dashboard.py [--events 1000000] [--runs 5] [--skip-postgres] [--keep]

Events are generated straight into the store, in time order, over the last 60 days (so the default 30-day
range holds half of them and the previous period the other half): 1,000 customers, 8 products, 20 API keys,
6 teams, 5 models, 2% errors, streams with a first-token time, one event in ten in a trace of up to 6 steps.
Each page is fetched in-process (FastAPI TestClient, signed in with an admin key) once to warm up, then
``--runs`` times; the table shows the median server time (the page's ``Server-Timing`` header: from the
route to the rendered page) and, as the baseline measured in the same run, the JSON API call that returns
the same data (e.g. ``GET /v1/usage`` for the explorer). Goal: every page < 300 ms.
The SQLite file is kept in the temp dir for reruns with ``--keep`` (rebuilt when the event count differs).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

SRC = str(Path(__file__).resolve().parents[1] / "src")
sys.path.insert(0, SRC)

from meterline.core.event import UsageEvent  # noqa: E402
from meterline.store.backend import open_stores  # noqa: E402

PG_ADMIN = os.environ.get("METERLINE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
MODELS = [  # (provider, model, USD per input token, USD per output token)
    ("openai", "gpt-4o-mini", Decimal("0.00000015"), Decimal("0.0000006")),
    ("openai", "gpt-4o", Decimal("0.0000025"), Decimal("0.00001")),
    ("anthropic", "claude-haiku-4-5", Decimal("0.000001"), Decimal("0.000005")),
    ("anthropic", "claude-sonnet-4-5", Decimal("0.000003"), Decimal("0.000015")),
    ("openai", "gpt-4.1-nano", Decimal("0.0000001"), Decimal("0.0000004")),
]
DAYS = 60


def generate(n: int, now: datetime, chunk: int = 20_000) -> Iterator[list[UsageEvent]]:
    rnd = random.Random(11)
    span = DAYS * 86400
    out: list[UsageEvent] = []
    made = 0
    while made < n:
        provider, model, pin, pout = rnd.choice(MODELS)
        # in arrival order, as a collector receives them (a minute of jitter): rows that are near in time are
        # near in the table, as in a real store
        start = now - timedelta(seconds=span * (1 - made / n) - rnd.randrange(60))
        inp, cread, outp = rnd.randrange(50, 4000), rnd.choice((0, 0, 0, 512, 2048)), rnd.randrange(10, 800)
        steps = rnd.randrange(2, 7) if rnd.random() < 0.1 else 1
        trace = f"tr-{uuid.UUID(int=rnd.getrandbits(128))}" if steps > 1 else None
        parent: str | None = None
        for step in range(min(steps, n - made)):
            stream = rnd.random() < 0.3
            dur = rnd.lognormvariate(6.5, 0.6)
            e = UsageEvent(
                id=str(uuid.UUID(int=rnd.getrandbits(128))),
                start_time=start + timedelta(seconds=step * 2),
                duration_ms=round(dur, 1),
                time_to_first_token_ms=round(dur * 0.3, 1) if stream else None,
                stream=stream,
                provider=provider,
                model=model,
                status="error" if rnd.random() < 0.02 else "success",
                input_tokens=inp,
                cache_read_tokens=cread,
                output_tokens=outp,
                total_tokens=inp + cread + outp,
                input_cost=inp * pin,
                cache_read_cost=cread * pin / 10,
                cache_write_cost=Decimal(0),
                output_cost=outp * pout,
                total_cost=inp * pin + cread * pin / 10 + outp * pout,
                pricing_source="bench",
                subscriber_id=f"cust-{rnd.randrange(1000):04d}",
                product_id=f"product-{rnd.randrange(8)}",
                api_key_alias=f"key-{rnd.randrange(20):02d}",
                team_id=f"team-{rnd.randrange(6)}",
                organization_id=f"org-{rnd.randrange(50)}",
                environment=rnd.choice(("prod", "staging")),
                trace_id=trace,
                parent_transaction_id=parent,
                integration="litellm",
            )
            parent = e.id if trace else None
            out.append(e)
            made += 1
            if len(out) >= chunk:
                yield out
                out = []
    if out:
        yield out


def fill(database: str, n: int, now: datetime) -> None:
    writer, reader = open_stores(database)
    try:
        have = reader.count()
        if have == n:
            print(f"  reusing {n:,} events in {database}")
            return
        if have:
            raise SystemExit(f"{database} holds {have:,} events, not {n:,}: delete it first")
        t0 = time.monotonic()
        for batch in generate(n, now):
            writer.insert(batch)
        if hasattr(writer, "analyze"):
            writer.analyze()
        print(f"  stored {n:,} events in {time.monotonic() - t0:.0f}s")
    finally:
        writer.close()
        if reader is not writer:
            reader.close()


def measure(database: str, runs: int) -> list[tuple[str, float, str, float | None]]:
    from fastapi.testclient import TestClient

    from meterline.budgets import store as budget_store
    from meterline.server.app import create_app
    from meterline.server.dashboard import auth
    from meterline.server.settings import Settings
    from meterline.store import keys as key_store

    app = create_app(Settings(database=database))
    results = []
    with TestClient(app) as c:
        writer = app.state.writer
        admin, _ = key_store.create_key(writer, "admin", "bench")
        for i, (scope, value) in enumerate(
            [("subscriber", "cust-0001"), ("team", "team-1"), ("product", "product-2"), ("api_key", "key-03"),
             ("organization", "org-7")]
        ):  # fmt: skip
            name = f"bench-{scope}-{uuid.uuid4().hex[:6]}"
            budget_store.create_budget(
                writer, {"name": name, "scope": scope, "scope_value": value, "limit_usd": str(100 + i)}
            )
        page = c.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        c.post("/login", data={"csrf_token": token, "api_key": admin}, follow_redirects=False)
        hdr = {"Authorization": f"Bearer {admin}"}
        today = datetime.now(timezone.utc).date()
        start = datetime.combine(today - timedelta(days=29), datetime.min.time(), timezone.utc).isoformat()
        end = datetime.combine(today + timedelta(days=1), datetime.min.time(), timezone.utc).isoformat()
        rng = f"start={start}&end={end}".replace("+", "%2B")
        first = c.get("/requests").text
        event_id = re.search(r'data-id="([^"]+)"', first).group(1)  # type: ignore[union-attr]
        deep = c.get("/requests?before=" + _cursor_days_ago(20)).text
        assert "data-id=" in deep
        traces = c.get("/traces").text
        trace_id = re.search(r'data-trace="([^"]+)"', traces).group(1)  # type: ignore[union-attr]
        share = auth.share_token(app.state.dashboard_secret, "cust-0001", time.time() + 3600)
        # billing: every customer of the events is a billing customer (the first record builds the hourly
        # billing rollup), one in ten has a wallet; the page shows 50 customers with their live draft
        from meterline.billing import service as svc
        from meterline.billing import store as billing_store

        t0 = time.monotonic()
        billing_store.add_customers(writer, [f"cust-{i:04d}" for i in range(1000)])
        for i in range(0, 1000, 10):
            svc.grant(writer, f"cust-{i:04d}", "10")
        print(f"  billing set up (1,000 customers, rollup built) in {time.monotonic() - t0:.1f}s")
        period = f"{today:%Y-%m}"
        pages: list[tuple[str, str, str | None]] = [
            ("overview, last 30 days", "/", f"/v1/usage?{rng}&bucket=day"),
            ("overview, today (hour buckets)", "/?range=1d", None),
            ("explorer: by model", "/explore?group1=model", f"/v1/usage?{rng}&group_by=model"),
            ("explorer: by customer", "/explore?group1=subscriber_id", f"/v1/usage?{rng}&group_by=subscriber_id"),
            (
                "explorer: model x customer",
                "/explore?group1=model&group2=subscriber_id",
                f"/v1/usage?{rng}&group_by=model,subscriber_id",
            ),
            ("explorer: model x day, Europe/Paris", "/explore?group1=model&bucket=day&tz=Europe/Paris", None),
            ("explorer CSV: by customer", "/explore.csv?group1=subscriber_id", None),
            ("requests, newest page", "/requests", "/v1/events?limit=50"),
            ("requests, 20 days back (keyset)", "/requests?before=" + _cursor_days_ago(20), None),
            ("requests, errors of one customer", "/requests?status=error&subscriber_id=cust-0001", None),
            ("event detail", f"/requests/{event_id}", None),
            ("traces, newest page", "/traces", None),
            ("trace detail", f"/traces/{trace_id}", f"/v1/traces/{trace_id}"),
            ("budgets (5)", "/budgets", "/v1/budgets/status"),
            ("keys", "/keys", "/v1/keys"),
            ("billing (50 of 1,000 customers, live drafts)", "/billing", None),
            (
                "billing: printable preview",
                f"/billing/preview?customer=cust-0001&period={period}",
                f"/v1/invoices/preview?customer=cust-0001&period={period}",
            ),
            ("customer share link", f"/share/{share}", None),
        ]
        for title, path, api_path in pages:
            server = _median_ms(c, path, runs, {}, timing=True)
            base = _median_ms(c, api_path, runs, hdr, timing=False) if api_path else None
            results.append((title, server, api_path or "", base))
    return results


def _cursor_days_ago(days: int) -> str:
    from meterline.core.timeutil import to_micros
    from meterline.store.listings import _cursor

    return _cursor(to_micros(datetime.now(timezone.utc) - timedelta(days=days)), "~")  # the API refuses an empty id


def _median_ms(c: Any, path: str, runs: int, headers: dict[str, str], *, timing: bool) -> float:
    c.get(path, headers=headers)  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        r = c.get(path, headers=headers)
        wall = (time.perf_counter() - t0) * 1000
        if r.status_code != 200:
            raise SystemExit(f"{path}: {r.status_code} {r.text[:300]}")
        st = r.headers.get("server-timing", "")
        m = re.search(r"dur=([\d.]+)", st) if timing else None
        times.append(float(m.group(1)) if m else wall)
    return statistics.median(times)


def report(name: str, rows: list[tuple[str, float, str, float | None]]) -> None:
    print(f"\n{name}: median server time per page (ms); baseline: the JSON API call for the same data")
    print("| page | server ms | JSON API (baseline) | API ms | < 300 ms |\n|---|---:|---|---:|---|")
    for title, ms, api_path, base in rows:
        api_name = api_path.split("?")[0] if api_path else ""
        print(f"| {title} | {ms:,.1f} | {api_name} | {'' if base is None else f'{base:,.1f}'} | "
              f"{'met' if ms < 300 else '**missed**'} |")  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--skip-postgres", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the SQLite file for the next run")
    args = ap.parse_args()
    now = datetime.now(timezone.utc)
    path = Path(tempfile.gettempdir()) / f"meterline-bench-dashboard-{args.events}-{now:%Y%m%d}.db"
    print(f"SQLite ({path})")
    fill(f"sqlite:///{path}", args.events, now)
    report("SQLite", measure(f"sqlite:///{path}", args.runs))
    if not args.keep:
        for p in path.parent.glob(path.name + "*"):
            p.unlink()
    if args.skip_postgres:
        return 0
    try:
        import psycopg

        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except Exception as exc:  # noqa: BLE001 - no server: report and stop
        print(f"\nPostgreSQL skipped: {exc}")
        return 0
    name = f"meterline_bench_dash_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    try:
        print(f"\nPostgreSQL ({name})")
        fill(url, args.events, now)
        report("PostgreSQL", measure(url, args.runs))
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
