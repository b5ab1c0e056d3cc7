"""Where events go, found the same way by the SDK and every CLI command.

Order: an explicit ``destination`` (``--database`` / ``--destination`` on the CLI), else
``METERLINE_DESTINATION``, else the SQLite file ``meterline.db`` in the platform's user data directory
(``~/.local/share/meterline`` on Linux; ``METERLINE_HOME`` moves that directory).

Destinations: ``sqlite:///relative.db``, ``sqlite:////absolute.db`` or a plain file path;
``postgresql://user@host/db``; ``http(s)://collector`` (with ``api_key``).
"""

from __future__ import annotations

import os
from pathlib import Path


class DestinationError(ValueError):
    pass


def data_dir() -> Path:
    home = os.environ.get("METERLINE_HOME")
    if home:
        return Path(home).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("meterline", appauthor=False))


def default_destination() -> str:
    return f"sqlite:///{data_dir() / 'meterline.db'}"


def resolve_destination(explicit: str | None = None) -> str:
    dest = explicit or os.environ.get("METERLINE_DESTINATION") or default_destination()
    return dest.strip()


def destination_kind(dest: str) -> str:
    """``sqlite`` | ``postgresql`` | ``http`` | ``clickhouse``; raises DestinationError naming what is wrong."""
    lower = dest.lower()
    if lower.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        return "postgresql"
    if lower.startswith(("http://", "https://")):
        return "http"
    if lower.startswith(("clickhouse://", "clickhouses://", "chdb://")):
        return "clickhouse"
    if lower.startswith("sqlite://"):
        return "sqlite"
    if "://" in dest:
        scheme = dest.split("://", 1)[0]
        raise DestinationError(
            f"destination {dest!r}: unknown scheme {scheme!r}; use sqlite:///file.db, postgresql://…, "
            "clickhouse://…, chdb:///dir or http(s)://…"
        )
    return "sqlite"


def sqlite_path(dest: str) -> Path:
    """``sqlite:///rel.db`` -> rel.db, ``sqlite:////abs.db`` -> /abs.db, a plain path as it is."""
    if dest.lower().startswith("sqlite://"):
        rest = dest[len("sqlite://") :]
        if not rest.startswith("/"):
            raise DestinationError(f"destination {dest!r}: write sqlite:///path/to/file.db")
        rest = rest[1:]
        if not rest:
            raise DestinationError(f"destination {dest!r}: no file name")
        return Path(rest).expanduser()
    return Path(dest).expanduser()


def env_flag(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")
