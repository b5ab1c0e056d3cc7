"""Billing tables and their SQL (SQLite and PostgreSQL): customers, plan versions, subscriptions, wallet
grants, invoices with their lines, credit notes, the invoice number sequence, and usage sums from ``events``.

On the ClickHouse store the billing tables live in its SQL metadata database (``transaction`` runs there) and
the usage sums come from ClickHouse's ``events FINAL`` (see ``_usage_rows``: a store whose
``keeps_billing_rollup`` is False has no hourly rollup).

Money is stored as exact decimal strings; times as integer microseconds (UTC); rules and invoice snapshots
as JSON text. A finalized invoice is written once (its ``body`` is the immutable snapshot) and never updated.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from meterline.billing.model import BillingError, Customer, Grant, Plan, Subscription, parse_customer, parse_plan
from meterline.billing.rating import Usage
from meterline.core.event import DIMENSIONS
from meterline.core.timeutil import from_micros, to_micros
from meterline.store import billing_rollup
from meterline.store.base import BillingStore, SQLStore, TransactionalStore
from meterline.store.extensions import register_tables
from meterline.store.schema import PICO, join_split, split_sum_sql
from meterline.store.sql import sql, transaction

SETTINGS = "billing_settings"
CUSTOMERS = "billing_customers"
PLANS = "billing_plans"
SUBSCRIPTIONS = "billing_subscriptions"
GRANTS = "billing_wallet_grants"
INVOICES = "billing_invoices"
LINES = "billing_invoice_lines"
CREDIT_NOTES = "billing_credit_notes"
SEQUENCES = "billing_sequences"
TABLES = (
    SETTINGS,
    CUSTOMERS,
    PLANS,
    SUBSCRIPTIONS,
    GRANTS,
    INVOICES,
    LINES,
    CREDIT_NOTES,
    SEQUENCES,
    billing_rollup.ROLLUP,
)
DEFAULT_DIMENSION = "subscriber_id"


def _tables(dialect: str) -> list[str]:
    big = "BIGINT" if dialect == "postgresql" else "INTEGER"
    real = "DOUBLE PRECISION" if dialect == "postgresql" else "REAL"
    return [
        f"CREATE TABLE IF NOT EXISTS {SETTINGS} (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS {CUSTOMERS} (id TEXT PRIMARY KEY, name TEXT NOT NULL, email TEXT, "
        f"timezone TEXT NOT NULL, metadata TEXT NOT NULL, overrides TEXT NOT NULL, created_at {real} NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS {PLANS} (id TEXT NOT NULL, version {big} NOT NULL, effective_from TEXT NOT NULL, "
        f"body TEXT NOT NULL, created_at {real} NOT NULL, PRIMARY KEY (id, version))",
        f"CREATE TABLE IF NOT EXISTS {SUBSCRIPTIONS} (customer_id TEXT NOT NULL, start_date TEXT NOT NULL, "
        f"plan_id TEXT NOT NULL, created_at {real} NOT NULL, PRIMARY KEY (customer_id, start_date))",
        f"CREATE TABLE IF NOT EXISTS {GRANTS} (id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, amount TEXT NOT NULL, "
        f"granted_at {big} NOT NULL, expires_at {big}, note TEXT NOT NULL, created_at {real} NOT NULL)",
        f"CREATE INDEX IF NOT EXISTS ix_{GRANTS}_customer ON {GRANTS} (customer_id)",
        f"CREATE TABLE IF NOT EXISTS {INVOICES} (number TEXT PRIMARY KEY, customer_id TEXT NOT NULL, "
        f"period TEXT NOT NULL, period_end {big} NOT NULL, issued_at {big} NOT NULL, subtotal TEXT NOT NULL, "
        "usage_subtotal TEXT NOT NULL, credits TEXT NOT NULL, total TEXT NOT NULL, provider_cost TEXT NOT NULL, "
        "body TEXT NOT NULL, UNIQUE (customer_id, period))",
        f"CREATE TABLE IF NOT EXISTS {LINES} (invoice_number TEXT NOT NULL, position {big} NOT NULL, "
        "kind TEXT NOT NULL, description TEXT NOT NULL, provider TEXT, model TEXT, token_class TEXT, "
        "quantity TEXT NOT NULL, unit TEXT NOT NULL, unit_price TEXT NOT NULL, amount TEXT NOT NULL, "
        "adjusts_period TEXT, PRIMARY KEY (invoice_number, position))",
        f"CREATE TABLE IF NOT EXISTS {CREDIT_NOTES} (number TEXT PRIMARY KEY, invoice_number TEXT NOT NULL, "
        f"customer_id TEXT NOT NULL, amount TEXT NOT NULL, reason TEXT NOT NULL, grant_id TEXT NOT NULL, "
        f"issued_at {big} NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS {SEQUENCES} (name TEXT PRIMARY KEY, value {big} NOT NULL)",
        *billing_rollup.create_statements(dialect),
    ]


register_tables("billing", _tables)


# -- settings --------------------------------------------------------------------------------------
def get_setting(store: SQLStore, key: str, default: str) -> str:
    rows = store.fetch(sql(store.dialect, f"SELECT value FROM {SETTINGS} WHERE key = ?"), (key,))
    return str(rows[0][0]) if rows else default


def set_setting(store: TransactionalStore, key: str, value: str) -> None:
    with transaction(store) as tx:
        tx.run(f"DELETE FROM {SETTINGS} WHERE key = ?", (key,))
        tx.run(f"INSERT INTO {SETTINGS} (key, value) VALUES (?, ?)", (key, value))


def set_customer_dimension(store: BillingStore, dim: str) -> None:
    """Bill by another event field; the hourly usage rollup is rebuilt for it (when the store keeps one)."""
    _dim(dim)
    with transaction(store) as tx:
        tx.run(f"DELETE FROM {SETTINGS} WHERE key = 'customer_dimension'")
        tx.run(f"INSERT INTO {SETTINGS} (key, value) VALUES ('customer_dimension', ?)", (dim,))
        for stmt in billing_rollup.rebuild_statements(store.dialect.name, dim) if store.keeps_billing_rollup else []:
            tx.run(stmt)


def enable_rollup(store: BillingStore) -> None:
    """Start keeping the hourly billing usage (trigger + first build), once, at the first billing record.
    Not on a store that keeps none (ClickHouse): there the usage sums come from ``events FINAL`` (``_usage_rows``)."""
    if not store.keeps_billing_rollup or billing_rollup.rollup_dimension(store) is not None:
        return
    dim = customer_dimension(store)
    with transaction(store) as tx:
        if tx.run(f"SELECT value FROM meterline_meta WHERE key = '{billing_rollup.META_KEY}'"):
            return  # another process did it
        for stmt in billing_rollup.rebuild_statements(store.dialect.name, dim):
            tx.run(stmt)


def customer_dimension(store: SQLStore) -> str:
    dim = get_setting(store, "customer_dimension", DEFAULT_DIMENSION)
    return dim if dim in DIMENSIONS else DEFAULT_DIMENSION


# -- customers -------------------------------------------------------------------------------------
_CUST = "id, name, email, timezone, metadata, overrides"


def _customer(r: Sequence[Any]) -> Customer:
    spec = {
        "id": r[0],
        "name": r[1],
        "email": r[2],
        "timezone": r[3],
        "metadata": json.loads(r[4]),
        "overrides": json.loads(r[5]),
    }
    return parse_customer(spec, existing=Customer(id=r[0]))  # a stored id is not validated again


def save_customer(store: BillingStore, c: Customer) -> None:
    enable_rollup(store)
    with transaction(store) as tx:
        tx.run(f"DELETE FROM {CUSTOMERS} WHERE id = ?", (c.id,))
        tx.run(
            f"INSERT INTO {CUSTOMERS} ({_CUST}, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                c.id,
                c.name,
                c.email,
                c.timezone,
                json.dumps(dict(c.metadata)),
                json.dumps([dict(r.spec) for r in c.overrides]),
                time.time(),
            ),
        )


def get_customer(store: SQLStore, cid: str) -> Customer | None:
    rows = store.fetch(sql(store.dialect, f"SELECT {_CUST} FROM {CUSTOMERS} WHERE id = ?"), (cid,))
    return _customer(rows[0]) if rows else None


def list_customers(store: SQLStore) -> list[Customer]:
    return [_customer(r) for r in store.fetch(f"SELECT {_CUST} FROM {CUSTOMERS} ORDER BY id")]


def add_customers(store: BillingStore, ids: Sequence[str]) -> int:
    """Create bare customers (name = id, UTC) for ids not known yet; how many were new."""
    enable_rollup(store)
    known = {r[0] for r in store.fetch(f"SELECT id FROM {CUSTOMERS}")}
    new = [i for i in dict.fromkeys(ids) if i not in known]
    with transaction(store) as tx:
        tx.many(
            f"INSERT INTO {CUSTOMERS} ({_CUST}, created_at) VALUES (?, ?, NULL, 'UTC', '{{}}', '[]', ?)",
            [(i, i, time.time()) for i in new],
        )
    return len(new)


# -- plans and subscriptions -----------------------------------------------------------------------
def add_plan_version(store: BillingStore, spec: Mapping[str, Any]) -> Plan:
    """Store a new version of a plan (version = previous + 1)."""
    parse_plan(spec)  # validate before taking a version number
    enable_rollup(store)
    with transaction(store) as tx:
        rows = tx.run(f"SELECT COALESCE(MAX(version), 0) FROM {PLANS} WHERE id = ?", (spec["id"],))
        plan = parse_plan(spec, version=int(rows[0][0]) + 1)
        tx.run(
            f"INSERT INTO {PLANS} (id, version, effective_from, body, created_at) VALUES (?, ?, ?, ?, ?)",
            (plan.id, plan.version, plan.effective_from.isoformat(), json.dumps(plan.to_dict()), time.time()),
        )
    return plan


def plan_versions(store: SQLStore, plan_ids: Sequence[str] | None = None) -> dict[str, list[Plan]]:
    rows = store.fetch(f"SELECT id, version, body FROM {PLANS} ORDER BY id, version")
    out: dict[str, list[Plan]] = {}
    for pid, version, body in rows:
        if plan_ids is None or pid in plan_ids:
            out.setdefault(pid, []).append(parse_plan(json.loads(body), version=int(version)))
    return out


def subscribe(store: TransactionalStore, sub: Subscription) -> None:
    with transaction(store) as tx:
        tx.run(
            f"DELETE FROM {SUBSCRIPTIONS} WHERE customer_id = ? AND start_date = ?",
            (sub.customer_id, sub.start.isoformat()),
        )
        tx.run(
            f"INSERT INTO {SUBSCRIPTIONS} (customer_id, start_date, plan_id, created_at) VALUES (?, ?, ?, ?)",
            (sub.customer_id, sub.start.isoformat(), sub.plan_id, time.time()),
        )


def subscriptions(store: SQLStore, customer_id: str | None = None) -> dict[str, list[Subscription]]:
    q = f"SELECT customer_id, plan_id, start_date FROM {SUBSCRIPTIONS}"
    params: tuple[Any, ...] = ()
    if customer_id is not None:
        q, params = q + " WHERE customer_id = ?", (customer_id,)
    out: dict[str, list[Subscription]] = {}
    for cid, pid, start in store.fetch(sql(store.dialect, q + " ORDER BY customer_id, start_date"), params):
        out.setdefault(cid, []).append(Subscription(cid, pid, date.fromisoformat(start)))
    return out


# -- wallet grants ---------------------------------------------------------------------------------
def add_grant(store: SQLStore, g: Grant) -> None:
    store.execute(
        sql(
            store.dialect,
            f"INSERT INTO {GRANTS} (id, customer_id, amount, granted_at, expires_at, note, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
        ),
        (
            g.id,
            g.customer_id,
            str(g.amount),
            to_micros(g.granted_at),
            to_micros(g.expires_at) if g.expires_at else None,
            g.note,
            time.time(),
        ),
    )


def grants(store: SQLStore, customer_id: str | None = None) -> list[Grant]:
    q = f"SELECT id, customer_id, amount, granted_at, expires_at, note FROM {GRANTS}"
    params: tuple[Any, ...] = ()
    if customer_id is not None:
        q, params = q + " WHERE customer_id = ?", (customer_id,)
    return [
        Grant(
            r[0],
            r[1],
            Decimal(r[2]),
            from_micros(int(r[3])),
            from_micros(int(r[4])) if r[4] is not None else None,
            r[5],
        )
        for r in store.fetch(sql(store.dialect, q + " ORDER BY granted_at, id"), params)
    ]


def wallet_customers(store: SQLStore) -> list[str]:
    return [r[0] for r in store.fetch(f"SELECT DISTINCT customer_id FROM {GRANTS} ORDER BY 1")]


# -- usage sums from events ------------------------------------------------------------------------
def _event_sums(split: bool) -> str:
    """The usage sums over ``events``, in ``billing_rollup.columns`` order: with ``split``, each cost as its
    (micro-dollar, pico remainder) pair, since SQLite's SUM() of pico-dollars raises "integer overflow" past ~$9.2M."""
    tokens = ", ".join(f"COALESCE(SUM({t}), 0)" for t in billing_rollup.TOKENS)
    costs = ", ".join(split_sum_sql(c) if split else f"COALESCE(SUM({c}), 0)" for c in billing_rollup.COSTS)
    return f"COUNT(*), {tokens}, {costs}, SUM(CASE WHEN total_cost IS NULL THEN 1 ELSE 0 END)"


def _split(store: BillingStore) -> bool:
    """True when cost sums are read in two halves: on SQLite (PostgreSQL: NUMERIC; ClickHouse: Int128)."""
    return store.read_dialect.split_sums


def _usage(provider: str, model: str, r: Sequence[Any], split: bool) -> Usage:
    n = 1 + len(billing_rollup.TOKENS)
    counts = [int(v or 0) for v in r[:n]]
    if split:
        costs = [join_split(r[n + 2 * i], r[n + 2 * i + 1]) or 0 for i in range(len(billing_rollup.COSTS))]
    else:
        costs = [int(v or 0) for v in r[n : n + len(billing_rollup.COSTS)]]
    c_in, c_read, c_write, c_out, c_total = (Decimal(c) / PICO for c in costs)
    req, t_in, t_read, t_write, t_write_1h, t_out, t_reason = counts
    return Usage(provider, model, req, t_in, t_read, t_write, t_write_1h, t_out, t_reason,
                 c_in, c_read, c_write, c_out, c_total, int(r[-1] or 0))  # fmt: skip


def _dim(dimension: str) -> str:
    if dimension not in DIMENSIONS:  # the column name goes into SQL text: only known dimensions
        raise ValueError(f"customer dimension must be one of the event dimensions; got {dimension!r}")
    return dimension


def _pieces(start: datetime, end: datetime) -> tuple[tuple[int, int] | None, list[tuple[int, int]]]:
    """[start, end) as whole UTC hours (for the rollup) and the raw-event ranges left at both ends."""
    lo, hi = to_micros(start), to_micros(end)
    h0, h1 = -(-lo // billing_rollup.HOUR_US), hi // billing_rollup.HOUR_US
    if h0 >= h1:
        return None, [(lo, hi)]
    raw = [(a, b) for a, b in ((lo, h0 * billing_rollup.HOUR_US), (h1 * billing_rollup.HOUR_US, hi)) if a < b]
    return (h0, h1), raw


def _collect(
    rows: Sequence[Sequence[Any]], out: dict[str, dict[tuple[str, str], Usage]], keyed: bool, split: bool
) -> None:
    for r in rows:
        cid, rest = (str(r[0]), r[1:]) if keyed else ("", r)
        u = _usage(rest[0], rest[1], rest[2:], split)
        per = out.setdefault(cid, {})
        if (u.provider, u.model) in per:
            per[(u.provider, u.model)].add(u)
        else:
            per[(u.provider, u.model)] = u


class UsagePruned(BillingError):
    """The ClickHouse store's events of (part of) a billing range were pruned: it cannot be billed again."""


def _check_not_pruned(store: SQLStore, lo: int) -> None:
    from meterline.store.retention import pruned_before

    cut = pruned_before(store)
    if cut is not None and lo < cut:
        raise UsagePruned(
            "period",
            f"the ClickHouse store's events before {from_micros(cut).isoformat()} were pruned (meterline prune) "
            "and it keeps no hourly billing rollup, so usage from before then cannot be billed again "
            "(finalized invoices are kept as they were)",
        )


def _usage_rows(
    store: BillingStore, dimension: str, customer_id: str | None, start: datetime, end: datetime
) -> dict[str, list[Usage]]:
    col = _dim(dimension)
    hours, raw = _pieces(start, end)
    # ClickHouse keeps no hourly billing rollup: it sums the period from ``events FINAL`` (``store.fetch``
    # adds FINAL). A column store aggregates one customer's month from a few columns in milliseconds, and
    # FINAL counts a re-sent or re-priced event once by construction; a rollup fed by a materialized view
    # would count an event twice when two collectors race on a re-send or when re-pricing writes a newer
    # version of it, and would need rebuilding for every change of the customer dimension.
    rollup = store.keeps_billing_rollup
    if hours is not None and (not rollup or billing_rollup.rollup_dimension(store) != dimension):
        hours, raw = None, [(to_micros(start), to_micros(end))]  # no rollup for this dimension
    if not rollup:  # its pruned events are gone for billing
        _check_not_pruned(store, to_micros(start))
    who = f"{col} = ? AND " if customer_id is not None else f"{col} IS NOT NULL AND "
    key = f"{col}, " if customer_id is None else ""
    cust: tuple[Any, ...] = (customer_id,) if customer_id is not None else ()
    out: dict[str, dict[tuple[str, str], Usage]] = {}
    split = _split(store)
    sums = _event_sums(split)
    for lo, hi in raw:
        rows = store.fetch(
            sql(store.dialect, f"SELECT {key}provider, model, {sums} FROM events WHERE {who}start_time >= ? "
                               f"AND start_time < ? GROUP BY {key}provider, model"),
            (*cust, lo, hi),
        )  # fmt: skip
        _collect(rows, out, customer_id is None, split)
    if hours is not None:  # only where the store keeps the rollup: in the store's own dialect
        sums = billing_rollup.read_sums(store.dialect.name)
        rwho = "customer = ? AND " if customer_id is not None else ""
        rkey = "customer, " if customer_id is None else ""
        rows = store.fetch(
            sql(store.dialect, f"SELECT {rkey}provider, model, {sums} FROM {billing_rollup.ROLLUP} "
                               f"WHERE {rwho}hour >= ? AND hour < ? GROUP BY {rkey}provider, model"),
            (*cust, hours[0], hours[1]),
        )  # fmt: skip
        _collect(rows, out, customer_id is None, split)
    return {cid: list(per.values()) for cid, per in out.items()}


def usage(store: BillingStore, dimension: str, customer_id: str, start: datetime, end: datetime) -> list[Usage]:
    """Usage per (provider, model) of one customer's events with start_time in [start, end)."""
    return _usage_rows(store, dimension, customer_id, start, end).get("", [])


def usage_by_customer(store: BillingStore, dimension: str, start: datetime, end: datetime) -> dict[str, list[Usage]]:
    """Usage per customer and (provider, model) in [start, end), for every customer at once."""
    return _usage_rows(store, dimension, None, start, end)
