"""billing tables: customers, plan versions, subscriptions, wallet grants, invoices, lines, credit notes, sequences.

The statements are the idempotent ones the stores run on first use (CREATE … IF NOT EXISTS).

Revision ID: 0006_billing
Revises: 0002
"""

from __future__ import annotations

from alembic import op

from meterline.store import extensions

revision = "0006_billing"
down_revision = "0005_observability"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for stmt in extensions.area_statements("billing", op.get_bind().dialect.name):
        op.execute(stmt)


def downgrade() -> None:
    for table in reversed(extensions.area_tables("billing", op.get_bind().dialect.name)):
        op.execute(f"DROP TABLE IF EXISTS {table}")
