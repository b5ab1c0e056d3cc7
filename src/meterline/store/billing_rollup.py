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

Costs: NUMERIC sums of pico-dollars in PostgreSQL (exact, no upper bound). SQLite has no integer wider than
64 bits and its upsert's ``+`` silently turns a sum past 2^63 pico-dollars (~$9.2M) into a float, so there
each cost is kept as two sums, ``<cost>_hi`` (micro-dollars) and ``<cost>_lo`` (the pico remainder), joined
in Python with ``schema.join_split``: exact up to $9.2 * 10^12 per customer, hour and model. A SQLite
rollup of before (one INTEGER per cost) is converted when the store opens (:func:`upgrade_split_statements`).
"""

from __future__ import annotations

from meterline.core.event import DIMENSIONS
from meterline.store.base import SQLStore
from meterline.store.schema import SPLIT

ROLLUP = "billing_usage_hourly"
TRIGGER = "billing_usage_hourly_ins"
META_KEY = "billing_rollup"
HOUR_US = 3_600_000_000
TOKENS = ("input_tokens", "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens", "output_tokens",
          "reasoning_tokens")  # fmt: skip
COSTS = ("input_cost", "cache_read_cost", "cache_write_cost", "output_cost", "total_cost")
SUMS = ("requests", *TOKENS, *COSTS, "unpriced")
SPLIT_COSTS = tuple(f"{c}_{half}" for c in COSTS for half in ("hi", "lo"))
SPLIT_SUMS = ("requests", *TOKENS, *SPLIT_COSTS, "unpriced")


def columns(dialect: str) -> tuple[str, ...]:
    """The rollup's sum columns: costs whole in PostgreSQL (NUMERIC), split in two (hi, lo) on SQLite."""
    return SUMS if dialect == "postgresql" else SPLIT_SUMS


def _expr(col: str, row: str = "") -> str:
    if col == "requests":
        return "1"
    if col == "unpriced":
        return f"CASE WHEN {row}total_cost IS NULL THEN 1 ELSE 0 END"
    if col in SPLIT_COSTS:  # the remainder as a - a / n * n, like schema.split_sum_sql
        whole = f"COALESCE({row}{col[:-3]}, 0)"
        return f"{whole} / {SPLIT}" if col.endswith("_hi") else f"{whole} - {whole} / {SPLIT} * {SPLIT}"
    return f"COALESCE({row}{col}, 0)"


def select_sql(source: str, dim: str, dialect: str) -> str:
    """(customer, hour, provider, model, sums…) of the events in ``source``, one row per key."""
    sums = ", ".join(f"SUM({_expr(c)})" for c in columns(dialect))
    return (
        f"SELECT {dim}, start_time / {HOUR_US}, provider, model, {sums} FROM {source} WHERE {dim} IS NOT NULL "
        f"GROUP BY {dim}, start_time / {HOUR_US}, provider, model"
    )


def _upsert(select: str, dialect: str) -> str:
    cols = ", ".join(columns(dialect))
    sets = ", ".join(f"{c} = {ROLLUP}.{c} + excluded.{c}" for c in columns(dialect))
    if dialect == "sqlite":
        select = f"SELECT * FROM ({select}) WHERE true"  # SQLite's upsert parser needs a WHERE here
    else:
        select += " ORDER BY 1, 2, 3, 4"  # one lock order for concurrent writers
    return (
        f"INSERT INTO {ROLLUP} (customer, hour, provider, model, {cols}) {select} "
        f"ON CONFLICT (customer, hour, provider, model) DO UPDATE SET {sets}"
    )


def sqlite_trigger(dim: str) -> str:
    cols = ", ".join(SPLIT_SUMS)
    values = ", ".join(_expr(c, "NEW.") for c in SPLIT_SUMS)
    sets = ", ".join(f"{c} = {c} + excluded.{c}" for c in SPLIT_SUMS)
    return (
        f"CREATE TRIGGER IF NOT EXISTS {TRIGGER} AFTER INSERT ON events WHEN NEW.{dim} IS NOT NULL BEGIN "
        f"INSERT INTO {ROLLUP} (customer, hour, provider, model, {cols}) VALUES (NEW.{dim}, "
        f"NEW.start_time / {HOUR_US}, NEW.provider, NEW.model, {values}) "
        f"ON CONFLICT (customer, hour, provider, model) DO UPDATE SET {sets}; END"
    )


def _pg_function() -> str:
    # the dimension is a column name from meterline_meta, checked against the known dimensions
    allowed = ", ".join(f"'{d}'" for d in DIMENSIONS)
    body = _upsert(select_sql("new_rows", "%1$I", "postgresql"), "postgresql").replace("'", "''")
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
    metrics = ", ".join(f"{c} {cost if c in COSTS else big} NOT NULL" for c in columns(dialect))
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
        _upsert(select_sql("events", dim, dialect), dialect),
        f"INSERT INTO meterline_meta (key, value) VALUES ('{META_KEY}', '{dim}')",
    ]
    return stmts


DIM_SQL = f"SELECT value FROM meterline_meta WHERE key = '{META_KEY}'"


def rollup_dimension(store: SQLStore) -> str | None:
    rows = store.fetch(DIM_SQL)
    return str(rows[0][0]) if rows else None


def read_sums(dialect: str) -> str:
    """``SUM(col)`` of every sum column, in :func:`columns` order (SQLite: each cost as its hi, lo pair)."""
    return ", ".join(f"SUM({c})" for c in columns(dialect))


# -- SQLite: a rollup of before (one INTEGER per cost) --------------------------------------------------
OLD_SHAPE_SQL = f"SELECT 1 FROM pragma_table_info('{ROLLUP}') WHERE name = '{COSTS[0]}'"  # a row: of before
_OLD = f"{ROLLUP}_old"


def upgrade_split_statements(dim: str | None) -> list[str]:
    """SQLite: replace a rollup with one (overflowing) INTEGER per cost by the split one, in the transaction
    that opens the store, for the customer dimension ``dim`` it is kept for (None: billing not in use).

    Not a plain rebuild from ``events``: retention keeps this rollup while it deletes events (invoices over a
    pruned period are read from it), so a rebuild would bill pruned hours as empty. A row whose costs are
    all integers is exact (its sums never passed 2^63): its costs are split as they are. A row holding a
    float (its upsert overflowed) is recomputed from its events; only when they were pruned too is its float
    split as it is (as inexact as it was, which the reads before showed).

    No Alembic revision for this: the rollup is derived data that only the stores read, every SQLite writer
    (and ``meterline migrate``, which opens one after Alembic) runs this on open, in one transaction with
    the rest of its schema, and PostgreSQL's NUMERIC sums need nothing."""
    if dim is not None and dim not in DIMENSIONS:
        dim = None  # a damaged mark: billing rebuilds the rollup for its dimension at its next record
    overflowed = " OR ".join(f"typeof(o.{c}) <> 'integer'" for c in COSTS)
    count_cols = ("requests", *TOKENS)
    cols = ", ".join(["customer", "hour", "provider", "model", *SPLIT_SUMS])
    exact = ", ".join(
        [
            *(f"o.{c}" for c in ("customer", "hour", "provider", "model", *count_cols)),
            *(f"o.{c} / {SPLIT}, o.{c} - o.{c} / {SPLIT} * {SPLIT}" for c in COSTS),
            "o.unpriced",
        ]
    )
    hi = {c: f"CAST(o.{c} / {SPLIT} AS INTEGER)" for c in COSTS}  # float division: truncated to integer
    approx = ", ".join(
        [
            *(f"o.{c}" for c in ("customer", "hour", "provider", "model", *count_cols)),
            *(f"{hi[c]}, CAST(o.{c} - {hi[c]} * {SPLIT} AS INTEGER)" for c in COSTS),
            "o.unpriced",
        ]
    )
    stmts = [
        f"DROP TRIGGER IF EXISTS {TRIGGER}",
        f"DROP TABLE IF EXISTS {_OLD}",
        f"ALTER TABLE {ROLLUP} RENAME TO {_OLD}",
        *create_statements("sqlite"),
        f"INSERT INTO {ROLLUP} ({cols}) SELECT {exact} FROM {_OLD} AS o WHERE NOT ({overflowed})",
    ]
    if dim is not None:
        key = (
            f"o.customer = e.{dim} AND o.hour = e.start_time / {HOUR_US} AND o.provider = e.provider "
            "AND o.model = e.model"
        )
        source = f"(SELECT * FROM events AS e WHERE EXISTS (SELECT 1 FROM {_OLD} AS o WHERE {key} AND ({overflowed})))"
        stmts.append(f"INSERT INTO {ROLLUP} ({cols}) {select_sql(source, dim, 'sqlite')}")
    stmts += [
        f"INSERT OR IGNORE INTO {ROLLUP} ({cols}) SELECT {approx} FROM {_OLD} AS o WHERE {overflowed}",
        f"DROP TABLE {_OLD}",
    ]
    stmts.append(sqlite_trigger(dim) if dim is not None else f"DELETE FROM meterline_meta WHERE key = '{META_KEY}'")
    return stmts
