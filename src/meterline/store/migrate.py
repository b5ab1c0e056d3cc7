"""Schema migrations with Alembic, configured in code: users need no alembic.ini.

``upgrade(destination)`` brings a SQLite file or PostgreSQL database to the newest revision;
``current(destination)`` says where it is. Another part adds a revision file under
``meterline/store/migrations/versions/`` (``down_revision`` = the previous head).
"""

from __future__ import annotations

from pathlib import Path

from meterline.core.config import destination_kind, resolve_destination, sqlite_path

SCRIPTS = Path(__file__).with_name("migrations")


def sqlalchemy_url(destination: str) -> str:
    kind = destination_kind(destination)
    if kind == "postgresql":
        from meterline.store.postgres import connection_url

        return "postgresql+psycopg://" + connection_url(destination)[len("postgresql://") :]
    if kind == "sqlite":
        path = sqlite_path(destination).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"
    raise ValueError(f"database: migrations run on sqlite or postgresql databases, not {destination!r}")


def alembic_config(destination: str | None = None) -> object:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPTS))
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(resolve_destination(destination)).replace("%", "%%"))
    return cfg


def upgrade(destination: str | None = None, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(destination), revision)  # type: ignore[arg-type]


def current(destination: str | None = None) -> str | None:
    """The database's revision (None before the first migration)."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine

    engine = create_engine(sqlalchemy_url(resolve_destination(destination)))
    try:
        with engine.connect() as conn:
            rev: str | None = MigrationContext.configure(conn).get_current_revision()
            return rev
    finally:
        engine.dispose()


def head() -> str | None:
    from alembic.script import ScriptDirectory

    rev: str | None = ScriptDirectory.from_config(alembic_config("sqlite:///:memory:")).get_current_head()  # type: ignore[arg-type]
    return rev
