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


def destination_label(dest: str) -> str:
    """The destination without credentials (password, API key in the query, user info): safe to print and
    to hash. SQLite files are made absolute so two spellings of one file are one destination."""
    import urllib.parse

    kind = destination_kind(dest)
    if kind == "sqlite":
        return f"sqlite:///{sqlite_path(dest).resolve()}"
    url = urllib.parse.urlsplit(dest)
    host = url.hostname or ""
    if url.port:
        host = f"{host}:{url.port}"
    user = f"{url.username}@" if kind == "postgresql" and url.username else ""
    scheme = "postgresql" if kind == "postgresql" else url.scheme.lower()
    return f"{scheme}://{user}{host}{url.path.rstrip('/')}"


def destination_key(dest: str) -> str:
    """A directory name for one destination's local state (spool, durable log, dead letters): the kind and a
    hash of :func:`destination_label`, so no credential ever appears in a path and a password change keeps
    the same spool."""
    import hashlib

    label = destination_label(dest)
    return f"{destination_kind(dest)}-{hashlib.sha256(label.encode()).hexdigest()[:16]}"


def legacy_spool_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """Where the first release spooled, before one spool per destination: its spool files lay directly in
    ``init(spool_dir=...)``, or in ``spool`` in the user data dir. The SDK adopts what it finds there (see
    :meth:`meterline.sdk.delivery.spool.Spool.adopt`)."""
    return Path(root) if root else data_dir() / "spool"


def delivery_state_dir(dest: str, root: str | os.PathLike[str] | None = None) -> Path:
    """Where the SDK keeps one destination's spool, durable log and dead letters: ``<root>/<destination key>``,
    root defaulting to ``delivery`` in the user data dir (``init(spool_dir=...)`` moves it)."""
    return (Path(root) if root else data_dir() / "delivery") / destination_key(dest)
