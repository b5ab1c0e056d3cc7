"""Billing operations on a store: invoice preview and finalize, wallet balance, grants, credit notes.

This module joins the store's reads (``meterline.billing.store*``, where the SQL lives) and the pure
rating/invoice/wallet logic. Every function takes a store (``store.base.BillingStore`` or a narrower protocol).

Adjustments: a finalized invoice never changes. When an earlier period, rated again now (events that
arrived late, or a re-priced model), bills differently from what its invoice said (minus adjustments
already invoiced for it), the difference goes on the next invoice as an ``adjustment`` line. Periods up to
``ADJUST_LOOKBACK`` months back are checked.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from meterline.billing import invoice as invoicing
from meterline.billing import invoice_store
from meterline.billing import store as billing_store
from meterline.billing import wallet as wallets
from meterline.billing.model import (
    ZERO,
    BillingError,
    Customer,
    FinalizeRefused,
    Grant,
    Plan,
    Rule,
    Subscription,
    money,
)
from meterline.billing.rating import Line, Usage
from meterline.core.timeutil import from_micros
from meterline.store.base import BillingStore, SQLStore, TransactionalStore

ADJUST_LOOKBACK = 3
DEFAULT_PLAN = "default"  # a plan with this id is the default rate card (used after overrides and the plan)


def now() -> datetime:
    """The billing clock: every "now" of this module comes from here (tests replace it to fix the date)."""
    return datetime.now(timezone.utc)


def _now(given: datetime | None = None) -> datetime:
    return given if given is not None else now()


class Context:
    """What rating a customer needs besides its usage, read once per operation."""

    def __init__(self, store: BillingStore) -> None:
        self.store = store
        self.dimension = billing_store.customer_dimension(store)
        self.plans = billing_store.plan_versions(store)
        self.subs = billing_store.subscriptions(store)
        self._history: dict[str, Any] | None = None
        self._grants: dict[str, list[Grant]] | None = None
        self._debits: dict[str, list[tuple[int, Decimal]]] | None = None

    def default_rules(self, seg: invoicing.Segment) -> Sequence[Rule]:
        versions = [p for p in self.plans.get(DEFAULT_PLAN, ()) if p.effective_from <= seg.start]
        return max(versions, key=lambda p: (p.effective_from, p.version)).rules if versions else ()

    def segments(self, customer: Customer, period: str) -> list[invoicing.Segment]:
        subs = self.subs.get(customer.id, [])
        used = {s.plan_id for s in subs}
        return invoicing.segments(period, subs, {k: v for k, v in self.plans.items() if k in used})

    def history(self, cid: str) -> tuple[list[tuple[str, str, Decimal]], dict[str, Decimal]]:
        if self._history is None:
            self._history = invoice_store.customer_history(self.store)
        return self._history.get(cid, ([], {}))

    def grants(self, cid: str) -> list[Grant]:
        if self._grants is None:
            self._grants = {}
            for g in billing_store.grants(self.store):
                self._grants.setdefault(g.customer_id, []).append(g)
        return self._grants.get(cid, [])

    def debits(self, cid: str) -> list[tuple[datetime, Decimal]]:
        if self._debits is None:
            self._debits = invoice_store.credit_debits(self.store)
        return [(from_micros(e), c) for e, c in self._debits.get(cid, [])]


def _bounds(seg: invoicing.Segment, tz: str) -> tuple[datetime, datetime]:
    return invoicing.local_midnight(seg.start, tz), invoicing.local_midnight(seg.end, tz)


def _customer(store: SQLStore, cid: str) -> Customer:
    c = billing_store.get_customer(store, cid)
    if c is None:
        raise BillingError("customer", f"no customer {cid!r} (create it with `meterline customers create`)")
    return c


def _rated(
    ctx: Context,
    c: Customer,
    period: str,
    usage: Sequence[Sequence[Usage]] | None = None,
    adjustments: Sequence[Line] = (),
    credits: Decimal = ZERO,
) -> invoicing.Invoice:
    parts = []
    for i, seg in enumerate(ctx.segments(c, period)):
        got = usage[i] if usage is not None else None
        if got is None:
            got = billing_store.usage(ctx.store, ctx.dimension, c.id, *_bounds(seg, c.timezone))
        parts.append((seg, got))
    default = ctx.default_rules(parts[-1][0]) if parts else ()
    return invoicing.build(c, period, parts, default, adjustments, credits)


def _adjustments(ctx: Context, c: Customer, period: str) -> list[Line]:
    invoices, done = ctx.history(c.id)
    y, m = invoicing.parse_period(period)
    oldest = f"{y - (1 if m <= ADJUST_LOOKBACK else 0):04d}-{(m - ADJUST_LOOKBACK - 1) % 12 + 1:02d}"
    out = []
    for p, number, billed in invoices:
        if oldest <= p < period:
            try:
                now = _rated(ctx, c, p).usage_subtotal
            except billing_store.UsagePruned:
                continue  # its events were pruned (ClickHouse store): nothing left to adjust it by
            diff = now - billed - done.get(p, ZERO)
            if diff != 0:
                out.append(invoicing.adjustment(p, number, diff))
    return out


def _credits(ctx: Context, c: Customer, period: str, at: datetime) -> Decimal:
    """Wallet credit usable by this period's invoice finalized (or previewed) at ``at``: what the grants
    made up to ``at`` and still active then hold after the invoices finalized before it, whatever period
    those covered (a grant made after the period ended still pays it)."""
    grants = [g for g in ctx.grants(c.id) if g.granted_at <= at]
    if not grants:
        return ZERO
    return max(ZERO, wallets.state(grants, ctx.debits(c.id), at).balance)


def draft(
    store: BillingStore, customer_id: str, period: str, ctx: Context | None = None, now: datetime | None = None
) -> invoicing.Invoice:
    ctx = ctx or Context(store)
    c = _customer(store, customer_id)
    invoicing.parse_period(period)
    at = _now(now)
    return _rated(ctx, c, period, adjustments=_adjustments(ctx, c, period), credits=_credits(ctx, c, period, at))


def preview(store: BillingStore, customer_id: str, period: str) -> dict[str, Any]:
    """The live draft invoice (or the stored one when the period is already finalized)."""
    invoicing.parse_period(period)
    for row in invoice_store.list_invoices(store, customer=customer_id, period=period):
        body = invoice_store.get_invoice(store, row["number"])
        if body is not None:
            return body
    return draft(store, customer_id, period).to_dict()


def finalize(
    store: BillingStore,
    period: str,
    *,
    customers: Sequence[str] | None = None,
    now: datetime | None = None,
    batch: int = 1000,
    force: bool = False,
    allow_unpriced: bool = False,
) -> list[invoicing.Invoice]:
    """Finalize ``period`` for every customer with usage or a plan in it (or the ones named); a customer
    already finalized for the period is skipped. Invoices are numbered in customer id order.

    Refused (``BillingError``) when the period has not ended yet in a customer's time zone (unless
    ``force``) and when an invoice would bill calls without a provider price (unless ``allow_unpriced``)."""
    start, end = invoicing.period_dates(period)
    now = _now(now)
    ctx = Context(store)
    if billing_store.get_setting(store, "auto_create_customers", "false") == "true" and customers is None:
        # customers seen in the period's events (UTC bounds widened by a day for other time zones)
        wide = billing_store.usage_by_customer(
            store,
            ctx.dimension,
            invoicing.local_midnight(start, "Etc/GMT-14"),
            invoicing.local_midnight(end, "Etc/GMT+12"),
        )
        billing_store.add_customers(store, list(wide))
    known = {c.id: c for c in billing_store.list_customers(store)}
    if customers is not None:
        missing = [x for x in customers if x not in known]
        if missing:
            raise BillingError("customers", f"unknown customer(s): {', '.join(missing)}")
        known = {x: known[x] for x in customers}
    done = invoice_store.finalized_customers(store, period)
    todo = [c for cid, c in sorted(known.items()) if cid not in done]
    bulk: dict[str, dict[str, list[Usage]]] = {}
    for tz in sorted({c.timezone for c in todo}):
        bulk[tz] = billing_store.usage_by_customer(
            store, ctx.dimension, invoicing.local_midnight(start, tz), invoicing.local_midnight(end, tz)
        )
    out: list[invoicing.Invoice] = []
    ends: list[datetime] = []
    for c in todo:
        segs = ctx.segments(c, period)
        usage = [bulk[c.timezone].get(c.id, [])] if len(segs) == 1 else None
        inv = _rated(ctx, c, period, usage, _adjustments(ctx, c, period), _credits(ctx, c, period, now))
        if inv.requests == 0 and not inv.lines:
            continue  # no usage, no plan minimum, nothing to adjust: no invoice
        out.append(inv)
        ends.append(invoicing.local_midnight(end, c.timezone))
    running = [inv.customer.id for inv, e in zip(out, ends, strict=True) if e > now]
    if running and not force:
        raise FinalizeRefused(
            "period",
            f"period {period} has not ended yet for {', '.join(running)} (finalize after it ends, or force it)",
        )
    unpriced = [inv for inv in out if inv.unpriced_billed]
    if unpriced and not allow_unpriced:
        detail = "; ".join(
            f"{inv.customer.id}: {inv.unpriced_billed} call(s) of {', '.join(inv.unpriced_models) or '?'}"
            for inv in unpriced
        )
        raise FinalizeRefused(
            "unpriced",
            f"calls without a provider price would be billed as 0 ({detail}); price the models "
            "(meterline prices) or allow unpriced usage explicitly",
        )
    saved: list[invoicing.Invoice] = []
    for i in range(0, len(out), batch):
        saved += _save(store, period, out[i : i + batch], now, ends[i : i + batch])
    return saved


def _save(
    store: BillingStore, period: str, invs: list[invoicing.Invoice], now: datetime, ends: list[datetime]
) -> list[invoicing.Invoice]:
    """Store ``invs``; when another finalize stored some of these customers' invoices meanwhile (the
    unique (customer, period) key refused the batch, which rolled back), skip those customers and store the
    rest, like a sequential re-finalize."""
    for _ in range(3):
        try:
            invoice_store.save_finalized(store, invs, now, ends)
            return invs
        except Exception as exc:
            if not _duplicate(exc):
                raise
        for inv in invs:
            inv.number, inv.status, inv.issued_at = None, "draft", None
        done = invoice_store.finalized_customers(store, period)
        keep = [k for k, inv in enumerate(invs) if inv.customer.id not in done]
        invs, ends = [invs[k] for k in keep], [ends[k] for k in keep]
    invoice_store.save_finalized(store, invs, now, ends)
    return invs


def _duplicate(exc: BaseException) -> bool:
    """A unique-key violation from any store driver (sqlite3, psycopg, ...)."""
    text = f"{type(exc).__name__} {exc}".lower()
    return "unique" in text or "integrity" in text or "duplicate" in text


# -- wallets ---------------------------------------------------------------------------------------
def grant(
    store: SQLStore,
    customer_id: str,
    amount: Any,
    *,
    expires_at: datetime | None = None,
    note: str = "",
    granted_at: datetime | None = None,
) -> Grant:
    _customer(store, customer_id)
    value = money(amount, "amount_usd")
    if value <= 0:
        raise BillingError("amount_usd", "must be positive")
    when = _now(granted_at)
    if expires_at is not None and expires_at <= when:
        raise BillingError("expires_at", "must be after the grant")
    g = Grant(str(uuid.uuid4()), customer_id, value, when, expires_at, note)
    billing_store.add_grant(store, g)
    return g


def unbilled(ctx: Context, c: Customer, now: datetime) -> Decimal:
    """Subtotal of the periods not finalized yet, up to now's period (what the wallet has to cover)."""
    current = invoicing.period_of(now, c.timezone)
    last = invoice_store.last_finalized_period(ctx.store, c.id)
    grants = ctx.grants(c.id)
    first = (
        invoicing.next_period(last)
        if last
        else min((invoicing.period_of(g.granted_at, c.timezone) for g in grants), default=current)
    )
    y, m = invoicing.parse_period(current)
    first = max(first, f"{y - 2 + (m == 12):04d}-{m % 12 + 1:02d}")  # at most 24 open periods back
    total = ZERO
    p = first
    while p <= current:
        inv = _rated(ctx, c, p, adjustments=_adjustments(ctx, c, p))
        # the open period's minimum commitment is only due at its end: not taken from the wallet before
        total += sum((ln.amount for ln in inv.lines if p < current or ln.kind != "minimum"), ZERO)
        p = invoicing.next_period(p)
    return total


def wallet(store: BillingStore, customer_id: str, now: datetime | None = None) -> dict[str, Any]:
    now = _now(now)
    ctx = Context(store)
    c = _customer(store, customer_id)
    pending = unbilled(ctx, c, now)
    st = wallets.state(ctx.grants(c.id), [*ctx.debits(c.id), (now, pending)], now)
    return {
        "customer": c.id,
        "balance_usd": _plain(st.balance),
        "granted_usd": _plain(st.granted),
        "unbilled_usage_usd": _plain(pending),
        "overspend_usd": _plain(st.overspend),
        "grants": [{**g.to_dict(), "remaining_usd": _plain(st.remaining.get(g.id, ZERO))} for g in ctx.grants(c.id)],
    }


def balance(store: BillingStore, customer_id: str, now: datetime | None = None) -> Decimal:
    return Decimal(wallet(store, customer_id, now)["balance_usd"])


def credit_note(store: TransactionalStore, number: str, amount: Any, reason: str) -> dict[str, Any]:
    """A credit note against a finalized invoice: the amount goes to the customer's wallet as a grant
    (used by the next invoices); credit notes of one invoice never exceed its subtotal."""
    body = invoice_store.get_invoice(store, number)
    if body is None:
        raise BillingError("invoice", f"no finalized invoice {number!r}")
    value = money(amount, "amount_usd")
    if value <= 0:
        raise BillingError("amount_usd", "must be positive")
    if not reason:
        raise BillingError("reason", "required")
    now = _now()
    gid = str(uuid.uuid4())
    cn = invoice_store.add_credit_note(
        store, number, body["customer"], value, reason, gid, int(now.timestamp() * 1e6), Decimal(body["subtotal_usd"])
    )
    if cn is None:
        raise BillingError("amount_usd", f"credit notes of {number} would exceed its subtotal {body['subtotal_usd']}")
    billing_store.add_grant(store, Grant(gid, body["customer"], value, now, None, f"credit note {cn} for {number}"))
    return {
        "number": cn,
        "invoice": number,
        "customer": body["customer"],
        "amount_usd": _plain(value),
        "reason": reason,
        "wallet_grant": gid,
    }


def subscribe(store: TransactionalStore, customer_id: str, plan_id: str, start: Any) -> Subscription:
    from meterline.billing.model import parse_date

    _customer(store, customer_id)
    if plan_id not in billing_store.plan_versions(store, [plan_id]):
        raise BillingError("plan", f"no plan {plan_id!r}")
    sub = Subscription(customer_id, plan_id, parse_date(start, "start"))
    billing_store.subscribe(store, sub)
    return sub


def plans(store: SQLStore) -> dict[str, list[Plan]]:
    return billing_store.plan_versions(store)


def _plain(d: Decimal) -> str:
    from meterline.billing.rating import _s

    return _s(d)
