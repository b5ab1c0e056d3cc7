"""daily rollup of usage per dimension value (events_daily), built from the stored events.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

from meterline.store import query as Q
from meterline.store import rollup as R

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    dialect = Q.POSTGRESQL if bind.dialect.name == "postgresql" else Q.SQLITE
    for stmt in R.create_statements(dialect.name):
        op.execute(stmt)
    if not bind.execute(text(R.READY_SQL)).fetchall():  # the stores may have built it on first use already
        for stmt in R.rebuild_statements(dialect):
            op.execute(stmt)


def downgrade() -> None:
    op.execute(f"DELETE FROM meterline_meta WHERE key = '{R.META_KEY}'")
    op.execute(f"DROP TABLE IF EXISTS {R.ROLLUP}")
