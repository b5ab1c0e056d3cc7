"""Invoices: periods in the customer's time zone, plan segments, totals (pure, exact Decimal).

Totals: every line amount and ``subtotal_usd`` are exact; ``credits_usd`` (wallet credit applied) is at
most the subtotal; ``total_usd = subtotal_usd - credits_usd`` rounded to cents, ROUND_HALF_UP. That
rounding is the only one on an invoice.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from meterline.billing.model import ZERO, BillingError, Customer, Plan, Rule, Subscription, iso
from meterline.billing.rating import Line, Usage, _s, choose_rule, rate

CENT = Decimal("0.01")
_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def parse_period(text: str) -> tuple[int, int]:
    m = _PERIOD.match(text or "")
    if not m:
        raise BillingError("period", f"expected YYYY-MM such as 2026-11; got {text!r}")
    return int(m.group(1)), int(m.group(2))


def period_of(when: datetime, tz: str) -> str:
    local = when.astimezone(ZoneInfo(tz))
    return f"{local.year:04d}-{local.month:02d}"


def next_period(period: str) -> str:
    y, m = parse_period(period)
    return f"{y + m // 12:04d}-{m % 12 + 1:02d}"


def period_dates(period: str) -> tuple[date, date]:
    """First day of the period and first day of the next one."""
    y, m = parse_period(period)
    return date(y, m, 1), date(y + m // 12, m % 12 + 1, 1)


def local_midnight(day: date, tz: str) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(tz))


@dataclasses.dataclass(frozen=True)
class Segment:
    start: date
    end: date  # exclusive
    plan: Plan | None

    def label(self) -> str:
        last = self.end - timedelta(days=1)
        plan = f"plan {self.plan.id} v{self.plan.version}" if self.plan else "no plan"
        return f"{self.start.isoformat()}..{last.isoformat()} {plan}"


def segments(period: str, subs: Sequence[Subscription], plans: Mapping[str, Sequence[Plan]]) -> list[Segment]:
    """The period cut where the subscription changes plan or the plan gets a new version."""
    start, end = period_dates(period)
    cuts = {start, end}
    for s in subs:
        if start < s.start < end:
            cuts.add(s.start)
    for versions in plans.values():
        for p in versions:
            if start < p.effective_from < end:
                cuts.add(p.effective_from)
    bounds = sorted(cuts)
    out: list[Segment] = []
    for a, b in itertools.pairwise(bounds):
        sub = next((s for s in sorted(subs, key=lambda s: s.start, reverse=True) if s.start <= a), None)
        plan = None
        if sub is not None:
            plan = next(
                (
                    p
                    for p in sorted(
                        plans.get(sub.plan_id, ()), key=lambda p: (p.effective_from, p.version), reverse=True
                    )
                    if p.effective_from <= a
                ),
                None,
            )
        if out and out[-1].plan == plan:
            out[-1] = Segment(out[-1].start, b, plan)  # a cut that changes nothing (another plan's version)
        else:
            out.append(Segment(a, b, plan))
    return out


@dataclasses.dataclass
class Invoice:
    customer: Customer
    period: str
    lines: list[Line]
    provider_cost: Decimal
    credits: Decimal = ZERO
    unpriced_events: int = 0
    requests: int = 0
    # calls without a provider price rated by a markup rule (billed as 0 plus fees): their count and models
    unpriced_billed: int = 0
    unpriced_models: list[str] = dataclasses.field(default_factory=list)
    number: str | None = None  # set when finalized
    status: str = "draft"
    issued_at: datetime | None = None
    currency: str = "USD"

    @property
    def subtotal(self) -> Decimal:
        return sum((ln.amount for ln in self.lines), ZERO)

    @property
    def usage_subtotal(self) -> Decimal:
        """The subtotal without adjustment lines: what this period's own usage was billed."""
        return sum((ln.amount for ln in self.lines if ln.kind != "adjustment"), ZERO)

    @property
    def margin(self) -> Decimal:
        return self.usage_subtotal - self.provider_cost

    @property
    def total(self) -> Decimal:
        return (self.subtotal - self.credits).quantize(CENT, rounding=ROUND_HALF_UP)

    def to_dict(self) -> dict[str, Any]:
        start, end = period_dates(self.period)
        tz = self.customer.timezone
        return {
            "number": self.number,
            "status": self.status,
            "customer": self.customer.id,
            "customer_name": self.customer.name,
            "customer_email": self.customer.email,
            "period": self.period,
            "timezone": tz,
            "period_start": iso(local_midnight(start, tz)),
            "period_end": iso(local_midnight(end, tz)),
            "issued_at": iso(self.issued_at) if self.issued_at else None,
            "currency": self.currency,
            "requests": self.requests,
            "unpriced_events": self.unpriced_events,
            "unpriced_billed_events": self.unpriced_billed,
            "unpriced_models": list(self.unpriced_models),
            "lines": [ln.to_dict() for ln in self.lines],
            "provider_cost_usd": _s(self.provider_cost),
            "margin_usd": _s(self.margin),
            "subtotal_usd": _s(self.subtotal),
            "credits_usd": _s(self.credits),
            "total_usd": str(self.total),
        }


def build(
    customer: Customer,
    period: str,
    usage_by_segment: Sequence[tuple[Segment, Sequence[Usage]]],
    default_rules: Sequence[Rule] = (),
    adjustments: Sequence[Line] = (),
    credits_available: Decimal = ZERO,
) -> Invoice:
    """The invoice of one customer and period: usage lines per segment, the minimum commitment of the plan
    in force at the end of the period, adjustment lines for earlier periods, wallet credit applied."""
    lines: list[Line] = []
    cost = ZERO
    unpriced = requests = unpriced_billed = 0
    unpriced_models: set[str] = set()
    for seg, usages in usage_by_segment:
        chain = [customer.overrides, seg.plan.rules if seg.plan else (), default_rules]
        lines += rate(usages, chain, seg.label() if len(usage_by_segment) > 1 or seg.plan else None)
        for u in usages:
            cost += u.provider_cost
            unpriced += u.unpriced
            if u.unpriced and choose_rule(u.provider, u.model, chain).is_markup:
                unpriced_billed += u.unpriced
                unpriced_models.add(f"{u.provider}/{u.model}")
            requests += u.requests
    last_plan = usage_by_segment[-1][0].plan if usage_by_segment else None
    used = sum((ln.amount for ln in lines), ZERO)
    if last_plan is not None and used < last_plan.minimum_usd:
        short = last_plan.minimum_usd - used
        lines.append(
            Line(
                "minimum",
                f"minimum monthly commitment of plan {last_plan.id} ({_s(last_plan.minimum_usd)} USD)",
                Decimal(1),
                "USD",
                short,
                short,
            )
        )
    lines += adjustments
    inv = Invoice(
        customer,
        period,
        lines,
        cost,
        unpriced_events=unpriced,
        requests=requests,
        unpriced_billed=unpriced_billed,
        unpriced_models=sorted(unpriced_models),
    )
    inv.credits = max(ZERO, min(credits_available, inv.subtotal))
    return inv


def adjustment(period: str, number: str, amount: Decimal) -> Line:
    return Line(
        "adjustment",
        f"adjustment for {period} (invoice {number}): usage recorded or re-priced after it was finalized",
        Decimal(1),
        "USD",
        amount,
        amount,
        adjusts_period=period,
    )
