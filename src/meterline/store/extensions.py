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

import re
from collections.abc import Callable

TableFactory = Callable[[str], list[str]]

_registry: dict[str, TableFactory] = {}
_CREATE_TABLE = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+)")
# tables several areas create (IF NOT EXISTS) and none owns: a downgrade of one area never drops them
_SHARED_TABLES = frozenset({"meterline_meta"})

# modules that register tables when imported; a module not shipped in this build is skipped
BUILTIN_TABLE_MODULES = (
    "meterline.store.keys",
    "meterline.budgets.store",
    "meterline.interop.export.ledger",
    "meterline.store.content",
    "meterline.billing.store",
    "meterline.store.transfer",
    "meterline.store.leases",
    "meterline.store.price_history",
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


def area_statements(name: str, dialect: str) -> list[str]:
    """The CREATE statements one registered area (``"billing"``, ``"export_ledger"``…) has for ``dialect``:
    how a migration creates a domain's tables without importing the domain (store never imports upward)."""
    load_builtin()
    return _registry[name](dialect)


def area_tables(name: str, dialect: str) -> list[str]:
    """The names of the tables one area creates, in creation order (a downgrade drops them in reverse)."""
    found = (m.group(1) for m in map(_CREATE_TABLE.match, area_statements(name, dialect)) if m)
    return [table for table in found if table not in _SHARED_TABLES]

