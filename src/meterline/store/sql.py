"""SQL helpers every SQL store and every domain store module share: the dialect's placeholders and one
transaction on any store (SQLite, PostgreSQL, or the ClickHouse store's SQL metadata database)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from meterline.store.query import Dialect


def sql(dialect: Dialect, text: str) -> str:
    """``?`` placeholders in ``text`` → the dialect's placeholder."""
    return text if dialect.placeholder == "?" else text.replace("?", dialect.placeholder)


# ----------------------------------------------------------------------------------
class Tx:
    def __init__(self, store: Any, cur: Any) -> None:
        self.store, self.cur = store, cur

    def run(self, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self.cur.execute(sql(self.store.dialect, text), params)
        return list(self.cur.fetchall()) if self.cur.description else []

    def many(self, text: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.cur.executemany(sql(self.store.dialect, text), rows)


def on_clickhouse(store: Any) -> bool:
    """True for the ClickHouse store: events in ClickHouse, billing tables in its metadata database."""
    return getattr(getattr(store, "read_dialect", None), "name", None) == "clickhouse"


@contextmanager
def transaction(store: Any) -> Iterator[Tx]:
    """One transaction on either store (SQLite: the store's single connection under its lock). On the
    ClickHouse store, a transaction of its metadata database (ClickHouse itself has none); statements
    run in it never read ``events``."""
    if on_clickhouse(store):
        with transaction(store.meta) as tx:
            yield tx
    elif store.dialect.name == "sqlite":
        with store._lock:
            conn = store._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield Tx(store, conn.cursor())
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
    else:
        with store.connection() as conn, conn.transaction():
            yield Tx(store, conn.cursor())
