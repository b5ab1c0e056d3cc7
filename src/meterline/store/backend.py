"""Open the collector's stores for a destination: one writer and one reader.

SQLite: two connections to one WAL file. The writer's lock makes it the single writer of the server
process (SQLite allows one writer at a time); readers do not wait for writes in WAL mode.
PostgreSQL: one pooled store serves both (many writers are fine: inserts are ON CONFLICT DO NOTHING).
ClickHouse: one store serves both (events in ClickHouse, keys/budgets in its metadata SQL database).
"""

from __future__ import annotations

from typing import Any

from meterline.config import destination_kind, sqlite_path


def open_stores(destination: str, *, pool_size: int = 8) -> tuple[Any, Any]:
    """(writer, reader) for ``destination``, tables created when missing. Close both (once if same)."""
    kind = destination_kind(destination)
    if kind == "clickhouse":
        from meterline.store.clickhouse import ClickHouseStore

        ch = ClickHouseStore(destination)
        return ch, ch
    if kind == "postgresql":
        from meterline.store.postgres import PostgresStore

        store = PostgresStore(destination, pool_size=pool_size)
        return store, store
    from meterline.store.sqlite import SQLiteStore

    path = sqlite_path(destination)
    writer = SQLiteStore(path)
    return writer, SQLiteStore(path)
