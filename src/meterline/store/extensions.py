"""Tables that other parts (API keys, budgets, billing…) keep next to ``events`` in the same database.

A module registers a function ``(dialect_name) -> [CREATE … IF NOT EXISTS statements]``; every SQL store
runs the registered statements when it creates its schema (first use of an SQLite file, start of a
collector on PostgreSQL) and the Alembic migrations run them too. Statements must be idempotent.

    from meterline.store.extensions import register_tables
    register_tables("budgets", lambda dialect: ["CREATE TABLE IF NOT EXISTS budgets (…)"])

``sql(dialect, text)`` turns ``?`` placeholders into the dialect's own, so per-area modules write their
SQL once for both dialects and run it with ``store.execute`` / ``store.fetch``.
"""

from __future__ import annotations

from collections.abc import Callable

from meterline.store.query import Dialect

TableFactory = Callable[[str], list[str]]

_registry: dict[str, TableFactory] = {}

# modules that register tables when imported; a module not shipped in this build is skipped
BUILTIN_TABLE_MODULES = (
    "meterline.store.keys",
    "meterline.store.budgets",
    "meterline.store.export_ledger",
    "meterline.store.content",
    "meterline.store.billing",
    "meterline.store.transfer",
)


def register_tables(name: str, factory: TableFactory) -> None:
    """Register (or replace) the CREATE statements of one area, by name."""
    _registry[name] = factory


def load_builtin() -> None:
    import importlib.util

    for mod in BUILTIN_TABLE_MODULES:
        try:
            found = importlib.util.find_spec(mod) is not None
        except ModuleNotFoundError:
            found = False
        if found:
            importlib.import_module(mod)


def extra_statements(dialect: str) -> list[str]:
    """Every registered area's CREATE statements for ``dialect`` (``sqlite`` or ``postgresql``)."""
    load_builtin()
    out: list[str] = []
    for factory in list(_registry.values()):
        out.extend(factory(dialect))
    return out


def sql(dialect: Dialect, text: str) -> str:
    """``?`` placeholders in ``text`` → the dialect's placeholder."""
    return text if dialect.placeholder == "?" else text.replace("?", dialect.placeholder)
