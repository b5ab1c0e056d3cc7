"""Invoice lines from usage aggregates and rate-card rules (pure, exact Decimal).

Input: one :class:`Usage` per (provider, model) for a stretch of time in which one plan version is in
force (a *segment*). Each (provider, model) is priced by the first rule that matches it, looked up in
this order: the customer's overrides, the plan's rules, the default rate card; when none matches, the
calls are billed at provider cost (markup 0 %). Line amounts are exact (no rounding anywhere here).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from meterline.billing.model import MTOK, ZERO, ClassPrice, Rule

PASS_THROUGH = Rule(model="*", markup_percent=ZERO, spec={"model": "*", "markup_percent": "0"})


@dataclasses.dataclass
class Usage:
    """Sums over the calls of one (provider, model) in a segment."""

    provider: str
    model: str
    requests: int = 0
    input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0  # 5m + 1h
    cache_write_1h_tokens: int = 0
    output_tokens: int = 0  # includes reasoning
    reasoning_tokens: int = 0
    input_cost: Decimal = ZERO
    cache_read_cost: Decimal = ZERO
    cache_write_cost: Decimal = ZERO
    output_cost: Decimal = ZERO
    provider_cost: Decimal = ZERO  # total of the priced calls
    unpriced: int = 0  # calls without a provider cost

    def tokens(self, token_class: str, *, reasoning_apart: bool) -> int:
        if token_class == "input":
            return self.input_tokens
        if token_class == "cache_read":
            return self.cache_read_tokens
        if token_class == "cache_write_5m":
            return self.cache_write_tokens - self.cache_write_1h_tokens
        if token_class == "cache_write_1h":
            return self.cache_write_1h_tokens
        if token_class == "output":
            return self.output_tokens - (self.reasoning_tokens if reasoning_apart else 0)
        if token_class == "reasoning":
            return self.reasoning_tokens if reasoning_apart else 0
        raise ValueError(token_class)

    def add(self, other: Usage) -> None:
        for f in dataclasses.fields(self):
            if f.name not in ("provider", "model"):
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclasses.dataclass(frozen=True)
class Line:
    kind: str  # usage | markup | fee | minimum | adjustment
    description: str
    quantity: Decimal
    unit: str  # "1M tokens" | "USD of provider cost" | "requests" | "USD"
    unit_price: Decimal
    amount: Decimal  # quantity * unit_price, exact
    provider: str | None = None
    model: str | None = None
    token_class: str | None = None
    tokens: int | None = None
    segment: str | None = None  # "2026-11-01..2026-11-15 plan pro v1"
    adjusts_period: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "description": self.description,
            "provider": self.provider,
            "model": self.model,
            "token_class": self.token_class,
            "tokens": self.tokens,
            "quantity": _s(self.quantity),
            "unit": self.unit,
            "unit_price": _s(self.unit_price),
            "amount": _s(self.amount),
            "segment": self.segment,
            "adjusts_period": self.adjusts_period,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Line:
        return cls(
            kind=d["kind"],
            description=d["description"],
            quantity=Decimal(d["quantity"]),
            unit=d["unit"],
            unit_price=Decimal(d["unit_price"]),
            amount=Decimal(d["amount"]),
            provider=d.get("provider"),
            model=d.get("model"),
            token_class=d.get("token_class"),
            tokens=d.get("tokens"),
            segment=d.get("segment"),
            adjusts_period=d.get("adjusts_period"),
        )


def _s(d: Decimal) -> str:
    """Plain notation, no exponent, trailing zeros kept only as far as the value needs."""
    text = format(d, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


plain_decimal = _s  # public name (the gateway's wallet messages use it)


def choose_rule(provider: str, model: str, chain: Sequence[Sequence[Rule]]) -> Rule:
    for rules in chain:
        for rule in rules:
            if rule.matches(provider, model):
                return rule
    return PASS_THROUGH


def tier_parts(price: ClassPrice, tokens: int) -> list[tuple[int, Decimal, str]]:
    """(tokens, USD per 1M, label) parts of a class's quantity under its tiers."""
    if tokens <= 0:
        return []
    tiers = price.tiers
    if len(tiers) == 1:
        return [(tokens, tiers[0].mtok, "")]
    if price.mode == "volume":
        for t in tiers:
            if t.up_to is None or tokens <= t.up_to:
                return [(tokens, t.mtok, f"volume tier up to {t.up_to:,}" if t.up_to else "volume tier, top")]
    parts = []
    done = 0
    for t in tiers:
        end = tokens if t.up_to is None else min(tokens, t.up_to)
        if end > done:
            label = f"tokens {done + 1:,}-{end:,}" if t.up_to is not None else f"tokens above {done:,}"
            if t.mtok == 0 and done == 0:
                label = f"free allowance ({t.up_to:,} tokens)" if t.up_to else "free"
            parts.append((end - done, t.mtok, label))
            done = end
        if done >= tokens:
            break
    return parts


_PRICE_CLASSES = ("input", "cache_read", "cache_write_5m", "cache_write_1h", "output", "reasoning")
_COST_CLASSES = (
    ("input", "input_cost"),
    ("cache_read", "cache_read_cost"),
    ("cache_write", "cache_write_cost"),
    ("output", "output_cost"),
)


def rate(usages: Iterable[Usage], chain: Sequence[Sequence[Rule]], segment: str | None = None) -> list[Line]:
    """The lines of one segment, per (provider, model) x token class, in a stable order."""
    lines: list[Line] = []
    for u in sorted(usages, key=lambda x: (x.provider, x.model)):
        rule = choose_rule(u.provider, u.model, chain)
        name = f"{u.provider}/{u.model}"
        if rule.is_markup:
            assert rule.markup_percent is not None
            factor = 1 + rule.markup_percent / 100
            for cls, attr in _COST_CLASSES:
                cost: Decimal = getattr(u, attr)
                if cost:
                    lines.append(
                        Line(
                            "markup",
                            f"{name} {cls} at provider cost + {_s(rule.markup_percent)}%",
                            cost,
                            "USD of provider cost",
                            factor,
                            cost * factor,
                            u.provider,
                            u.model,
                            cls,
                            segment=segment,
                        )
                    )
        else:
            reasoning_apart = rule.prices is not None and "reasoning" in rule.prices
            for cls in _PRICE_CLASSES:
                price = rule.price_of(cls)
                tokens = u.tokens(cls, reasoning_apart=reasoning_apart)
                if price is None or tokens <= 0:
                    continue
                # graduated tiers of a class count the class's tokens in this segment
                for n, mtok, label in tier_parts(price, tokens):
                    qty = Decimal(n) / MTOK
                    desc = f"{name} {cls}" + (f" ({label})" if label else "")
                    lines.append(
                        Line("usage", desc, qty, "1M tokens", mtok, qty * mtok, u.provider, u.model, cls, n, segment)
                    )
        if rule.fixed_per_request and u.requests:
            fee = rule.fixed_per_request
            lines.append(
                Line(
                    "fee",
                    f"{name} per-request fee",
                    Decimal(u.requests),
                    "requests",
                    fee,
                    u.requests * fee,
                    u.provider,
                    u.model,
                    None,
                    None,
                    segment,
                )
            )
    return lines


def event_charge(rule: Rule, usage: Usage) -> Decimal:
    """What one call costs the customer at the rule's highest unit prices (no allowance, no tier
    discount): the gateway's conservative wallet counter, never below the invoiced amount."""
    if rule.is_markup:
        assert rule.markup_percent is not None
        return usage.provider_cost * (1 + rule.markup_percent / 100) + rule.fixed_per_request * usage.requests
    reasoning_apart = rule.prices is not None and "reasoning" in rule.prices
    total = rule.fixed_per_request * usage.requests
    for cls in _PRICE_CLASSES:
        price = rule.price_of(cls)
        if price is not None:
            total += Decimal(usage.tokens(cls, reasoning_apart=reasoning_apart)) * price.highest / MTOK
    return total
