"""collector: exact cost sums in the SQLite daily rollup (micro-dollar and pico remainder columns).

The SQLite rollup summed pico-dollars in one 64-bit column, which overflows past ~$9.2 million per day and
value; it is dropped and rebuilt from the stored events with split columns. PostgreSQL keeps NUMERIC sums
(nothing to change there).

Revision ID: 0004_collector_exact_sums
Revises: 0002
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

from meterline.store import query as queries
from meterline.store import rollup as rollups

revision = "0004_collector_exact_sums"
down_revision = "0003_interop"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    columns = {row[1] for row in bind.execute(text(f"PRAGMA table_info({rollups.ROLLUP})")).fetchall()}
    if rollups.SPLIT_COST_COLUMNS[0] in columns:  # the store built the split rollup on first use already
        return
    for stmt in [
        *rollups.upgrade_split_statements(),
        *rollups.create_statements("sqlite"),
        *rollups.rebuild_statements(queries.SQLITE),
    ]:
        op.execute(stmt)


def downgrade() -> None:
    """Nothing to undo: the split rollup answers the same queries exactly."""
