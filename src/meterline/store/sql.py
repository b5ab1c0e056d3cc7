"""SQL helpers every SQL store and every domain store module share: the dialect's placeholders and one
transaction on any store (SQLite, PostgreSQL, or the ClickHouse store's SQL metadata database)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard

from meterline.store.query import Dialect

if TYPE_CHECKING:
    from meterline.store.base import SQLStore, TransactionalStore
    from meterline.store.clickhouse import ClickHouseStore


def sql(dialect: Dialect, text: str) -> str:
    """``?`` placeholders in ``text`` → the dialect's placeholder."""
    return text if dialect.placeholder == "?" else text.replace("?", dialect.placeholder)


# ----------------------------------------------------------------------------------
class Cursor(Protocol):
    """A DB-API cursor (``sqlite3.Cursor``, ``psycopg.Cursor``), as far as :class:`Tx` uses it."""

    @property
    def description(self) -> object: ...

    def execute(self, sql: str, params: Sequence[Any], /) -> object: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]], /) -> object: ...

    def fetchall(self) -> list[Any]: ...


class Tx:
    """Statements in one transaction (``store.transaction()``), ``?`` placeholders made the dialect's."""

    def __init__(self, store: SQLStore, cur: Cursor) -> None:
        self.store, self.cur = store, cur

    def run(self, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self.cur.execute(sql(self.store.dialect, text), params)
        return list(self.cur.fetchall()) if self.cur.description else []

    def many(self, text: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.cur.executemany(sql(self.store.dialect, text), rows)


def on_clickhouse(store: object) -> TypeGuard[ClickHouseStore]:
    """True for the ClickHouse store (for store/ modules only: code above it asks the store what it keeps)."""
    return getattr(getattr(store, "read_dialect", None), "name", None) == "clickhouse"


def transaction(store: TransactionalStore) -> AbstractContextManager[Tx]:
    """One transaction on any store: ``store.transaction()`` (SQLite: the store's single connection under its
    lock; PostgreSQL: a pooled connection; the ClickHouse store: a transaction of its metadata database, since
    ClickHouse itself has none; statements run in it never read ``events``)."""
    return store.transaction()
