"""SQLite sink: the embedded default destination."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from meterline.core.event import UsageEvent
from meterline.sdk.sinks.base import ABANDONED_IN_CHILD, SinkError
from meterline.store.sqlite import SQLiteStore


class SQLiteSink:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self._store: SQLiteStore | None = None

    @property
    def description(self) -> str:
        return f"sqlite:///{self.path}"

    @property
    def store(self) -> SQLiteStore:
        # Opened on first write, on the recorder's thread: init() stays free of I/O.
        if self._store is None:
            try:
                self._store = SQLiteStore(self.path)
            except (sqlite3.Error, OSError) as exc:
                raise SinkError(f"cannot open {self.path}: {exc}") from exc
        return self._store

    def write(self, events: Sequence[UsageEvent]) -> int:
        try:
            self.store.insert(events)
        except sqlite3.OperationalError as exc:  # locked, disk full, I/O: may pass
            raise SinkError(str(exc), retryable=True) from exc
        except (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.InterfaceError, sqlite3.ProgrammingError) as exc:
            raise SinkError(str(exc), retryable=False, data_fault=True) from exc
        except sqlite3.Error as exc:  # not a database, corrupt file: the destination is at fault
            raise SinkError(str(exc), retryable=False) from exc
        except (ValueError, OverflowError, TypeError) as exc:  # a lone surrogate, an int over 64 bits: the data
            raise SinkError(f"{type(exc).__name__}: {exc}", retryable=False, data_fault=True) from exc
        return 0

    def after_fork_in_child(self) -> None:
        """SQLite connections must not cross a fork: the child opens its own on its first write."""
        if self._store is not None:
            ABANDONED_IN_CHILD.append(self._store)
            self._store = None

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
