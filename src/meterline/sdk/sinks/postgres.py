"""PostgreSQL sink: batches from the recorder into ``events`` with COPY + ON CONFLICT DO NOTHING."""

from __future__ import annotations

import os
import queue
from collections.abc import Sequence

import psycopg

from meterline.core.event import UsageEvent
from meterline.sdk.sinks.base import ABANDONED_IN_CHILD, SinkError
from meterline.store.postgres import PostgresStore, connection_url


class PostgresSink:
    def __init__(self, url: str) -> None:
        self.url = connection_url(url)
        self._store: PostgresStore | None = None

    @property
    def description(self) -> str:
        # never print a password
        return psycopg.conninfo.make_conninfo(self.url, password=None) if "@" in self.url else self.url

    @property
    def store(self) -> PostgresStore:
        # Connected on first write, on the recorder's thread: init() stays free of I/O.
        if self._store is None:
            try:
                self._store = PostgresStore(self.url, pool_size=2)
            except psycopg.Error as exc:
                raise SinkError(f"cannot open {self.description}: {exc}") from exc
        return self._store

    def write(self, events: Sequence[UsageEvent]) -> int:
        try:
            self.store.insert(events)
        except psycopg.OperationalError as exc:  # server down, connection lost, timeout: may pass
            raise SinkError(str(exc), retryable=True) from exc
        except psycopg.Error as exc:
            # SQLSTATE class 22 (data exception: NUL byte, out of range) and 23 (constraint): the batch's content
            state = getattr(exc, "sqlstate", None) or ""
            data = isinstance(exc, (psycopg.DataError, psycopg.IntegrityError)) or state[:2] in ("22", "23")
            raise SinkError(str(exc), retryable=False, data_fault=data) from exc
        except (ValueError, OverflowError, TypeError) as exc:  # a lone surrogate, an int over 64 bits: the data
            raise SinkError(f"{type(exc).__name__}: {exc}", retryable=False, data_fault=True) from exc
        return 0

    def after_fork_in_child(self) -> None:
        """The parent's pooled connections share their sockets with this child: never use nor close them
        here (libpq's goodbye would end the parent's session). Their socket descriptors are pointed at
        /dev/null, so even a finaliser talks to nobody; the child connects afresh on its first write."""
        store, self._store = self._store, None
        if store is None:
            return
        ABANDONED_IN_CHILD.append(store)
        idle = store._pool._idle
        devnull = os.open(os.devnull, os.O_RDWR)
        try:
            while True:
                try:
                    conn = idle.get_nowait()
                except queue.Empty:
                    break
                ABANDONED_IN_CHILD.append(conn)
                try:
                    os.dup2(devnull, conn.pgconn.socket)
                except (OSError, psycopg.Error):
                    pass
        finally:
            os.close(devnull)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
