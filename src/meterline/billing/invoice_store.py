"""Finalized invoices, their lines, credit notes and the number sequence (SQLite and PostgreSQL).

Numbers are taken from ``billing_sequences`` inside the transaction that writes the invoices, so they are
sequential without gaps even with several collectors finalizing at once (the row lock serialises them).
An invoice row is inserted once and never updated; ``(customer_id, period)`` is unique.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from meterline.billing.invoice import Invoice
from meterline.billing.store import CREDIT_NOTES, INVOICES, LINES, SEQUENCES
from meterline.core.timeutil import to_micros
from meterline.store.base import SQLStore, TransactionalStore
from meterline.store.sql import Tx, sql, transaction

INVOICE_PREFIX = "INV-"
CREDIT_PREFIX = "CN-"


def _take_numbers(tx: Tx, name: str, n: int) -> int:
    """Reserve ``n`` numbers of a sequence; the first one."""
    if tx.store.dialect.name == "postgresql":
        tx.run(f"INSERT INTO {SEQUENCES} (name, value) VALUES (?, 0) ON CONFLICT (name) DO NOTHING", (name,))
    else:
        tx.run(f"INSERT OR IGNORE INTO {SEQUENCES} (name, value) VALUES (?, 0)", (name,))
    tx.run(f"UPDATE {SEQUENCES} SET value = value + ? WHERE name = ?", (n, name))
    return int(tx.run(f"SELECT value FROM {SEQUENCES} WHERE name = ?", (name,))[0][0]) - n + 1


def finalized_customers(store: SQLStore, period: str) -> set[str]:
    rows = store.fetch(sql(store.dialect, f"SELECT customer_id FROM {INVOICES} WHERE period = ?"), (period,))
    return {r[0] for r in rows}


def save_finalized(
    store: TransactionalStore, invoices: Sequence[Invoice], issued_at: datetime, period_ends: Sequence[datetime]
) -> None:
    """Number and store ``invoices`` (all or none). Each gets ``number``, ``status`` and ``issued_at``."""
    if not invoices:
        return
    with transaction(store) as tx:
        first = _take_numbers(tx, "invoice", len(invoices))
        rows, lines = [], []
        for i, (inv, end) in enumerate(zip(invoices, period_ends, strict=True)):
            inv.number = f"{INVOICE_PREFIX}{first + i:06d}"
            inv.status, inv.issued_at = "finalized", issued_at
            body = inv.to_dict()
            rows.append(
                (
                    inv.number,
                    inv.customer.id,
                    inv.period,
                    to_micros(end),
                    to_micros(issued_at),
                    body["subtotal_usd"],
                    str(inv.usage_subtotal),
                    body["credits_usd"],
                    body["total_usd"],
                    body["provider_cost_usd"],
                    json.dumps(body, separators=(",", ":")),
                )
            )
            for pos, ln in enumerate(body["lines"]):
                lines.append(
                    (
                        inv.number,
                        pos,
                        ln["kind"],
                        ln["description"],
                        ln["provider"],
                        ln["model"],
                        ln["token_class"],
                        ln["quantity"],
                        ln["unit"],
                        ln["unit_price"],
                        ln["amount"],
                        ln["adjusts_period"],
                    )
                )
        tx.many(
            f"INSERT INTO {INVOICES} (number, customer_id, period, period_end, issued_at, subtotal, "
            "usage_subtotal, credits, total, provider_cost, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        tx.many(
            f"INSERT INTO {LINES} (invoice_number, position, kind, description, provider, model, token_class, "
            "quantity, unit, unit_price, amount, adjusts_period) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            lines,
        )


def get_invoice(store: SQLStore, number: str) -> dict[str, Any] | None:
    rows = store.fetch(sql(store.dialect, f"SELECT body FROM {INVOICES} WHERE number = ?"), (number,))
    return dict(json.loads(rows[0][0])) if rows else None


def list_invoices(store: SQLStore, *, customer: str | None = None, period: str | None = None) -> list[dict[str, Any]]:
    where, params = [], []
    if customer:
        where.append("customer_id = ?")
        params.append(customer)
    if period:
        where.append("period = ?")
        params.append(period)
    q = f"SELECT number, customer_id, period, subtotal, credits, total FROM {INVOICES}"
    if where:
        q += " WHERE " + " AND ".join(where)
    rows = store.fetch(sql(store.dialect, q + " ORDER BY number"), params)
    keys = ("number", "customer", "period", "subtotal_usd", "credits_usd", "total_usd")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def customer_history(
    store: SQLStore, customer: str | None = None
) -> dict[str, tuple[list[tuple[str, str, Decimal]], dict[str, Decimal]]]:
    """Per customer (one, or all when None): the finalized invoices as (period, number, usage_subtotal),
    and per earlier period the sum of the adjustment lines already invoiced for it."""
    where, params = ("WHERE customer_id = ?", (customer,)) if customer else ("", ())
    invs = store.fetch(
        sql(
            store.dialect, f"SELECT customer_id, period, number, usage_subtotal FROM {INVOICES} {where} ORDER BY period"
        ),
        params,
    )
    adj = store.fetch(
        sql(
            store.dialect,
            f"SELECT i.customer_id, l.adjusts_period, l.amount FROM {LINES} l JOIN {INVOICES} i "
            f"ON i.number = l.invoice_number WHERE l.kind = 'adjustment'"
            + (" AND i.customer_id = ?" if customer else ""),
        ),
        params,
    )
    out: dict[str, tuple[list[tuple[str, str, Decimal]], dict[str, Decimal]]] = {}
    for c, p, n, s in invs:
        out.setdefault(c, ([], {}))[0].append((p, n, Decimal(s)))
    for c, p, amount in adj:
        done = out.setdefault(c, ([], {}))[1]
        done[p] = done.get(p, Decimal(0)) + Decimal(amount)
    return out


def credit_debits(store: SQLStore, customer: str | None = None) -> dict[str, list[tuple[int, Decimal]]]:
    """Per customer: (issued at micros, credits applied) of the finalized invoices, the wallet debits (a
    grant pays invoices in the order they are finalized, whatever period they cover)."""
    where, params = ("WHERE customer_id = ?", (customer,)) if customer else ("", ())
    rows = store.fetch(sql(store.dialect, f"SELECT customer_id, issued_at, credits FROM {INVOICES} {where}"), params)
    out: dict[str, list[tuple[int, Decimal]]] = {}
    for c, e, cr in rows:
        if Decimal(cr) != 0:
            out.setdefault(c, []).append((int(e), Decimal(cr)))
    return out


def last_finalized_period(store: SQLStore, customer: str) -> str | None:
    rows = store.fetch(sql(store.dialect, f"SELECT MAX(period) FROM {INVOICES} WHERE customer_id = ?"), (customer,))
    return str(rows[0][0]) if rows and rows[0][0] else None


def add_credit_note(
    store: TransactionalStore,
    invoice_number: str,
    customer: str,
    amount: Decimal,
    reason: str,
    grant_id: str,
    issued_us: int,
    limit: Decimal,
) -> str | None:
    """Store a credit note when the invoice's credit notes stay within ``limit``; its number, else None."""
    with transaction(store) as tx:
        done = sum(
            (
                Decimal(r[0])
                for r in tx.run(f"SELECT amount FROM {CREDIT_NOTES} WHERE invoice_number = ?", (invoice_number,))
            ),
            Decimal(0),
        )
        if done + amount > limit:
            return None
        number = f"{CREDIT_PREFIX}{_take_numbers(tx, 'credit_note', 1):06d}"
        tx.run(
            f"INSERT INTO {CREDIT_NOTES} (number, invoice_number, customer_id, amount, reason, grant_id, issued_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (number, invoice_number, customer, str(amount), reason, grant_id, issued_us),
        )
    return number


def credit_notes(store: SQLStore, invoice_number: str | None = None) -> list[dict[str, Any]]:
    q = f"SELECT number, invoice_number, customer_id, amount, reason, grant_id FROM {CREDIT_NOTES}"
    params: tuple[Any, ...] = ()
    if invoice_number:
        q, params = q + " WHERE invoice_number = ?", (invoice_number,)
    keys = ("number", "invoice", "customer", "amount_usd", "reason", "wallet_grant")
    return [dict(zip(keys, r, strict=True)) for r in store.fetch(sql(store.dialect, q + " ORDER BY number"), params)]
