"""event_ids: one row per event id on PostgreSQL, so an id is stored once across the monthly partitions.

Filled from the stored events; every event is kept, and ids already stored twice are logged with their
count (list them with ``meterline.store.event_ids.DUPLICATES_SQL``, docs/internals/scale.md). SQLite keys
``events`` on ``id`` alone and needs nothing.

Revision ID: 0008_event_ids
Revises: 0007_leases
"""

from __future__ import annotations

from alembic import op

from meterline.store import event_ids

revision = "0008_event_ids"
down_revision = "0007_leases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    event_ids.ensure(op.get_bind().connection.driver_connection)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TABLE IF EXISTS {event_ids.ID_TABLE}")
