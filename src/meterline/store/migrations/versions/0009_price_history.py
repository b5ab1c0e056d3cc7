"""price_history: the price data an installation has used and the re-pricings after an update,
``meterline_price_history`` (``meterline prices history``).

The statements are the idempotent ones the stores run on first use (CREATE … IF NOT EXISTS).

Revision ID: 0009_price_history
Revises: 0008_event_ids
"""

from __future__ import annotations

from alembic import op

from meterline.store import extensions

revision = "0009_price_history"
down_revision = "0008_event_ids"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for stmt in extensions.area_statements("price_history", op.get_bind().dialect.name):
        op.execute(stmt)


def downgrade() -> None:
    for table in reversed(extensions.area_tables("price_history", op.get_bind().dialect.name)):
        op.execute(f"DROP TABLE IF EXISTS {table}")
