"""PostgreSQL: one row per event id ever stored, ``event_ids(id PRIMARY KEY)`` — the idempotency key across
monthly partitions.

``events`` is partitioned by month of ``start_time``, so its key must be ``(id, start_time)``: on its own it
cannot refuse a retry whose ``start_time`` differs (by 1 ms, or by a month: another partition). Every write
first claims the id here (``INSERT … ON CONFLICT DO NOTHING RETURNING id``) in the same transaction, and only
the ids it claimed go on to ``events``: first write wins, the rest count as duplicates.

Retention keeps these rows when it prunes events: a late retry of a pruned id is refused, not stored again
(one short row per event; the cost of never billing a retry twice).

An upgraded database is filled from its events once (:func:`backfill`, from the store's schema creation or
the Alembic revision 0008). Every event is kept; ids already stored twice are logged with their count and
listed by :data:`DUPLICATES_SQL` (documented in docs/internals/scale.md).
"""

from __future__ import annotations

import logging
from typing import Any

from meterline.store.schema import TABLE

logger = logging.getLogger("meterline")

ID_TABLE = "event_ids"
CREATE_SQL = f"CREATE TABLE IF NOT EXISTS {ID_TABLE} (id TEXT PRIMARY KEY)"
EXISTS_SQL = f"SELECT to_regclass('{ID_TABLE}') IS NOT NULL"
# the ids stored more than once (before event_ids existed), with how many rows each has
DUPLICATES_SQL = f"SELECT id, COUNT(*) AS copies FROM {TABLE} GROUP BY id HAVING COUNT(*) > 1 ORDER BY id"


def backfill(conn: Any) -> int:
    """Fill ``event_ids`` from the stored events (``conn`` in a transaction; the table exists). Keeps every
    event; returns how many ids are stored more than once, and logs one line when there are any."""
    conn.execute(f"INSERT INTO {ID_TABLE} (id) SELECT DISTINCT id FROM {TABLE} ON CONFLICT DO NOTHING")
    row = conn.execute(f"SELECT COUNT(*) FROM ({DUPLICATES_SQL}) AS d").fetchone()
    duplicates = int(row[0]) if row else 0
    if duplicates:
        logger.warning(
            "meterline: %d event id(s) are stored more than once (written before event ids were unique across "
            "partitions); every row is kept, new duplicates are refused. List them: %s",
            duplicates,
            DUPLICATES_SQL,
        )
    return duplicates


def ensure(conn: Any) -> int | None:
    """Create ``event_ids`` when missing and fill it from the events (``conn`` in a transaction, after the
    events table exists). Returns the duplicate ids found when it was created now, else None."""
    existed = bool(conn.execute(EXISTS_SQL).fetchone()[0])
    if existed:
        return None
    conn.execute(CREATE_SQL)
    return backfill(conn)
