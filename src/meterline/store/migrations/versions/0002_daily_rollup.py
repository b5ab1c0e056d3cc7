"""daily rollup of usage per dimension value (events_daily), built from the stored events.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

from meterline.store import query as queries
from meterline.store import rollup as rollups

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    dialect = queries.POSTGRESQL if bind.dialect.name == "postgresql" else queries.SQLITE
    for stmt in rollups.create_statements(dialect.name):
        op.execute(stmt)
    if not bind.execute(text(rollups.READY_SQL)).fetchall():  # the stores may have built it on first use already
        for stmt in rollups.rebuild_statements(dialect):
            op.execute(stmt)


def downgrade() -> None:
    op.execute(f"DELETE FROM meterline_meta WHERE key = '{rollups.META_KEY}'")
    op.execute(f"DROP TABLE IF EXISTS {rollups.ROLLUP}")
