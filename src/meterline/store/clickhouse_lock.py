"""The ClickHouse store's insert lock: one collector at a time looks an id up and inserts it when new.

``ClickHouseStore.insert`` inserts only the ids it does not find in ``events``, so that the rollups (fed by
materialized views, which count every inserted row) count each event once. Two collectors that receive the same
re-sent event at the same instant could both look, both find nothing, and both insert: ``events FINAL`` counts it
once, the rollups twice. ClickHouse has no transaction that spans a read and an insert, so the look-up and the
insert run under a lock of the SQL metadata database the collectors already share:

- PostgreSQL: a lock per id, from the primary key of an unlogged table (``CLAIMS``). The holder's transaction
  inserts a row per id of its batch (in id order: no deadlock), looks up, inserts into ClickHouse, deletes its
  rows and commits. Another transaction inserting one of those ids waits on the uncommitted row until then, and
  its look-up then finds the event. Batches without a common id never wait for each other (unlike advisory locks
  per hash bucket, which a batch of a few hundred ids would all take), and a row lock takes no room in
  PostgreSQL's shared lock table. ``lock_timeout`` bounds the wait.
- SQLite: its single writer. ``BEGIN IMMEDIATE`` on a connection of this lock's own (readers of the metadata
  database, API key look-ups among them, are not held up: WAL), bounded by ``busy_timeout``.

No claim outlives its transaction, so nothing can be left behind: the lock is released by ``COMMIT`` (after the
rows were deleted), by ``ROLLBACK`` when the insert fails (the re-send then inserts the events), and by the
database itself when the holder's process dies (its connection ends, its transaction is rolled back). Captured
content of the new events is written in the same metadata transaction, before the insert: rolled back with it
when the insert fails.

Limits: the collectors must share the metadata database (``?meta=postgresql://…`` for collectors on several
hosts); on a replicated ClickHouse cluster, a look-up on one replica sees another replica's insert only once it
is replicated (not covered by this lock; untested here).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING

from meterline.store.sql import Tx

if TYPE_CHECKING:
    from meterline.store.postgres import PostgresStore
    from meterline.store.sqlite import SQLiteStore

CLAIMS = "clickhouse_insert_claims"  # PostgreSQL metadata database: rows of ids being inserted (none committed)


class LockUnavailable(RuntimeError):
    """The metadata database could not give (or release) the insert lock: retry the whole batch later."""


class InsertLock:
    def __init__(self, meta: SQLiteStore | PostgresStore, timeout_s: float = 30.0) -> None:
        self.meta = meta
        self.timeout_s = timeout_s
        self._conn: sqlite3.Connection | None = None  # SQLite: this lock's own connection
        self._guard = threading.Lock()  # one holder per object at a time (the SQLite connection is shared)
        self._claims_table = False  # PostgreSQL: CLAIMS exists

    @contextmanager
    def hold(self, ids: Iterable[str]) -> Iterator[Tx]:
        """Hold the lock for ``ids`` (a batch's event ids); yields a transaction of the metadata database that
        commits when the block ends and rolls back when it raises."""
        with self._guard:
            if self.meta.dialect.name == "postgresql":
                with self._postgres(sorted(set(ids))) as tx:
                    yield tx
            else:
                with self._sqlite() as tx:
                    yield tx

    @contextmanager
    def _postgres(self, ids: list[str]) -> Iterator[Tx]:
        from meterline.store.postgres import PostgresStore

        assert isinstance(self.meta, PostgresStore)
        with self.meta.connection() as conn:
            try:
                if not self._claims_table:
                    try:
                        conn.execute(f"CREATE UNLOGGED TABLE IF NOT EXISTS {CLAIMS} (id TEXT PRIMARY KEY)")
                    except Exception:  # another collector created it at the same instant
                        if not conn.execute("SELECT to_regclass(%s) IS NOT NULL", (CLAIMS,)).fetchall()[0][0]:
                            raise
                    self._claims_table = True
                conn.execute("BEGIN")
                conn.execute(f"SET LOCAL lock_timeout = '{int(self.timeout_s * 1000)}ms'")
                # waits on the ids another transaction holds; ON CONFLICT: a row left by hand never blocks forever
                conn.execute(f"INSERT INTO {CLAIMS} (id) SELECT unnest(%s::text[]) ON CONFLICT (id) DO NOTHING", (ids,))
            except Exception as exc:  # noqa: BLE001 - any failure here means: no lock, retry the batch
                # the pool closes this connection (an exception leaves it): the server ends the transaction
                raise LockUnavailable(f"the metadata database gave no insert lock: {exc}") from None
            try:
                yield Tx(self.meta, conn.cursor())
                conn.execute(f"DELETE FROM {CLAIMS} WHERE id = ANY(%s::text[])", (ids,))
            except BaseException:
                with suppress(Exception):  # a connection that died ended its transaction itself
                    conn.execute("ROLLBACK")
                raise
            try:
                conn.execute("COMMIT")
            except Exception as exc:  # noqa: BLE001
                raise LockUnavailable(f"the metadata database did not commit: {exc}") from None

    @contextmanager
    def _sqlite(self) -> Iterator[Tx]:
        from meterline.store.sqlite import SQLiteStore

        assert isinstance(self.meta, SQLiteStore)
        if str(self.meta.path) == ":memory:":  # one process only: the store's own transaction is the lock
            with self.meta.transaction() as tx:
                yield tx
            return
        if self._conn is None:
            self._conn = sqlite3.connect(
                str(self.meta.path), timeout=self.timeout_s, check_same_thread=False, isolation_level=None
            )
            self._conn.execute(f"PRAGMA busy_timeout={int(self.timeout_s * 1000)}")
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise LockUnavailable(f"the metadata database gave no insert lock: {exc}") from None
        try:
            yield Tx(self.meta, conn.cursor())
        except BaseException:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise LockUnavailable(f"the metadata database did not commit: {exc}") from None

    def close(self) -> None:
        with self._guard:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
