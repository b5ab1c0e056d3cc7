"""export ledger (the durable cursor of Lago/OpenMeter/Stripe exports).

Revision ID: 0003_interop
Revises: 0002
"""

from __future__ import annotations

from alembic import op

from meterline.store import export_ledger

revision = "0003_interop"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for stmt in export_ledger._tables(op.get_bind().dialect.name):
        op.execute(stmt)


def downgrade() -> None:
    op.execute(f"DROP TABLE IF EXISTS {export_ledger.LEDGER}")
