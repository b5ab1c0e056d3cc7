"""events table, its indexes, API keys, meta table.

The statements are the same idempotent ones the stores run on first use (CREATE … IF NOT EXISTS), so
migrating a database that the SDK or the collector already created is a no-op that records the revision.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from alembic import op

from meterline.store import keys
from meterline.store.schema import create_statements

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for stmt in [*create_statements(dialect), *keys._tables(dialect)]:
        op.execute(stmt)
    op.execute("CREATE TABLE IF NOT EXISTS meterline_meta (key TEXT PRIMARY KEY, value TEXT)")


def downgrade() -> None:
    for table in ("api_keys", "events", "meterline_meta"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
