"""observability: captured content in its own table; PostgreSQL events partitioned by month.

- ``event_content`` (both dialects): content moved out of the usage rows. Content that older versions kept
  in ``events.input_messages`` / ``events.output_text`` is copied there (those columns stay, unused).
- PostgreSQL: a plain ``events`` table becomes one partitioned by month of ``start_time`` (key
  ``(id, start_time)``), so that ``meterline prune`` drops partitions instead of deleting rows. The rows
  are copied into the monthly partitions in this migration's transaction (run it in a quiet period: the
  collector's writes wait for it). A database already partitioned is left as it is.

Revision ID: 0005_observability
Revises: 0002
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

from meterline.store import content, partitions
from meterline.store.schema import COLUMN_NAMES, INDEXES, TABLE, create_statements

revision = "0005_observability"
down_revision = "0004_collector_exact_sums"
branch_labels = None
depends_on = None

_OLD = "events_unpartitioned"


def _columns(bind: object, table: str) -> set[str]:
    from sqlalchemy import inspect

    return {c["name"] for c in inspect(bind).get_columns(table)}


def _copy_legacy_content(bind: object, table: str, dialect: str) -> None:
    cols = _columns(bind, table)
    if not {"input_messages", "output_text"} <= cols:
        return
    if dialect == "postgresql":
        body = (
            "json_strip_nulls(json_build_object("
            "'input_messages', input_messages::json, 'output_text', output_text))::text"
        )
        op.execute(
            f"INSERT INTO {content.CONTENT_TABLE} (event_id, start_time, bytes, body) "
            f"SELECT id, start_time, octet_length({body}), {body} FROM {table} "
            "WHERE input_messages IS NOT NULL OR output_text IS NOT NULL ON CONFLICT (event_id) DO NOTHING"
        )
    else:
        body = "json_object('input_messages', json(input_messages), 'output_text', output_text)"
        op.execute(
            f"INSERT OR IGNORE INTO {content.CONTENT_TABLE} (event_id, start_time, bytes, body) "
            f"SELECT id, start_time, length(CAST({body} AS BLOB)), {body} FROM {table} "
            "WHERE input_messages IS NOT NULL OR output_text IS NOT NULL"
        )


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    for stmt in content._tables(dialect):
        op.execute(stmt)
    if dialect != "postgresql":
        _copy_legacy_content(bind, TABLE, dialect)
        return
    if bind.execute(text(partitions.PARTITIONED_SQL)).fetchone() is not None:
        return  # created partitioned (new database), nothing to move
    op.execute(f"ALTER TABLE {TABLE} RENAME TO {_OLD}")
    # index and key names are per schema: free them for the new table
    op.execute(f"ALTER TABLE {_OLD} DROP CONSTRAINT IF EXISTS {TABLE}_pkey")
    for ix, _cols in INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {ix}")
    for stmt in create_statements("postgresql"):
        op.execute(stmt)
    lo, hi = bind.execute(text(f"SELECT MIN(start_time), MAX(start_time) FROM {_OLD}")).fetchone() or (None, None)
    if lo is not None and hi is not None:
        for year, month in partitions.months_between(int(lo), int(hi)):
            op.execute(partitions.create_sql(year, month))
    cols = ", ".join(COLUMN_NAMES)
    # DISTINCT ON: the old key was id alone; keep one row per id whatever its start_time
    op.execute(f"INSERT INTO {TABLE} ({cols}) SELECT DISTINCT ON (id) {cols} FROM {_OLD} ORDER BY id, start_time")
    _copy_legacy_content(bind, _OLD, dialect)
    op.execute(f"DROP TABLE {_OLD}")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql" and bind.execute(text(partitions.PARTITIONED_SQL)).fetchone() is not None:
        op.execute(f"ALTER TABLE {TABLE} RENAME TO {_OLD}")
        op.execute(f"ALTER TABLE {_OLD} DROP CONSTRAINT IF EXISTS {TABLE}_pkey")
        for ix, _cols in INDEXES:
            op.execute(f"DROP INDEX IF EXISTS {ix}")
        plain = [s.replace(" PARTITION BY RANGE (start_time)", "") for s in create_statements("postgresql")[:1]]
        plain = [s.replace(",\n  PRIMARY KEY (id, start_time)", ",\n  PRIMARY KEY (id)") for s in plain]
        for stmt in plain:
            op.execute(stmt)
        for ix, cols_ in INDEXES:
            op.execute(f"CREATE INDEX IF NOT EXISTS {ix} ON {TABLE} ({cols_})")
        cols = ", ".join(COLUMN_NAMES)
        op.execute(f"INSERT INTO {TABLE} ({cols}) SELECT {cols} FROM {_OLD}")
        op.execute(f"DROP TABLE {_OLD} CASCADE")
    op.execute(f"DROP TABLE IF EXISTS {content.CONTENT_TABLE}")
