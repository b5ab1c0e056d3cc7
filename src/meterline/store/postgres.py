"""The PostgreSQL store (psycopg 3): the production destination and the collector's shared database.

Writes: COPY the batch into a per-connection temporary table, then, in one statement, claim each id in
``event_ids(id PRIMARY KEY)`` (``INSERT … ON CONFLICT DO NOTHING RETURNING id``) and insert only the claimed
rows into ``events``. The events table is partitioned by month, so its key is ``(id, start_time)`` and cannot
by itself refuse a retry whose start_time differs (1 ms, or another month); the dedup table can, across every
partition, and concurrent writers of one id serialise on its primary key (first commit wins, the other counts
a duplicate). Chosen over a unique index (PostgreSQL has no global index on a partitioned table) and over
un-partitioning (retention drops whole partitions). One round trip of rows, idempotent on the event id, safe
with any number of writers (several collector replicas, SDK processes) on one database. Retention keeps the
``event_ids`` rows of pruned events (a late retry is still refused); see :mod:`meterline.store.event_ids`.
Reads: the same dialect-neutral SQL as
SQLite (``store/query.py``). Connections come from a small built-in pool (no psycopg_pool dependency).
"""

from __future__ import annotations

import queue
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

from meterline.core.event import UsageEvent
from meterline.store import event_ids, partitions
from meterline.store import query as queries
from meterline.store import rollup as rollups
from meterline.store.content import content_rows
from meterline.store.content import insert_sql as content_insert_sql
from meterline.store.extensions import extra_statements
from meterline.store.isolate import insert_isolating
from meterline.store.reads import SQLReads
from meterline.store.schema import COLUMN_NAMES, TABLE, create_statements, event_to_row
from meterline.store.sql import Tx

SCHEMA_REVISION = 1
_STAGE = "meterline_events_in"
_LOCK_KEY = 0x6D657465  # advisory lock taken while creating tables: replicas may start together


def _store_down(exc: BaseException) -> bool:
    """The database is unavailable (not one event refused): the batch is retried as a whole later."""
    return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))


def connection_url(url: str) -> str:
    """libpq form of a destination (``postgresql+psycopg://`` and ``postgres://`` accepted)."""
    for prefix in ("postgresql+psycopg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


class _Pool:
    def __init__(self, url: str, size: int, connect_timeout: float) -> None:
        self.url = url
        self.size = size
        self.connect_timeout = connect_timeout
        self._idle: queue.LifoQueue[psycopg.Connection[Any]] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)
        self._closed = False

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        if not self._slots.acquire(timeout=60):
            raise psycopg.OperationalError("no free PostgreSQL connection in 60 s")
        conn: psycopg.Connection[Any] | None = None
        try:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                conn = psycopg.connect(self.url, autocommit=True, connect_timeout=max(1, int(self.connect_timeout)))
            yield conn
        except BaseException:
            if conn is not None:  # the connection's state is unknown: do not hand it out again
                conn.close()
                conn = None
            raise
        finally:
            if conn is not None:
                if conn.closed or self._closed or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    conn.close()
                else:
                    self._idle.put(conn)
            self._slots.release()

    def close(self) -> None:
        self._closed = True
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


class PostgresStore(SQLReads):
    dialect = queries.POSTGRESQL
    keeps_billing_rollup = True  # billing_usage_hourly, kept by a statement trigger (store.billing_rollup)
    meta_apart = False  # keys, budgets, billing… are tables next to the events

    def __init__(self, url: str, *, pool_size: int = 8, connect_timeout: float = 10.0, create: bool = True) -> None:
        self.url = connection_url(url)
        self._pool = _Pool(self.url, pool_size, connect_timeout)
        self._staged: weakref.WeakSet[psycopg.Connection[Any]] = weakref.WeakSet()  # have the temp table
        self._partitioned: bool | None = None  # events partitioned by month (read on first insert)
        self._months: set[tuple[int, int]] = set()  # monthly partitions known to exist
        if create:
            self.migrate()
        self._rollup_ready = self._check_rollup()

    def migrate(self) -> None:
        """Create the tables and indexes that are missing (idempotent; replicas may race here)."""
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            for stmt in [*create_statements("postgresql"), *extra_statements("postgresql")]:
                conn.execute(stmt)
            event_ids.ensure(conn)  # a store of before: filled from its events, duplicates reported
            conn.execute("CREATE TABLE IF NOT EXISTS meterline_meta (key TEXT PRIMARY KEY, value TEXT)")
            conn.execute(
                "INSERT INTO meterline_meta (key, value) VALUES ('schema_revision', %s) ON CONFLICT DO NOTHING",
                (str(SCHEMA_REVISION),),
            )
            for stmt in rollups.create_statements("postgresql"):
                conn.execute(stmt)
            if not conn.execute(rollups.READY_SQL).fetchall():  # a database from before rollups: build it once
                for stmt in rollups.rebuild_statements(self.dialect):
                    conn.execute(stmt)

    def has_schema(self) -> bool:
        """True when meterline's tables are here (``migrate`` or a writer created them)."""
        return bool(self._fetch("SELECT to_regclass('meterline_meta') IS NOT NULL", ())[1][0][0])

    def _check_rollup(self) -> bool:
        """True when the daily rollup is complete (queries may use it)."""
        try:
            return bool(self._fetch(rollups.READY_SQL, ())[1])
        except psycopg.errors.UndefinedTable:
            return False

    # -- writes ---------------------------------------------------------------------------------
    def insert(self, events: Sequence[UsageEvent]) -> int:
        """Insert events, ignoring ids already stored. Returns how many were new."""
        if not events:
            return 0
        first = {e.id: e for e in reversed(events)}  # one row per id: the first in the batch wins
        rows = [event_to_row(e, native_bool=True) for e in events if first[e.id] is e]
        cols = ", ".join(COLUMN_NAMES)
        new_months: set[tuple[int, int]] = set()
        with self._pool.connection() as conn, conn.transaction():
            cur = conn.cursor()
            if self._partitioned is None:
                self._partitioned = partitions.is_partitioned(conn)
            if self._partitioned:  # the monthly partitions this batch needs (retention drops them whole)
                new_months = {partitions.month_of(e.start_time) for e in events} - self._months
                partitions.ensure(conn, new_months)
            if conn not in self._staged:
                cur.execute(
                    f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (LIKE {TABLE} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
                )
                self._staged.add(conn)
            with cur.copy(f"COPY {_STAGE} ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            # ids never seen before are claimed in event_ids (whatever their start_time: every partition);
            # only their rows reach events and go on to the daily rollup, in one statement
            cur.execute(
                f"WITH ids AS (INSERT INTO {event_ids.ID_TABLE} (id) SELECT id FROM {_STAGE} "
                f"ON CONFLICT DO NOTHING RETURNING id), "
                f"ins AS (INSERT INTO {TABLE} ({cols}) SELECT {cols} FROM {_STAGE} "
                f"WHERE {_STAGE}.id IN (SELECT ids.id FROM ids) ON CONFLICT DO NOTHING RETURNING *), "
                f"up AS ({rollups.upsert_sql('ins', self.dialect)}) SELECT COUNT(*) FROM ins"
            )
            counted = cur.fetchone()
            content = content_rows(events)
            if content:  # captured content goes to its own table, same transaction
                cur.executemany(content_insert_sql("postgresql"), content)
        self._months |= new_months
        return int(counted[0]) if counted else 0

    def insert_each(self, events: Sequence[UsageEvent]) -> tuple[int, list[tuple[int, str]]]:
        """Store every event the database can hold, however bad its batch-mates: (how many were new,
        [(position in ``events``, why it was refused)]). A refused batch is bisected (store.isolate).
        Raises only when the database itself fails (connection lost, shutdown)."""
        return insert_isolating(self.insert, events, _store_down)

    # -- generic access for per-area modules (API keys, budgets): SQL with %s placeholders -------
    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self._pool.connection() as conn:
            return conn.execute(sql, params).rowcount

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._fetch(sql, params)[1]

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled autocommit connection, for modules that need a transaction of their own."""
        with self._pool.connection() as conn:
            yield conn

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """One transaction on a pooled connection."""
        with self.connection() as conn, conn.transaction():
            yield Tx(self, conn.cursor())

    def ping(self) -> None:
        self._fetch("SELECT 1", ())

    def analyze(self) -> None:
        """Refresh the planner's statistics (after a bulk load; autovacuum does it otherwise)."""
        self.execute(f"ANALYZE {TABLE}")

    # -- reads ----------------------------------------------------------------------------------
    def _fetch(self, sql: str, params: Sequence[Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
        with self._pool.connection() as conn:
            cur = conn.execute(sql, params)
            cols = [d.name for d in cur.description or ()]
            return cols, cur.fetchall()

    def close(self) -> None:
        self._pool.close()
