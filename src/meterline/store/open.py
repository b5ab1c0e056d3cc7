"""Open the store behind a destination for reading (CLI report/export, the collector)."""

from __future__ import annotations

import os
from typing import Any, Protocol

from meterline.config import DestinationError, destination_kind, resolve_destination, sqlite_path
from meterline.store.query import UsageQuery


class UsageReader(Protocol):
    def usage(self, q: UsageQuery) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


def open_store(destination: str | None = None, *, api_key: str | None = None) -> Any:
    """SQLiteStore, PostgresStore or (for http destinations) a CollectorClient, by destination."""
    dest = resolve_destination(destination)
    kind = destination_kind(dest)
    if kind == "sqlite":
        from meterline.store.sqlite import SQLiteStore

        path = sqlite_path(dest)
        if not path.exists():
            raise DestinationError(f"no meterline database at {path} (record some calls or run `meterline demo`)")
        return SQLiteStore(path)
    if kind == "postgresql":
        try:
            from meterline.store.postgres import PostgresStore
        except ImportError as exc:
            raise DestinationError(f"{dest}: needs pip install 'meterline[postgres]' ({exc})") from None
        return PostgresStore(dest)
    from meterline.store.remote import CollectorClient  # standard library only

    return CollectorClient(dest, api_key or os.environ.get("METERLINE_API_KEY"))
