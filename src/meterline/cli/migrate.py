"""``meterline migrate``: bring the database schema to the newest revision (Alembic, no alembic.ini)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from meterline.cli import add_destination_argument
from meterline.cli._common import fail
from meterline.config import DestinationError


def register(sub: Any) -> None:
    p = sub.add_parser(
        "migrate",
        help="create or upgrade the database schema",
        description="Create or upgrade the tables of a SQLite or PostgreSQL meterline database. "
        "Run it before starting new collector versions on PostgreSQL; safe to run again.",
    )
    add_destination_argument(p)
    p.add_argument("--revision", default="head", help="target revision (default head)")
    p.add_argument("--show", action="store_true", help="only print the current and newest revisions")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        from meterline.store import migrate
    except ImportError as exc:
        print(f"meterline: error: migrations need pip install 'meterline[server]' ({exc})", file=sys.stderr)
        return 2
    try:
        if not args.show:
            migrate.upgrade(args.destination, args.revision)
            if args.revision == "head":  # also the tables other parts register (budgets, …): what writers create
                from meterline.config import resolve_destination
                from meterline.store.backend import open_stores

                writer, reader = open_stores(resolve_destination(args.destination), pool_size=1)
                writer.close()
                if reader is not writer:
                    reader.close()
        print(f"current revision: {migrate.current(args.destination)} (newest: {migrate.head()})")
    except (DestinationError, ValueError) as exc:
        return fail(exc)
    return 0
