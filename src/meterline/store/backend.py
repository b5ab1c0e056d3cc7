"""Open the collector's stores for a destination: one writer and one reader.

SQLite: two connections to one WAL file. The writer's lock makes it the single writer of the server
process (SQLite allows one writer at a time); readers do not wait for writes in WAL mode.
PostgreSQL: one pooled store serves both (many writers are fine: inserts are ON CONFLICT DO NOTHING).
ClickHouse: one store serves both (events in ClickHouse, keys/budgets in its metadata SQL database).
"""

from __future__ import annotations

from meterline.core.config import DestinationError, destination_kind, sqlite_path
from meterline.store.base import Store


def open_stores(destination: str, *, pool_size: int = 8, create: bool = True) -> tuple[Store, Store]:
    """(writer, reader) for ``destination``, tables created when missing (with ``create=False``: a read-only
    command, which never creates them: no schema is a DestinationError). Close both (once if same)."""
    from meterline.store.open import open_postgres, require_schema

    kind = destination_kind(destination)
    if kind == "clickhouse":
        from meterline.store.clickhouse import ClickHouseStore

        ch = ClickHouseStore(destination)
        return ch, ch
    if kind == "postgresql":
        store = open_postgres(destination, create=create, pool_size=pool_size)
        if not create:
            require_schema(store, destination)
        return store, store
    from meterline.store.sqlite import SQLiteStore

    path = sqlite_path(destination)
    if not create:
        if not path.exists():
            raise DestinationError(f"no meterline database at {path} (record some calls or run `meterline demo`)")
        reader = require_schema(SQLiteStore(path, create=False), destination)
        return reader, reader
    writer = SQLiteStore(path)
    return writer, SQLiteStore(path)
