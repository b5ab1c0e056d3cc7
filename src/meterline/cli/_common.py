"""Argument helpers shared by the report and export commands."""

from __future__ import annotations

import argparse
import re
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

from meterline.core.config import DestinationError
from meterline.store.query import QueryError

_SINCE = re.compile(r"^(\d+)([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(text: str, name: str) -> datetime:
    """ISO time/date, or a span back from now such as ``30m``, ``24h``, ``7d``, ``2w``."""
    m = _SINCE.match(text.strip())
    if m:
        return datetime.now(timezone.utc) - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(f"{name}: expected an ISO time (2026-01-31T00:00Z) or a span like 7d; got {text!r}") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def parse_filters(items: list[str] | None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise QueryError(f"--filter: expected dimension=value; got {item!r}")
        out.setdefault(key.strip(), []).extend(v.strip() for v in value.split(","))
    return out


def add_range_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", help="span back from now: 30m, 24h, 7d, 2w")
    p.add_argument("--start", help="ISO start time (inclusive)")
    p.add_argument("--end", help="ISO end time (exclusive)")
    p.add_argument(
        "--filter",
        action="append",
        metavar="DIM=VALUE",
        help="only events whose dimension equals the value (repeatable; comma for several values)",
    )


def range_from_args(args: argparse.Namespace) -> tuple[datetime | None, datetime | None]:
    start = parse_when(args.since, "--since") if args.since else None
    if args.start:
        start = parse_when(args.start, "--start")
    end = parse_when(args.end, "--end") if args.end else None
    return start, end


def fail(exc: Exception) -> int:
    """Print a user error (bad argument, missing database) without a traceback."""
    print(f"meterline: error: {exc}", file=sys.stderr)
    return 2


USER_ERRORS: tuple[type[Exception], ...] = (QueryError, DestinationError, FileNotFoundError)


def plain(value: Any) -> Any:
    from decimal import Decimal

    from meterline.core.event import format_cost

    if isinstance(value, Decimal):
        return format_cost(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value
