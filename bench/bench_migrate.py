"""``meterline migrate --to`` on a large store: N events loaded server-side into a fresh PostgreSQL database
(``bench/_bulk.py``), copied into the embedded ClickHouse engine and verified day by day.

    PYTHONPATH=src python bench/bench_migrate.py [--events 1000000] [--batch-size 20000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from _bulk import postgres_fill  # noqa: E402
from meterline.store.backend import open_stores  # noqa: E402

PG_ADMIN = os.environ.get("METERLINE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--batch-size", type=int, default=20_000)
    args = ap.parse_args()
    import psycopg

    admin = psycopg.connect(PG_ADMIN, autocommit=True)
    name = f"meterline_mig_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    try:
        pg, _ = open_stores(url, pool_size=2)
        t0 = time.perf_counter()
        postgres_fill(pg, args.events)
        pg.close()
        load_s = time.perf_counter() - t0
        target = f"chdb://{tempfile.mkdtemp(prefix='meterline-mig-')}?database=meter"
        t0 = time.perf_counter()
        run = subprocess.run(
            [sys.executable, "-m", "meterline", "migrate", "--database", url, "--to", target,
             "--batch-size", str(args.batch_size)],
            env={**os.environ, "PYTHONPATH": str(HERE.parent / "src")}, capture_output=True, text=True,
        )  # fmt: skip
        copy_s = time.perf_counter() - t0
        print(run.stdout.strip().splitlines()[-2:] if run.stdout else run.stderr[-2000:])
        print("| events | PostgreSQL load (server-side) | migrate --to chdb, incl. verify | events/s | verified |")
        print("|---:|---:|---:|---:|---|")
        ok = run.returncode == 0 and "verified:" in run.stdout
        rate = args.events / copy_s
        print(f"| {args.events:,} | {load_s:.0f} s | {copy_s:.0f} s | {rate:,.0f} | {'yes' if ok else 'NO'} |")
        return 0 if ok else 1
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


if __name__ == "__main__":
    raise SystemExit(main())
