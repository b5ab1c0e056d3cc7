"""Is the store unavailable (retry later), or did something else go wrong (a bug)? One answer per engine.

The collector answers 503 with ``Retry-After`` for the first and keeps 500 for the second
(``server/errors.py``). What counts as "unavailable":

- PostgreSQL (psycopg 3): ``InterfaceError`` (the connection is closed); ``OperationalError`` raised by the
  client itself, without a SQLSTATE (server down or unreachable, connection lost mid-query, connect timeout,
  no free connection in the pool: ``psycopg_pool.PoolTimeout`` is one too); and server errors of the SQLSTATE
  classes 08 (connection exception), 40 (deadlock, serialization failure: transient), 53 (insufficient
  resources: disk full, out of memory, too many connections), 57 (operator intervention: shutdown, cannot
  connect now, statement canceled), 58 (system I/O error), and 55P03 (lock not available). Not: 54 (program
  limit exceeded: the request is too big, a bug to fix), nor any other class (syntax, undefined table, bad
  data...).
- SQLite: ``sqlite3.OperationalError`` for a busy or locked database (``database is locked`` once the busy
  timeout has passed), a disk I/O error, a full disk, or a file that cannot be opened. Not: ``no such
  table``, ``too many SQL variables``... (bugs).
- ClickHouse (clickhouse-connect): its ``OperationalError`` (server unreachable, connection reset, HTTP
  503 after retries). The embedded engine (chdb) runs in the process: it is never "down".
"""

from __future__ import annotations

import importlib.util
import sqlite3

from meterline.core.config import destination_kind

# PostgreSQL SQLSTATE classes (first two characters) and codes that mean "the database cannot serve now"
_PG_CLASSES = frozenset({"08", "40", "53", "57", "58"})
_PG_CODES = frozenset({"55P03"})
# SQLite primary result codes: BUSY, LOCKED, IOERR, FULL, CANTOPEN, PROTOCOL
_SQLITE_CODES = frozenset({5, 6, 10, 13, 14, 15})
_SQLITE_MESSAGES = ("locked", "busy", "disk i/o error", "disk is full", "unable to open database file")


def unavailable(exc: BaseException) -> bool:
    """True when ``exc`` says the store cannot serve now (a retry later can succeed)."""
    if isinstance(exc, sqlite3.OperationalError):
        code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
        if isinstance(code, int):
            return (code & 0xFF) in _SQLITE_CODES
        text = str(exc).lower()
        return any(m in text for m in _SQLITE_MESSAGES)
    module = type(exc).__module__
    if module.startswith(("psycopg", "psycopg_pool")):
        return _postgres_unavailable(exc)
    if module.startswith("clickhouse_connect"):
        from clickhouse_connect.driver.exceptions import OperationalError as ClickHouseOperational

        return isinstance(exc, ClickHouseOperational)
    return False


def _postgres_unavailable(exc: BaseException) -> bool:
    import psycopg

    if isinstance(exc, psycopg.InterfaceError):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    return state is None or state[:2] in _PG_CLASSES or state in _PG_CODES


def error_types(destination: str) -> tuple[type[Exception], ...]:
    """The exception classes a store for ``destination`` raises when it may be unavailable (a handler for
    them asks :func:`unavailable` which ones are). Only the drivers the destination uses are imported; a
    ClickHouse destination keeps its metadata in SQLite or PostgreSQL, so those count too."""
    kind = destination_kind(destination)
    types: list[type[Exception]] = [sqlite3.OperationalError]
    if kind in ("postgresql", "clickhouse") and importlib.util.find_spec("psycopg") is not None:
        import psycopg

        types += [psycopg.OperationalError, psycopg.InterfaceError]
    if kind == "clickhouse" and importlib.util.find_spec("clickhouse_connect") is not None:
        from clickhouse_connect.driver.exceptions import OperationalError as ClickHouseOperational

        types.append(ClickHouseOperational)
    return tuple(types)


__all__ = ["error_types", "unavailable"]
