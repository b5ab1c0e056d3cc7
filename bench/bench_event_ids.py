"""Cost of the PostgreSQL event-id dedup table (``event_ids``) on ingest: the store's insert against the
insert of before (``INSERT … ON CONFLICT DO NOTHING`` on ``events`` alone), same batches, same run, rounds
alternated so both see the same machine load. Each round writes fresh ids into a database that already
holds ``--stored`` events (so the dedup index is not empty), plus one re-sent batch (all duplicates).

    PYTHONPATH=src python bench/bench_event_ids.py [--events 50000] [--batch 500] [--stored 200000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import psycopg

from meterline.core.event import UsageEvent
from meterline.store import partitions
from meterline.store import rollup as rollups
from meterline.store.postgres import _STAGE, PostgresStore
from meterline.store.schema import COLUMN_NAMES, TABLE, event_to_row

PG_ADMIN = os.environ.get("METERLINE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
BASE = datetime(2026, 10, 1, tzinfo=timezone.utc)


class OldStore(PostgresStore):
    """The insert before event_ids: ON CONFLICT on (id, start_time) of the partitioned table only."""

    def insert(self, events: Sequence[UsageEvent]) -> int:
        rows = [event_to_row(e, native_bool=True) for e in events]
        cols = ", ".join(COLUMN_NAMES)
        with self._pool.connection() as conn, conn.transaction():
            cur = conn.cursor()
            partitions.ensure(conn, {partitions.month_of(e.start_time) for e in events} - self._months)
            self._months |= {partitions.month_of(e.start_time) for e in events}
            if conn not in self._staged:
                cur.execute(
                    f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (LIKE {TABLE} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
                )
                self._staged.add(conn)
            with cur.copy(f"COPY {_STAGE} ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cur.execute(
                f"WITH ins AS (INSERT INTO {TABLE} ({cols}) SELECT {cols} FROM {_STAGE} "
                f"ON CONFLICT DO NOTHING RETURNING *), "
                f"up AS ({rollups.upsert_sql('ins', self.dialect)}) SELECT COUNT(*) FROM ins"
            )
            counted = cur.fetchone()
        return int(counted[0]) if counted else 0


def events(n: int) -> list[UsageEvent]:
    return [
        UsageEvent(
            id=str(uuid.uuid4()), start_time=BASE + timedelta(seconds=(i * 2654435761) % (30 * 86400)),
            provider="openai", model="gpt-4o-mini", input_tokens=100 + i % 900, output_tokens=10 + i % 90,
            input_cost=Decimal("0.0001"), output_cost=Decimal("0.0002"), total_cost=Decimal("0.0003"),
            subscriber_id=f"cust-{i % 1000:04d}", integration="litellm",
        )
        for i in range(n)
    ]  # fmt: skip


def run(store: PostgresStore, evs: list[UsageEvent], batch: int) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(evs), batch):
        store.insert(evs[i : i + batch])
    assert store.insert(evs[:batch]) == 0  # a re-sent batch: all duplicates
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--stored", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    admin = psycopg.connect(PG_ADMIN, autocommit=True)
    base = PG_ADMIN.rsplit("/", 1)[0]
    names = {"old": f"bench_evids_old_{os.getpid()}", "new": f"bench_evids_new_{os.getpid()}"}
    stores: dict[str, PostgresStore] = {}
    try:
        for kind, name in names.items():
            admin.execute(f'CREATE DATABASE "{name}"')
            stores[kind] = (OldStore if kind == "old" else PostgresStore)(f"{base}/{name}")
        pre = events(args.stored)
        for store in stores.values():
            run(store, pre, 2000)
            store.analyze()
        times: dict[str, list[float]] = {"old": [], "new": []}
        for r in range(args.rounds):
            evs = events(args.events)
            for kind in ("old", "new") if r % 2 == 0 else ("new", "old"):
                times[kind].append(run(stores[kind], evs, args.batch))
        for kind in ("old", "new"):
            best = min(times[kind])
            rounds = [round(t, 2) for t in times[kind]]
            print(f"{kind}: best {best:.2f} s = {args.events / best:,.0f} events/s  rounds {rounds}")
        print(f"new/old time ratio (best of {args.rounds}): {min(times['new']) / min(times['old']):.2f}")
    finally:
        for store in stores.values():
            store.close()
        for name in names.values():
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
