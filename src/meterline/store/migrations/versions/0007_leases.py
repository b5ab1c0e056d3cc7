"""leases: one holder at a time among collector replicas (export forwarding), ``meterline_leases``.

The statements are the idempotent ones the stores run on first use (CREATE … IF NOT EXISTS).

Revision ID: 0007_leases
Revises: 0006_billing
"""

from __future__ import annotations

from alembic import op

from meterline.store import extensions

revision = "0007_leases"
down_revision = "0006_billing"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for stmt in extensions.area_statements("leases", op.get_bind().dialect.name):
        op.execute(stmt)


def downgrade() -> None:
    for table in reversed(extensions.area_tables("leases", op.get_bind().dialect.name)):
        op.execute(f"DROP TABLE IF EXISTS {table}")
