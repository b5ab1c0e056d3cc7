"""The typed store: what code above ``store/`` may call on an event store, as :class:`typing.Protocol` classes.

Domain code (billing, budgets, export), the collector, the CLI and the gateway take the narrowest of these
that fits what they call; ``SQLiteStore``, ``PostgresStore`` and ``ClickHouseStore`` satisfy :class:`Store`
(mypy checks it where they are passed), the collector client (``store.remote.CollectorClient``) satisfies
:class:`EventReader`.

Dialect differences stay behind the store: a store opens its own transaction (:meth:`TransactionalStore.transaction`;
on the ClickHouse store, one of its SQL metadata database) and says what it keeps (``keeps_billing_rollup``,
``meta_apart``), so no module above ``store/`` tests which engine it is on. SQL text still goes through
``store.sql.sql(store.dialect, …)`` for the placeholders.

- ``SQLStore``: ``dialect``, ``execute``, ``fetch`` (keys, budgets, the export ledger's rows).
- ``TransactionalStore``: ``SQLStore`` + ``transaction()`` (billing writes, invoice numbers).
- ``UsageReader``: ``usage``, ``close`` (reports); ``EventReader``: + ``events``, ``iter_events``, ``trace``,
  ``count`` (exports, copies: a store or a collector client).
- ``EventSQL``: ``SQLStore`` + ``read_dialect``, ``read`` (listings); ``ReportStore``: ``EventSQL`` + ``UsageReader``
  (the dashboard's figures, a budget's spend through the rollup).
- ``BillingStore``: ``TransactionalStore`` + ``read_dialect``, ``keeps_billing_rollup`` (billing).
- ``LedgerStore``: ``SQLStore`` + ``meta_apart`` (the export ledger).
- ``Store``: all of them + ``insert``, ``insert_each``, ``ping`` (collector, CLI, gateway).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from meterline.core.event import UsageEvent
from meterline.store.query import Dialect, UsageQuery
from meterline.store.sql import Tx


class SQLStore(Protocol):
    """Generic SQL with ``?`` placeholders made the dialect's (``store.sql.sql``): what the per-area modules use
    (API keys, budgets, the export ledger, the billing tables). On the ClickHouse store, ``dialect`` is its
    metadata database's, and a statement that reads ``events`` goes to ClickHouse."""

    @property
    def dialect(self) -> Dialect: ...

    def execute(self, sql: str, params: Sequence[Any] = ...) -> int:
        """Run one statement in its own transaction; the number of rows it changed."""
        ...

    def fetch(self, sql: str, params: Sequence[Any] = ...) -> list[tuple[Any, ...]]: ...


class TransactionalStore(SQLStore, Protocol):
    def transaction(self) -> AbstractContextManager[Tx]:
        """One transaction (SQLite: the store's single connection under its lock; PostgreSQL: a pooled
        connection; ClickHouse store: a transaction of its SQL metadata database, whose statements never read
        ``events``)."""
        ...


class UsageReader(Protocol):
    def usage(self, q: UsageQuery) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


class EventReader(UsageReader, Protocol):
    """The read API every event source shares: the stores and the collector client."""

    def events(
        self,
        *,
        filters: Mapping[str, str | Sequence[str]] | None = ...,
        start: datetime | None = ...,
        end: datetime | None = ...,
        cursor: str | None = ...,
        limit: int = ...,
    ) -> tuple[list[UsageEvent], str | None]: ...

    def iter_events(
        self,
        *,
        filters: Mapping[str, str | Sequence[str]] | None = ...,
        start: datetime | None = ...,
        end: datetime | None = ...,
        page_size: int = ...,
    ) -> Iterator[UsageEvent]: ...

    def trace(self, trace_id: str) -> list[UsageEvent]: ...

    def count(self) -> int: ...


class EventSQL(SQLStore, Protocol):
    """SQL on the events in their own database and dialect (the dashboard's listings)."""

    @property
    def read_dialect(self) -> Dialect:
        """The dialect of event reads (ClickHouse's store keeps ``dialect`` for its metadata SQL)."""
        ...

    def read(self, sql: str, params: Sequence[Any] = ...) -> tuple[list[str], list[tuple[Any, ...]]]:
        """(column names, rows) of one query in ``read_dialect``, on the events' database."""
        ...


class ReportStore(EventSQL, UsageReader, Protocol):
    """Usage reports and event listings (the dashboard's figures, a budget's spend through the rollup)."""


class BillingStore(TransactionalStore, Protocol):
    @property
    def read_dialect(self) -> Dialect: ...

    @property
    def keeps_billing_rollup(self) -> bool:
        """True when the store keeps the hourly billing usage (``billing_usage_hourly``) next to its events, fed by
        a trigger. False on the ClickHouse store: billing sums ``events FINAL``, so once events are pruned their
        usage cannot be billed again (``store.retention.pruned_before``)."""
        ...


class LedgerStore(SQLStore, Protocol):
    @property
    def meta_apart(self) -> bool:
        """True when the per-area tables (keys, budgets, billing, export ledger) live in another database than
        the events (the ClickHouse store): no SQL statement may join them."""
        ...


class Store(BillingStore, LedgerStore, ReportStore, EventReader, Protocol):
    """An event store (SQLite, PostgreSQL, ClickHouse): everything the collector, the CLI and the gateway call."""

    def insert(self, events: Sequence[UsageEvent]) -> int:
        """Insert events, ignoring ids already stored; how many were new."""
        ...

    def insert_each(self, events: Sequence[UsageEvent]) -> tuple[int, list[tuple[int, str]]]:
        """Store every event the database can hold: (how many were new, [(position, why it was refused)])."""
        ...

    def ping(self) -> None:
        """Raise when the database cannot be read (readiness probe)."""
        ...


if TYPE_CHECKING:  # mypy holds every store to its protocol here, whatever the call sites pass
    from meterline.store.clickhouse import ClickHouseStore
    from meterline.store.postgres import PostgresStore
    from meterline.store.remote import CollectorClient
    from meterline.store.sqlite import SQLiteStore

    def _conforms(
        sqlite: SQLiteStore, postgres: PostgresStore, clickhouse: ClickHouseStore, client: CollectorClient
    ) -> tuple[Store, Store, Store, EventReader]:
        return sqlite, postgres, clickhouse, client
