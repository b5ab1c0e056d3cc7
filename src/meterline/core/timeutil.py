"""Time conversions every layer shares: the stored form of a time (integer microseconds since the epoch,
UTC) and the one way an IANA time-zone name is parsed (query, dashboard, billing)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def to_micros(dt: datetime) -> int:
    delta = dt.astimezone(timezone.utc) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def parse_zone(name: object) -> ZoneInfo | None:
    """The IANA time zone ``name``, or None when there is none. Besides ZoneInfo's own errors, a name too long
    for the file system makes the ``tzdata`` package's loader raise OSError (a 500 before this check)."""
    if not isinstance(name, str) or not name or len(name) > 255:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None
