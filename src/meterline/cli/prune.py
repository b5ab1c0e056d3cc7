"""``meterline prune``: retention for events and captured content (SQLite, PostgreSQL and ClickHouse)."""

from __future__ import annotations

import argparse
import re
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

from meterline.cli import add_destination_argument
from meterline.core.config import DestinationError, destination_kind, resolve_destination

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_age(text: str, *, now: datetime | None = None, option: str = "--older-than") -> datetime:
    """``400d``, ``12h``, ``6w``, ``90m`` (an age) or ``2026-01-01`` (a UTC date): the cutoff time."""
    now = now or datetime.now(timezone.utc)
    t = text.strip()
    m = re.fullmatch(r"(\d+)\s*([smhdw])", t)
    if m:
        return now - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    try:
        dt = datetime.fromisoformat(t)
    except ValueError:
        raise ValueError(
            f"{option}: {text!r} is neither an age like 400d, 12h, 6w nor a date like 2026-01-01"
        ) from None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "prune",
        help="delete old events and captured content (retention)",
        description="Delete events older than --older-than and captured content older than "
        "--content-older-than. On PostgreSQL, monthly partitions entirely before the cutoff are dropped. "
        "Daily rollups are kept, so usage totals and invoices of pruned periods stay exact.",
    )
    add_destination_argument(p)
    p.add_argument("--older-than", metavar="AGE", help="events that started before now - AGE (e.g. 400d) or a date")
    p.add_argument("--content-older-than", metavar="AGE", help="captured content older than AGE (e.g. 30d) or a date")
    p.add_argument("--dry-run", action="store_true", help="only count what would be deleted")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if not args.older_than and not args.content_older_than:
        print("meterline: error: give --older-than and/or --content-older-than", file=sys.stderr)
        return 2
    try:
        events_before = parse_age(args.older_than) if args.older_than else None
        content_before = (
            parse_age(args.content_older_than, option="--content-older-than") if args.content_older_than else None
        )
        dest = resolve_destination(args.destination)
        if destination_kind(dest) == "http":
            raise DestinationError(f"prune runs on the database itself (sqlite, postgresql, clickhouse), not {dest!r}")
    except (ValueError, DestinationError) as exc:
        print(f"meterline: error: {exc}", file=sys.stderr)
        return 2
    from meterline.store.backend import open_stores
    from meterline.store.retention import prune

    writer, reader = open_stores(dest, pool_size=2)
    try:
        result = prune(writer, events_before=events_before, content_before=content_before, dry_run=args.dry_run)
    finally:
        writer.close()
        if reader is not writer:
            reader.close()
    verb = "would delete" if args.dry_run else "deleted"
    parts = []
    if events_before is not None:
        parts.append(f"{verb} {result.events} events started before {events_before:%Y-%m-%d %H:%M} UTC")
    parts.append(f"{verb} {result.content} captured content rows")
    if result.dropped_partitions:
        parts.append(f"dropped partitions {', '.join(result.dropped_partitions)}")
    print("; ".join(parts))
    return 0
