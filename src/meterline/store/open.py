"""Open the store behind a destination for reading (CLI report/export/doctor, … list commands).

Reading never creates a schema: a database without meterline's tables is a clear error, not a fresh set of
tables in somebody else's database. ``meterline migrate`` and the writers create them.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Protocol, TypeVar

from meterline.core.config import DestinationError, destination_kind, resolve_destination, sqlite_path
from meterline.store.base import Store
from meterline.store.base import UsageReader as UsageReader  # its home is store.base; importable here as before

if TYPE_CHECKING:
    from meterline.store.postgres import PostgresStore
    from meterline.store.remote import CollectorClient


class _Checkable(Protocol):
    def has_schema(self) -> bool: ...

    def close(self) -> None: ...


S = TypeVar("S", bound=_Checkable)


def open_store(destination: str | None = None, *, api_key: str | None = None) -> Store | CollectorClient:
    """SQLiteStore, PostgresStore or (for http destinations) a CollectorClient, by destination; never creates
    tables. Raises DestinationError (one line) for a missing file, an unreachable server or no schema."""
    dest = resolve_destination(destination)
    kind = destination_kind(dest)
    if kind == "sqlite":
        from meterline.store.sqlite import SQLiteStore

        path = sqlite_path(dest)
        if not path.exists():
            raise DestinationError(f"no meterline database at {path} (record some calls or run `meterline demo`)")
        return require_schema(SQLiteStore(path, create=False), dest)
    if kind == "postgresql":
        return require_schema(open_postgres(dest, create=False, pool_size=2), dest)
    if kind == "clickhouse":
        from meterline.store.clickhouse import ClickHouseError, ClickHouseStore

        try:
            return ClickHouseStore(dest)
        except ClickHouseError as exc:
            raise DestinationError(str(exc)) from None
    from meterline.store.remote import CollectorClient  # standard library only

    return CollectorClient(dest, api_key or os.environ.get("METERLINE_API_KEY"))


def open_postgres(dest: str, *, create: bool, pool_size: int) -> PostgresStore:
    """A PostgresStore; a refused connection, an unknown host or database is one DestinationError line."""
    try:
        from meterline.store.postgres import PostgresStore
    except ImportError as exc:
        raise DestinationError(f"{redact(dest)}: needs pip install 'meterline[postgres]' ({exc})") from None
    import psycopg

    try:
        return PostgresStore(dest, pool_size=pool_size, create=create)
    except psycopg.OperationalError as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise DestinationError(f"cannot connect to PostgreSQL at {redact(dest)}: {detail}") from None


def require_schema(store: S, dest: str) -> S:
    if not store.has_schema():
        store.close()
        raise DestinationError(
            f"{redact(dest)} has no meterline tables (nothing recorded there yet); "
            f"`meterline migrate --database {redact(dest)}` creates them, and so does the first write"
        )
    return store


def redact(dest: str) -> str:
    """The destination without a password (``postgresql://user:***@host/db``)."""
    scheme, sep, rest = dest.partition("://")
    creds, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in creds:
        return dest
    return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
