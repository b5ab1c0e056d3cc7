"""The ClickHouse store: events and usage analytics in ClickHouse, metadata next to it in SQL.

Destinations: ``clickhouse://user:password@host:8123/database`` (HTTP), ``clickhouses://…`` (HTTPS), and
``chdb:///path/to/dir`` for the embedded engine (the ``chdb`` package: one data directory per process).
Both go through ``clickhouse-connect``, so the same client object serves a server and the embedded engine.

Events, the daily rollup and every usage/events/traces read live in ClickHouse. API keys, budgets and
alert claims (and any other area registered with ``store.extensions``) need transactions and unique
constraints that ClickHouse does not have, so they stay in a SQL *metadata* database: the ``meta=`` query
parameter (URL-encoded), else ``METERLINE_META_DATABASE``, else ``<dir>/meta.db`` for chdb and a SQLite file
``meterline-meta.db`` in the user data dir for a server. Several collectors on one ClickHouse must share a
PostgreSQL metadata database (``?meta=postgresql://…``).

``execute``/``fetch`` (the generic SQL that per-area modules use) go to ClickHouse when the statement reads
``events`` (e.g. a budget's spend) and to the metadata database otherwise, so those modules work unchanged.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from meterline.core.event import UsageEvent
from meterline.core.timeutil import to_micros
from meterline.store import clickhouse_hourly as ch_hourly
from meterline.store import clickhouse_ids as ch_ids
from meterline.store import clickhouse_schema as ch_schema
from meterline.store import query as queries
from meterline.store import rollup as rollups
from meterline.store.clickhouse_lock import InsertLock, LockUnavailable
from meterline.store.reads import SQLReads
from meterline.store.schema import COLUMN_NAMES, TABLE, event_to_row
from meterline.store.sql import Tx, sql

if TYPE_CHECKING:
    from meterline.store.postgres import PostgresStore
    from meterline.store.sqlite import SQLiteStore

# per-query settings: aliases must not shadow columns inside the same SELECT (``SUM(total_cost) AS
# total_cost`` would otherwise break ``CASE WHEN total_cost IS NULL``); FINAL may deduplicate each partition
# on its own (an event's month comes from its start time, part of the key: one id never spans two months),
# which makes FINAL about as cheap as no FINAL (251 -> 150 ms on 1M events, day x model in Europe/Paris)
QUERY_SETTINGS = {"prefer_column_name_to_alias": 1, "do_not_merge_across_partitions_select_final": 1}
logger = logging.getLogger("meterline")
_EVENTS_SQL = re.compile(r"\bevents\b", re.IGNORECASE)
_FROM_EVENTS = re.compile(r"\bFROM\s+events\b(?!\s+FINAL)", re.IGNORECASE)
_INT_DIV = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*) / (\d+)\b")
_HOURLY = "clickhouse_hourly_ready"  # metadata key: '1' once events_hourly holds every stored event
_ID_CHECK_CHUNK = 5000  # ids per look-up query (ClickHouse bounds the size of a query's text)


class ClickHouseError(RuntimeError):
    """The ClickHouse store cannot be opened or used; the message says why."""


def _store_down(exc: BaseException) -> bool:
    """ClickHouse itself is unavailable (not one event it refuses), or the metadata database gave no insert
    lock: the whole batch is retried later."""
    try:
        from clickhouse_connect.driver.exceptions import OperationalError
    except ImportError:
        return True
    return isinstance(exc, (OperationalError, ClickHouseError, ConnectionError, LockUnavailable))


def is_clickhouse(destination: str) -> bool:
    return destination.lower().startswith(("clickhouse://", "clickhouses://", "chdb://"))


def _split(destination: str) -> tuple[str, dict[str, str]]:
    """(destination without its query string, query parameters)."""
    base, _, query = destination.partition("?")
    params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    return base, params


def describe(destination: str) -> str:
    """The destination without password or query string, for logs and messages."""
    base, _ = _split(destination)
    parts = urlsplit(base)
    if parts.password:
        return base.replace(f":{parts.password}@", ":***@", 1)
    return base


def chdb_path(destination: str) -> Path:
    base, _ = _split(destination)
    rest = base[len("chdb://") :]
    if not rest.startswith("/") or rest == "/":
        raise ClickHouseError(f"destination {destination!r}: write chdb:///path/to/dir")
    return Path(rest[1:] if rest.startswith("//") else rest)


def _client(destination: str, database: str) -> Any:
    try:
        import clickhouse_connect
    except ImportError as exc:
        raise ClickHouseError(
            f"{describe(destination)}: needs pip install 'meterline[clickhouse]' (or '[chdb]' for chdb://) ({exc})"
        ) from None
    base, params = _split(destination)
    if base.lower().startswith("chdb://"):
        path = chdb_path(destination)
        path.mkdir(parents=True, exist_ok=True)
        try:
            admin = clickhouse_connect.get_client(dsn=f"chdb://{path}")
            admin.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
            return clickhouse_connect.get_client(dsn=f"chdb://{path}", database=database)
        except Exception as exc:  # noqa: BLE001 - chdb raises its own types; the message is what matters
            raise ClickHouseError(f"cannot open the embedded ClickHouse at {path}: {exc}") from None
    parts = urlsplit(base)
    secure = parts.scheme.lower() == "clickhouses"
    try:
        admin = clickhouse_connect.get_client(
            host=parts.hostname or "localhost",
            port=parts.port or (8443 if secure else 8123),
            username=unquote(parts.username or "default"),
            password=unquote(parts.password or ""),
            secure=secure,
            autogenerate_session_id=False,  # one client serves the collector's threads
            connect_timeout=int(params.get("connect_timeout", "10")),
        )
        admin.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
        return clickhouse_connect.get_client(
            host=parts.hostname or "localhost",
            port=parts.port or (8443 if secure else 8123),
            username=unquote(parts.username or "default"),
            password=unquote(parts.password or ""),
            secure=secure,
            database=database,
            autogenerate_session_id=False,
            compress=params.get("compress", "lz4"),
        )
    except Exception as exc:  # noqa: BLE001 - connection errors come in several types
        raise ClickHouseError(f"cannot connect to {describe(destination)}: {exc}") from None


def _database_name(destination: str) -> str:
    base, params = _split(destination)
    if base.lower().startswith("chdb://"):
        name = params.get("database", "meterline")
    else:
        name = urlsplit(base).path.strip("/") or params.get("database", "meterline")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,127}", name):
        raise ClickHouseError(f"destination {describe(destination)!r}: bad database name {name!r}")
    return name


def meta_destination(destination: str) -> str:
    """Where keys, budgets and the other transactional tables live, for this ClickHouse destination."""
    base, params = _split(destination)
    if params.get("meta"):
        return params["meta"]
    env = os.environ.get("METERLINE_META_DATABASE")
    if env:
        return env
    if base.lower().startswith("chdb://"):
        return f"sqlite:///{chdb_path(destination) / (_database_name(destination) + '-meta.db')}"
    from meterline.core.config import data_dir

    return f"sqlite:///{data_dir() / 'meterline-meta.db'}"


def _open_meta(destination: str) -> SQLiteStore | PostgresStore:
    from meterline.core.config import destination_kind, sqlite_path

    if destination_kind(destination) == "postgresql":
        from meterline.store.postgres import PostgresStore

        return PostgresStore(destination, pool_size=4)
    from meterline.store.sqlite import SQLiteStore

    return SQLiteStore(sqlite_path(destination))


class ClickHouseStore(SQLReads):
    """Events in ClickHouse (ReplacingMergeTree, monthly partitions, rollup by materialized view)."""

    hourly_reads = True  # usage reports the hourly rollup can answer come from it (False: scan; benchmarks)
    keeps_billing_rollup = False  # billing sums ``events FINAL`` (see billing.store._usage_rows)
    meta_apart = True  # keys, budgets, billing… live in the SQL metadata database, apart from the events
    # each batch's id look-up and insert run under a lock of the metadata database that every collector shares
    # (store.clickhouse_lock); False: this process's own lock only, as before (benchmarks and the race's test)
    serialise_inserts = True

    def __init__(
        self, destination: str, *, create: bool = True, meta: SQLiteStore | PostgresStore | None = None
    ) -> None:
        self.destination = destination
        self.database = _database_name(destination)
        _, params = _split(destination)
        self.async_insert = params.get("async_insert", "0") in ("1", "true")
        self.replicated = params.get("replicated", "0") in ("1", "true")
        self._client = _client(destination, self.database)
        self._lock = threading.Lock()  # one insert at a time per process: the id check and the insert go together
        self._meta = meta if meta is not None else _open_meta(meta_destination(destination))
        self._insert_lock = InsertLock(self._meta)
        # per-area SQL (keys, budgets…) is written for the metadata database's dialect
        self.dialect = self._meta.dialect
        self._hourly_ready = False  # events_hourly holds every stored event (see _fill_hourly)
        self._ids_ready = False  # event_ids holds every stored id (see clickhouse_ids): else look ids up in events
        if create:
            self.migrate()
        else:
            self._hourly_ready = self._hourly_state() == "1"
            self._ids_ready = ch_ids.is_ready(self)

    # -- schema ---------------------------------------------------------------------------------
    def migrate(self) -> None:
        for stmt in [*ch_schema.create_statements(self.replicated), *ch_schema.add_column_statements()]:
            self._client.command(stmt)
        for stmt in ch_hourly.create_statements(self.replicated):
            self._client.command(stmt)
        self._hourly_ready = self._fill_hourly()
        for stmt in ch_ids.create_statements(self.replicated):
            self._client.command(stmt)
        ch_ids.ensure(self)  # an upgraded store: event_ids filled from its events (once)
        self._ids_ready = True

    def _hourly_state(self) -> str | None:
        rows = self._meta.fetch(sql(self._meta.dialect, "SELECT value FROM meterline_meta WHERE key = ?"), (_HOURLY,))
        return str(rows[0][0]) if rows else None

    def _fill_hourly(self) -> bool:
        """Whether ``events_hourly`` may answer reports: marked ready in the metadata database, once filled.

        A new store is ready at once. A store with events from before the hourly rollup is filled from
        ``events FINAL`` by the one process that claims the fill (the marker's primary key decides); the others
        scan until they reopen. A replicated store with events is not filled here (every replica would insert
        the rows): ``meterline migrate --rebuild-rollup`` fills it once and marks it ready. Events inserted by
        other writers while a fill runs may be counted twice; the rebuild makes the rollup exact again."""
        state = self._hourly_state()
        if state is not None:
            return state == "1"
        empty = not self._fetch(f"SELECT 1 FROM {TABLE} LIMIT 1", ())[1]
        if self.replicated and not empty:
            logger.warning(
                "meterline: the hourly rollup of %s is empty; reports scan events until "
                "`meterline migrate --rebuild-rollup` fills it",
                describe(self.destination),
            )
            return False
        insert = sql(self._meta.dialect, "INSERT INTO meterline_meta (key, value) VALUES (?, ?)")
        try:
            self._meta.execute(insert, (_HOURLY, "1" if empty else "filling"))
        except Exception:  # noqa: BLE001 - another process claimed the fill (primary key): use what it did
            return self._hourly_state() == "1"
        if not empty:  # a store from before the hourly rollup: fill it from the events it holds
            self._client.command(f"INSERT INTO {ch_hourly.HOURLY} {ch_hourly.hourly_select(ch_schema.EVENTS_FINAL)}")
            self._mark_hourly_ready()
        return True

    def _mark_hourly_ready(self) -> None:
        self._meta.execute(sql(self._meta.dialect, "DELETE FROM meterline_meta WHERE key = ?"), (_HOURLY,))
        self._meta.execute(
            sql(self._meta.dialect, "INSERT INTO meterline_meta (key, value) VALUES (?, ?)"), (_HOURLY, "1")
        )

    # -- writes ---------------------------------------------------------------------------------
    def insert(self, events: Sequence[UsageEvent]) -> int:
        """Insert the events whose ids are not stored yet; how many were new.

        An event id is the idempotency key, whatever else a retry changes (its ``start_time`` too): the ids of
        the batch are looked up first in ``event_ids`` (every stored id, keyed by id, filled by a materialized
        view: ``store.clickhouse_ids`` says why there), only new ones are inserted (the first of an id within
        the batch), so the first write wins and the materialized rollups count each event once. The look-up
        and the insert run under a lock of the metadata database (``store.clickhouse_lock``), so collectors
        racing on one re-sent event never both insert it; captured content is written in that lock's
        transaction, before the insert."""
        if not events:
            return 0
        unique: dict[str, UsageEvent] = {}
        for e in events:
            unique.setdefault(e.id, e)
        rows = [event_to_row(e) for e in unique.values()]
        with self._lock, self._locked([r[0] for r in rows]) as tx:
            seen: set[str] = set()
            # events itself until event_ids is filled (a store opened with create=False): exact, slower
            table = ch_ids.ID_TABLE if self._ids_ready else TABLE
            for i in range(0, len(rows), _ID_CHECK_CHUNK):
                chunk = tuple(r[0] for r in rows[i : i + _ID_CHECK_CHUNK])
                stored = self._client.query(f"SELECT id FROM {table} WHERE id IN %s", parameters=[chunk]).result_rows
                seen.update(r[0] for r in stored)
            fresh = [r for r in rows if r[0] not in seen]
            if fresh:
                new_ids = {r[0] for r in fresh}
                self._insert_content([e for e in unique.values() if e.id in new_ids], tx)
                settings = {"async_insert": 1, "wait_for_async_insert": 1} if self.async_insert else None
                self._client.insert(TABLE, fresh, column_names=list(COLUMN_NAMES), settings=settings)
            return len(fresh)

    def _locked(self, ids: list[str]) -> AbstractContextManager[Tx | None]:
        """The insert lock of the metadata database for ``ids`` (a transaction there), or nothing when
        ``serialise_inserts`` is off."""
        return self._insert_lock.hold(ids) if self.serialise_inserts else nullcontext()

    def insert_each(self, events: Sequence[UsageEvent]) -> tuple[int, list[tuple[int, str]]]:
        """Store every event ClickHouse can hold, however bad its batch-mates (see ``store.isolate``):
        (how many were new, [(position, why it was refused)]). Raises only when ClickHouse is unreachable."""
        from meterline.store.isolate import insert_isolating

        return insert_isolating(self.insert, events, _store_down)

    def _insert_content(self, events: Sequence[UsageEvent], tx: Tx | None) -> None:
        """Captured content goes to the metadata database's ``event_content`` (rare: capture is opt-in), in the
        insert lock's transaction when there is one."""
        from meterline.store.content import content_rows
        from meterline.store.content import insert_sql as content_insert_sql

        rows = content_rows(events)
        if tx is not None:
            tx.many(content_insert_sql(self._meta.dialect.name), rows)
            return
        for row in rows:
            self._meta.execute(content_insert_sql(self._meta.dialect.name), row)

    # -- reads ----------------------------------------------------------------------------------
    def _fetch(self, sql: str, params: Sequence[Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
        result = self._client.query(sql, parameters=list(params) or None, settings=QUERY_SETTINGS)
        return list(result.column_names), [tuple(r) for r in result.result_rows]

    def usage(self, q: queries.UsageQuery) -> list[dict[str, Any]]:
        """As the SQL stores; reports the daily rollup cannot answer come from the hourly rollup when it can
        (``clickhouse_hourly``), else from a scan of ``events``."""
        q.validate()
        use_hourly = self.hourly_reads and self._hourly_ready
        if use_hourly and rollups.usable(q) is None and ch_hourly.usable(q):  # the daily rollup answers the rest
            sql, params, plan = ch_hourly.usage_sql(q)
            cols, rows = self._fetch(sql, params)
            return queries.shape_usage_rows(q, cols, rows, plan) if rows else []
        return super().usage(q)

    @property
    def read_dialect(self) -> queries.Dialect:
        return queries.CLICKHOUSE  # events are read in ClickHouse's SQL; ``dialect`` serves the metadata database

    # -- generic SQL for per-area modules -------------------------------------------------------
    def _to_clickhouse(self, sql: str) -> str:
        """Per-area SQL written for SQLite/PostgreSQL, made ClickHouse's: placeholders, FINAL, and integer
        division (``col / 1000000`` in the split cost sums is float division in ClickHouse)."""
        if self.dialect.placeholder == "?":
            sql = sql.replace("%", "%%").replace("?", "%s")
        sql = _INT_DIV.sub(r"intDiv(\1, \2)", sql)
        return _FROM_EVENTS.sub(f"FROM {ch_schema.EVENTS_FINAL}", sql)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        if _EVENTS_SQL.search(sql):
            self._client.command(self._to_clickhouse(sql), parameters=list(params) or None)
            return 0
        return int(self._meta.execute(sql, params))

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if _EVENTS_SQL.search(sql):
            return self._fetch(self._to_clickhouse(sql), params)[1]
        return list(self._meta.fetch(sql, params))

    def fetch_clickhouse(
        self, sql: str, params: Sequence[Any] = (), settings: dict[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        """Rows of a query in ClickHouse's own SQL (``%s`` placeholders), for maintenance and tests; ``settings``
        add to the store's query settings."""
        if not settings:
            return self._fetch(sql, params)[1]
        result = self._client.query(sql, parameters=list(params) or None, settings={**QUERY_SETTINGS, **settings})
        return [tuple(r) for r in result.result_rows]

    def command_clickhouse(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run one statement in ClickHouse's own SQL (bulk loads, maintenance)."""
        self._client.command(sql, parameters=list(params) or None)

    def insert_clickhouse(self, table: str, rows: Sequence[Sequence[Any]], column_names: Sequence[str]) -> None:
        """Insert rows into a ClickHouse table as they are (maintenance: re-pricing stages its rows with it)."""
        self._client.insert(table, [list(r) for r in rows], column_names=list(column_names))

    @property
    def meta(self) -> SQLiteStore | PostgresStore:
        """The SQL metadata database (keys, budgets, billing, export ledger), for modules that need a
        transaction of their own there."""
        return self._meta

    def transaction(self) -> AbstractContextManager[Tx]:
        """A transaction of the metadata database (ClickHouse itself has none): its statements never read
        ``events``."""
        return self._meta.transaction()

    def ping(self) -> None:
        self._fetch("SELECT 1", ())
        self._meta.ping()

    # -- maintenance ----------------------------------------------------------------------------
    def rebuild_rollup(self) -> None:
        """Recompute the daily and hourly rollups from ``events FINAL`` (exact again after a re-price or an hourly
        fill that a process did not finish)."""
        with self._lock:
            for stmt in [*ch_schema.rebuild_rollup_statements(), *ch_hourly.rebuild_statements(ch_schema.EVENTS_FINAL)]:
                self._client.command(stmt)
            self._mark_hourly_ready()
            self._hourly_ready = True

    def prune_events(self, before: datetime) -> int:
        """Delete events that started before ``before``: whole months by dropping partitions, the rest of the
        cut-off month with a lightweight DELETE. Returns the events removed. The daily rollup is kept, as on
        the SQL stores (``store.retention``): totals of pruned periods stay exact. The hourly rollup loses the pruned
        hours, so that hour-grained reports answer what the SQL stores' scans answer. ``event_ids`` keeps the pruned
        ids (as on PostgreSQL): a late retry of one is a duplicate, not billed again."""
        cut = to_micros(before)
        with self._lock:
            removed = int(
                self._fetch(f"SELECT count() FROM {ch_schema.EVENTS_FINAL} WHERE start_time < %s", [cut])[1][0][0]
            )
            month = int(self._fetch("SELECT toYYYYMM(fromUnixTimestamp64Micro(%s, 'UTC'))", [cut])[1][0][0])
            parts = self._fetch(
                "SELECT DISTINCT partition FROM system.parts WHERE database = %s AND table = %s AND active",
                [self.database, TABLE],
            )[1]
            for (partition,) in parts:
                if int(partition) < month:
                    for table in (TABLE, ch_hourly.HOURLY):
                        self._client.command(f"ALTER TABLE {table} DROP PARTITION {int(partition)}")
            self._client.command(f"DELETE FROM {TABLE} WHERE start_time < %s", parameters=[cut])
            for stmt, params in ch_hourly.prune_statements(cut, ch_schema.EVENTS_FINAL):
                self._client.command(stmt, parameters=params)
        return removed

    def optimize(self) -> None:
        """Merge parts now (dedups re-sent events physically; tests and benchmarks use it)."""
        self._client.command(f"OPTIMIZE TABLE {TABLE} FINAL")

    def close(self) -> None:
        try:
            self._client.close()
        finally:
            self._insert_lock.close()
            self._meta.close()
