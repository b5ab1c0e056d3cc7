"""``meterline migrate``: bring the database schema to the newest revision (Alembic, no alembic.ini), or
copy every event into another store (``--to clickhouse://…``), resumably, and verify the copy."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from meterline.cli import add_destination_argument
from meterline.cli._common import fail
from meterline.core.config import DestinationError


def register(sub: Any) -> None:
    p = sub.add_parser(
        "migrate",
        help="create or upgrade the database schema, or copy events to ClickHouse (--to)",
        description="Create or upgrade the tables of a SQLite or PostgreSQL meterline database. "
        "Run it before starting new collector versions on PostgreSQL; safe to run again. "
        "With --to DEST, copy every event of --database into DEST (e.g. clickhouse://host:8123/meter or "
        "chdb:///dir), resuming where an interrupted copy stopped, then verify per-day counts and cost sums.",
    )
    add_destination_argument(p)
    p.add_argument("--revision", default="head", help="target revision (default head)")
    p.add_argument("--show", action="store_true", help="only print the current and newest revisions")
    p.add_argument("--to", metavar="DEST", help="copy events into this store (ClickHouse, PostgreSQL or SQLite)")
    p.add_argument("--batch-size", type=int, default=10_000, help="events per page when copying (default 10000)")
    p.add_argument("--restart", action="store_true", help="copy from the beginning, not from the saved position")
    p.add_argument("--verify-only", action="store_true", help="with --to: only compare the two stores")
    p.add_argument(
        "--rebuild-rollup", action="store_true", help="ClickHouse: recompute the daily rollup from the events"
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.to or args.rebuild_rollup:
        return _copy(args)
    try:
        from meterline.store import migrate
    except ImportError as exc:
        print(f"meterline: error: migrations need pip install 'meterline[server]' ({exc})", file=sys.stderr)
        return 2
    try:
        if not args.show:
            migrate.upgrade(args.destination, args.revision)
            if args.revision == "head":  # also the tables other parts register (budgets, …): what writers create
                from meterline.core.config import resolve_destination
                from meterline.store.backend import open_stores

                writer, reader = open_stores(resolve_destination(args.destination), pool_size=1)
                writer.close()
                if reader is not writer:
                    reader.close()
        print(f"current revision: {migrate.current(args.destination)} (newest: {migrate.head()})")
    except (DestinationError, ValueError) as exc:
        return fail(exc)
    return 0


def _copy(args: argparse.Namespace) -> int:
    from meterline.core.config import resolve_destination
    from meterline.store.backend import open_stores
    from meterline.store.open import open_store
    from meterline.store.transfer import copy_events, verify

    if args.batch_size < 1:
        return fail(ValueError("--batch-size: must be at least 1"))
    source_dest = resolve_destination(args.destination)
    try:
        if args.rebuild_rollup and not args.to:
            store = open_store(source_dest)
            try:
                if not hasattr(store, "rebuild_rollup"):
                    return fail(ValueError("--rebuild-rollup: only ClickHouse stores keep a materialized rollup"))
                store.rebuild_rollup()
                print("rollup rebuilt from events")
                return 0
            finally:
                store.close()
        source = open_store(source_dest)
        target, target_reader = open_stores(args.to, pool_size=2)
    except Exception as exc:  # noqa: BLE001 - one line naming the problem, not a traceback
        return fail(exc if isinstance(exc, (DestinationError, ValueError)) else DestinationError(str(exc)))
    try:
        if not args.verify_only:
            t0 = time.monotonic()
            last = [0.0]

            def progress(n: int) -> None:
                if time.monotonic() - last[0] >= 2:
                    last[0] = time.monotonic()
                    print(f"  copied {n:,} events ({n / max(last[0] - t0, 1e-9):,.0f}/s)", flush=True)

            res = copy_events(
                source, target, source_description=source_dest, page_size=args.batch_size, restart=args.restart,
                progress=progress,
            )  # fmt: skip
            how = "resumed, " if res.resumed else ""
            print(f"copied {res.copied:,} events ({how}{res.new:,} new) in {time.monotonic() - t0:.1f} s")
        days, diffs = verify(source, target_reader)
        if diffs:
            for d in diffs[:20]:
                print(f"MISMATCH {d.day:%Y-%m-%d} {d.metric}: source {d.source} target {d.target}", file=sys.stderr)
            print(f"verify: {len(diffs)} differences over {days} days", file=sys.stderr)
            return 1
        print(f"verified: {days} days, every count, token and cost sum equal")
        return 0
    finally:
        source.close()
        target.close()
        if target_reader is not target:
            target_reader.close()
