"""Named leases in the SQL database: one holder at a time among processes sharing a database, for a while.

What several collector replicas must do once, not once each (forward a target's events), is done by the one
that holds its lease. A lease is a row (``name``, ``holder``, ``expires``): :meth:`Lease.hold` takes it when
it is free or expired, or renews it when this holder has it, in one conditional ``INSERT … ON CONFLICT DO
UPDATE … WHERE`` (atomic on SQLite and PostgreSQL); it answers whether this holder has it now. The holder renews
before each piece of work and stops when renewing fails; when it stops it releases the lease; when it dies
(SIGKILL) the lease expires ``ttl`` seconds after its last renewal and the next process that asks takes it.

Expiry times are the database's clock (PostgreSQL's ``clock_timestamp()``, SQLite's ``julianday('now')``: one
host), so replicas' clocks need not agree; the holder counts its own time left from its monotonic clock, started
before it asked (never later than the database's). On the ClickHouse store the table is in its SQL metadata
database (``store.execute`` sends it there).
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid

from meterline.store.base import SQLStore
from meterline.store.extensions import register_tables
from meterline.store.sql import sql

TABLE = "meterline_leases"
logger = logging.getLogger("meterline")


def _tables(dialect: str) -> list[str]:
    real = "DOUBLE PRECISION" if dialect == "postgresql" else "REAL"
    return [
        f"CREATE TABLE IF NOT EXISTS {TABLE} (name TEXT PRIMARY KEY, holder TEXT NOT NULL, "
        f"expires {real} NOT NULL, since {real} NOT NULL)"
    ]


register_tables("leases", _tables)


def _now(store: SQLStore) -> str:
    """The database's clock, epoch seconds, as SQL."""
    if store.dialect.name == "postgresql":
        return "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"
    return "((julianday('now') - 2440587.5) * 86400.0)"


def holder_id() -> str:
    """This process, for a lease's ``holder``: host, pid and a random part (a restarted pid is another holder)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lease:
    def __init__(self, store: SQLStore, name: str, ttl: float, holder: str | None = None) -> None:
        if ttl <= 0:
            raise ValueError(f"lease {name!r}: ttl must be > 0 seconds, not {ttl}")
        self.store, self.name, self.ttl = store, name, float(ttl)
        self.holder = holder or holder_id()
        self._until = 0.0  # monotonic time until which this holder surely has it

    def hold(self) -> bool:
        """Take the lease or renew it; True when this holder has it for the next ``ttl`` seconds. A database
        error counts as not holding it (logged): the caller stops its work."""
        started = time.monotonic()
        now = _now(self.store)
        text = (
            f"INSERT INTO {TABLE} (name, holder, expires, since) VALUES (?, ?, {now} + ?, {now}) "
            f"ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires = excluded.expires, "
            f"since = CASE WHEN {TABLE}.holder = excluded.holder THEN {TABLE}.since ELSE excluded.since END "
            f"WHERE {TABLE}.holder = excluded.holder OR {TABLE}.expires < {now}"
        )
        try:
            taken = self.store.execute(sql(self.store.dialect, text), (self.name, self.holder, self.ttl)) == 1
        except Exception as exc:  # noqa: BLE001 - no answer from the database: not held
            logger.warning("meterline: lease %s: could not renew it: %s", self.name, exc)
            taken = False
        self._until = started + self.ttl if taken else 0.0
        return taken

    @property
    def held(self) -> bool:
        """True while the last successful :meth:`hold` is less than ``ttl`` seconds old (no database call)."""
        return time.monotonic() < self._until

    def release(self) -> None:
        """Give the lease up (when this holder has it), so another process takes it at its next try."""
        self._until = 0.0
        try:
            self.store.execute(
                sql(self.store.dialect, f"DELETE FROM {TABLE} WHERE name = ? AND holder = ?"), (self.name, self.holder)
            )
        except Exception as exc:  # noqa: BLE001 - it expires on its own
            logger.warning("meterline: lease %s: could not release it (it expires on its own): %s", self.name, exc)


def current(store: SQLStore, name: str) -> tuple[str, float] | None:
    """(holder, seconds left) of lease ``name`` when someone holds it, else None."""
    rows = store.fetch(
        sql(store.dialect, f"SELECT holder, expires - {_now(store)} FROM {TABLE} WHERE name = ?"), (name,)
    )
    if not rows or float(rows[0][1]) <= 0:
        return None
    return str(rows[0][0]), float(rows[0][1])
