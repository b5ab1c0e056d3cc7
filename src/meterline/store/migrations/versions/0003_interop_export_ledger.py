"""export ledger (the durable cursor of Lago/OpenMeter/Stripe exports).

Revision ID: 0003_interop
Revises: 0002
"""

from __future__ import annotations

from alembic import op

from meterline.store import extensions

revision = "0003_interop"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for stmt in extensions.area_statements("export_ledger", op.get_bind().dialect.name):
        op.execute(stmt)


def downgrade() -> None:
    for table in reversed(extensions.area_tables("export_ledger", op.get_bind().dialect.name)):
        op.execute(f"DROP TABLE IF EXISTS {table}")
