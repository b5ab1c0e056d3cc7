"""The embedded SQLite store (standard library ``sqlite3``): WAL mode, batched idempotent inserts.

One connection per store object guarded by a lock; the recorder's single worker thread is the only
writer in a process, and ``busy_timeout`` lets several processes share one file.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from meterline.core.event import UsageEvent
from meterline.store import billing_rollup
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


class SQLiteStore(SQLReads):
    dialect = queries.SQLITE
    keeps_billing_rollup = True  # billing_usage_hourly, kept by a trigger (store.billing_rollup)
    meta_apart = False  # keys, budgets, billing… are tables next to the events

    def __init__(self, path: str | Path, *, timeout_s: float = 30.0, create: bool = True) -> None:
        self.path = Path(path).expanduser()
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            str(self.path) if str(path) != ":memory:" else ":memory:",
            timeout=timeout_s,
            check_same_thread=False,
            isolation_level=None,  # explicit BEGIN/COMMIT
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
        self._conn.execute("PRAGMA temp_store=MEMORY")
        if create:  # readers (report, export, doctor, … list) never create a schema
            self.migrate()

    def has_schema(self) -> bool:
        """True when meterline's tables are here (``migrate`` or a writer created them)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meterline_meta'"
            ).fetchall()
        return bool(rows)

    def migrate(self) -> None:
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                for stmt in [*create_statements("sqlite"), *extra_statements("sqlite")]:
                    cur.execute(stmt)
                cur.execute("CREATE TABLE IF NOT EXISTS meterline_meta (key TEXT PRIMARY KEY, value TEXT)")
                cur.execute(
                    "INSERT OR IGNORE INTO meterline_meta (key, value) VALUES ('schema_revision', ?)",
                    (str(SCHEMA_REVISION),),
                )
                try:
                    cur.execute(rollups.SPLIT_PROBE)
                except sqlite3.OperationalError:  # no rollup yet, or one whose cost sums could overflow
                    for stmt in rollups.upgrade_split_statements():
                        cur.execute(stmt)
                for stmt in rollups.create_statements("sqlite"):
                    cur.execute(stmt)
                if not cur.execute(rollups.READY_SQL).fetchall():  # a file from before rollups: build it once
                    for stmt in rollups.rebuild_statements(self.dialect):
                        cur.execute(stmt)
                if cur.execute(
                    billing_rollup.OLD_SHAPE_SQL
                ).fetchall():  # a billing rollup whose cost sums could overflow
                    dim = cur.execute(billing_rollup.DIM_SQL).fetchall()
                    for stmt in billing_rollup.upgrade_split_statements(str(dim[0][0]) if dim else None):
                        cur.execute(stmt)
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise

    # -- writes ---------------------------------------------------------------------------------
    def insert(self, events: Sequence[UsageEvent]) -> int:
        """Insert events, ignoring ids already stored. Returns how many were new.

        New rows get rowids above the table's largest (SQLite assigns max(rowid) + 1), so exactly the
        rows this call added are added to the daily rollup, in the same transaction."""
        if not events:
            return 0
        rows = [event_to_row(e) for e in events]
        cols = ", ".join(COLUMN_NAMES)
        sql = f"INSERT OR IGNORE INTO {TABLE} ({cols}) VALUES ({', '.join('?' * len(COLUMN_NAMES))})"
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                last = conn.execute(f"SELECT COALESCE(MAX(rowid), 0) FROM {TABLE}").fetchone()[0]
                # rowcount: rows this INSERT added (changes made by triggers on events are not counted)
                new = conn.executemany(sql, rows).rowcount
                if new:
                    conn.execute(rollups.upsert_sql(f"(SELECT * FROM {TABLE} WHERE rowid > {int(last)})", self.dialect))
                content = content_rows(events)
                if content:  # captured content goes to its own table, same transaction
                    conn.executemany(content_insert_sql("sqlite"), content)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return new

    def insert_each(self, events: Sequence[UsageEvent]) -> tuple[int, list[tuple[int, str]]]:
        """Store every event the database can hold, however bad its batch-mates: (how many were new,
        [(position in ``events``, why it was refused)]). A refused batch is bisected (store.isolate).
        Raises only when the store itself fails (locked, disk I/O: sqlite3.OperationalError)."""
        return insert_isolating(self.insert, events, lambda exc: isinstance(exc, sqlite3.OperationalError))

    # -- generic access for per-area modules (API keys, budgets): SQL with ? placeholders -------
    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement in its own transaction; the number of rows it changed."""
        with self._lock:
            return self._conn.execute(sql, params).rowcount

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._fetch(sql, params)[1]

    def ping(self) -> None:
        """Raise when the database cannot be read (readiness probe)."""
        self._fetch(f"SELECT 1 FROM {TABLE} LIMIT 1", ())

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """One transaction on the store's single connection, under its lock."""
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield Tx(self, conn.cursor())
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    # -- reads ----------------------------------------------------------------------------------
    def _fetch(self, sql: str, params: Sequence[Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
        with self._lock:
            cur = self._conn.execute(sql, params)
            cols = [d[0] for d in cur.description]
            return cols, cur.fetchall()

    def close(self) -> None:
        with self._lock:
            self._conn.close()
