"""Hourly usage per customer, provider and model (``billing_usage_hourly``), kept by a trigger on ``events``.

An invoice over a million events would otherwise aggregate a million rows; from this table it reads one
row per hour and model. Hours are UTC hours, so a period in any zone at a whole-hour offset is made of
whole rows; the parts of a period that do not fill an hour (zones such as Asia/Kolkata) are read from
``events`` directly, so the result is always exact.

The customer column holds the value of the billing customer dimension (``meterline_meta`` key
``billing_rollup`` says which one). SQLite: a row trigger (re-created when the dimension changes).
PostgreSQL: a statement trigger over the inserted rows (its transition table), reading the dimension at
run time. The trigger and the first build come with the first billing record (customer or plan), so
metering alone never pays for it; ``rebuild_statements`` also runs after re-pricing or a dimension change.
"""

from __future__ import annotations

from typing import Any

from meterline.store.schema import DIMENSIONS

ROLLUP = "billing_usage_hourly"
TRIGGER = "billing_usage_hourly_ins"
META_KEY = "billing_rollup"
HOUR_US = 3_600_000_000
TOKENS = ("input_tokens", "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens", "output_tokens",
          "reasoning_tokens")  # fmt: skip
COSTS = ("input_cost", "cache_read_cost", "cache_write_cost", "output_cost", "total_cost")
SUMS = ("requests", *TOKENS, *COSTS, "unpriced")


def _expr(col: str, row: str = "") -> str:
    if col == "requests":
        return "1"
    if col == "unpriced":
        return f"CASE WHEN {row}total_cost IS NULL THEN 1 ELSE 0 END"
    return f"COALESCE({row}{col}, 0)"


def select_sql(source: str, dim: str) -> str:
    """(customer, hour, provider, model, sums…) of the events in ``source``, one row per key."""
    sums = ", ".join(f"SUM({_expr(c)})" for c in SUMS)
    return (
        f"SELECT {dim}, start_time / {HOUR_US}, provider, model, {sums} FROM {source} WHERE {dim} IS NOT NULL "
        f"GROUP BY {dim}, start_time / {HOUR_US}, provider, model"
    )


def _upsert(select: str, dialect: str) -> str:
    cols = ", ".join(SUMS)
    sets = ", ".join(f"{c} = {ROLLUP}.{c} + excluded.{c}" for c in SUMS)
    if dialect == "sqlite":
        select = f"SELECT * FROM ({select}) WHERE true"  # SQLite's upsert parser needs a WHERE here
    else:
        select += " ORDER BY 1, 2, 3, 4"  # one lock order for concurrent writers
    return (
        f"INSERT INTO {ROLLUP} (customer, hour, provider, model, {cols}) {select} "
        f"ON CONFLICT (customer, hour, provider, model) DO UPDATE SET {sets}"
    )


def sqlite_trigger(dim: str) -> str:
    cols = ", ".join(SUMS)
    values = ", ".join(_expr(c, "NEW.") for c in SUMS)
    sets = ", ".join(f"{c} = {c} + excluded.{c}" for c in SUMS)
    return (
        f"CREATE TRIGGER IF NOT EXISTS {TRIGGER} AFTER INSERT ON events WHEN NEW.{dim} IS NOT NULL BEGIN "
        f"INSERT INTO {ROLLUP} (customer, hour, provider, model, {cols}) VALUES (NEW.{dim}, "
        f"NEW.start_time / {HOUR_US}, NEW.provider, NEW.model, {values}) "
        f"ON CONFLICT (customer, hour, provider, model) DO UPDATE SET {sets}; END"
    )


def _pg_function() -> str:
    # the dimension is a column name from meterline_meta, checked against the known dimensions
    allowed = ", ".join(f"'{d}'" for d in DIMENSIONS)
    body = _upsert(select_sql("new_rows", "%1$I"), "postgresql").replace("'", "''")
    return (
        f"CREATE OR REPLACE FUNCTION {ROLLUP}_fn() RETURNS trigger LANGUAGE plpgsql AS $fn$\n"
        "DECLARE dim text;\nBEGIN\n"
        f"  SELECT value INTO dim FROM meterline_meta WHERE key = '{META_KEY}';\n"
        f"  IF dim IS NULL OR dim NOT IN ({allowed}) THEN RETURN NULL; END IF;\n"
        f"  EXECUTE format('{body}', dim);\n"
        "  RETURN NULL;\nEND $fn$"
    )


def create_statements(dialect: str) -> list[str]:
    """The table (and PostgreSQL's trigger function); the trigger itself is created by :func:`rebuild_statements`
    when billing is first used, so a deployment that only meters pays nothing for it."""
    big = "BIGINT" if dialect == "postgresql" else "INTEGER"
    cost = "NUMERIC" if dialect == "postgresql" else "INTEGER"
    metrics = ", ".join(f"{c} {cost if c in COSTS else big} NOT NULL" for c in SUMS)
    stmts = [
        "CREATE TABLE IF NOT EXISTS meterline_meta (key TEXT PRIMARY KEY, value TEXT)",
        f"CREATE TABLE IF NOT EXISTS {ROLLUP} (customer TEXT NOT NULL, hour {big} NOT NULL, provider TEXT NOT NULL, "
        f"model TEXT NOT NULL, {metrics}, PRIMARY KEY (customer, hour, provider, model))",
    ]
    if dialect == "postgresql":
        stmts.append(_pg_function())
    return stmts


def rebuild_statements(dialect: str, dim: str) -> list[str]:
    """(Re)create the trigger and recompute the rollup for ``dim`` (run in one transaction)."""
    if dim not in DIMENSIONS:
        raise ValueError(f"not an event dimension: {dim!r}")
    stmts = [f"DELETE FROM {ROLLUP}", f"DELETE FROM meterline_meta WHERE key = '{META_KEY}'"]
    if dialect == "sqlite":
        stmts += [f"DROP TRIGGER IF EXISTS {TRIGGER}", sqlite_trigger(dim)]
    else:
        stmts += [
            "LOCK TABLE events IN SHARE MODE",  # no insert between the rebuild and the trigger taking over
            f"CREATE OR REPLACE TRIGGER {TRIGGER} AFTER INSERT ON events REFERENCING NEW TABLE AS new_rows "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {ROLLUP}_fn()",
        ]
    stmts += [
        _upsert(select_sql("events", dim), dialect),
        f"INSERT INTO meterline_meta (key, value) VALUES ('{META_KEY}', '{dim}')",
    ]
    return stmts


def rollup_dimension(store: Any) -> str | None:
    rows = store.fetch(f"SELECT value FROM meterline_meta WHERE key = '{META_KEY}'")
    return str(rows[0][0]) if rows else None
