"""Billing records as plain values: customers, rate-card rules, plan versions, subscriptions, wallet grants.

Everything here is pure Python and Decimal (no SQL, no I/O). Rules and plans are parsed from the JSON/TOML
shapes users write (CLI files, API bodies); a bad field raises :class:`BillingError` naming it.

A **rule** prices the calls of the models it matches (exact id or glob, optionally one provider), either
  - per token class in USD per 1M tokens (``prices``), each class a flat price or tiers
    (``graduated``: each part of the quantity at its tier's price; ``volume``: the whole quantity at the
    price of the tier it reaches), with an optional free allowance per class (``free_tokens``), or
  - as a markup over the provider cost: ``markup_percent`` plus ``fixed_per_request`` USD.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from meterline.core.timeutil import parse_zone

MTOK = Decimal(1_000_000)
ZERO = Decimal(0)
# token classes of a price rule; cache_write_5m/1h split the event's cache_write_tokens, reasoning is the
# part of output_tokens that was reasoning (billed as output when the rule has no reasoning price)
TOKEN_CLASSES = ("input", "cache_read", "cache_write_5m", "cache_write_1h", "output", "reasoning")
# a class without its own price falls back to another one's (as provider price tables do)
CLASS_FALLBACK = {
    "cache_read": "input",
    "cache_write_5m": "input",
    "cache_write_1h": "cache_write_5m",
    "reasoning": "output",
}
TIER_MODES = ("graduated", "volume")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@/+-]{0,255}$")
_CUSTOMER_ID = re.compile(r"^[^\x00-\x1f\x7f]{1,1024}$")  # any event dimension value (no control characters)


class BillingError(ValueError):
    """A billing input has a bad value; ``field`` names it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class FinalizeRefused(BillingError):
    """Finalize was refused on purpose (the period still runs, or usage is unpriced): a conflict with the data,
    not a malformed request; the HTTP API answers 409 for it and 400 for any other BillingError."""


def money(value: Any, field: str, *, allow_negative: bool = False) -> Decimal:
    """A Decimal from a string or int (floats are refused: they are not exact)."""
    if isinstance(value, (float, bool)) or value is None:
        raise BillingError(field, f'a decimal string such as "1.50" (not {type(value).__name__})')
    try:
        d = Decimal(str(value).strip())
    except InvalidOperation:
        raise BillingError(field, f"not a decimal number: {value!r}") from None
    if not d.is_finite() or (d < 0 and not allow_negative):
        raise BillingError(field, f"must be a {'finite' if allow_negative else 'non-negative'} amount; got {value!r}")
    if d != d.quantize(Decimal("1e-12")):
        raise BillingError(field, "at most 12 decimal places")
    return d


def identifier(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise BillingError(field, "required: 1-256 letters, digits or _ . : @ / + - (starting with a letter or digit)")
    return value


def parse_date(value: Any, field: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise BillingError(field, f"expected a date YYYY-MM-DD; got {value!r}") from None


def check_timezone(value: Any, field: str = "timezone") -> str:
    if not isinstance(value, str) or not value:
        raise BillingError(field, "an IANA time zone name such as UTC or Europe/Paris")
    if parse_zone(value) is None:
        raise BillingError(field, f"unknown time zone {value[:100]!r}")
    return value


@dataclasses.dataclass(frozen=True)
class Tier:
    up_to: int | None  # cumulative tokens this tier ends at (None: no end)
    mtok: Decimal  # USD per 1M tokens


@dataclasses.dataclass(frozen=True)
class ClassPrice:
    tiers: tuple[Tier, ...]
    mode: str = "graduated"

    @property
    def highest(self) -> Decimal:
        return max(t.mtok for t in self.tiers)

    def to_dict(self) -> Any:
        if len(self.tiers) == 1:
            return str(self.tiers[0].mtok)
        return {"mode": self.mode, "tiers": [{"up_to": t.up_to, "mtok": str(t.mtok)} for t in self.tiers]}


def _class_price(spec: Any, free: int, field: str) -> ClassPrice:
    mode = "graduated"
    if isinstance(spec, Mapping):
        mode = spec.get("mode", "graduated")
        if mode not in TIER_MODES:
            raise BillingError(f"{field}.mode", f"must be graduated or volume; got {mode!r}")
        raw = spec.get("tiers")
        if not isinstance(raw, list) or not raw:
            raise BillingError(f"{field}.tiers", "a list of {up_to, mtok}, the last with up_to null")
        tiers = []
        for i, t in enumerate(raw):
            if not isinstance(t, Mapping):
                raise BillingError(f"{field}.tiers[{i}]", "must be an object {up_to, mtok}")
            up = t.get("up_to")
            if up is not None and (isinstance(up, bool) or not isinstance(up, int) or up <= 0):
                raise BillingError(
                    f"{field}.tiers[{i}].up_to", f"a positive whole number of tokens or null; got {up!r}"
                )
            tiers.append(Tier(up, money(t.get("mtok"), f"{field}.tiers[{i}].mtok")))
        ends = [t.up_to for t in tiers]
        if ends[-1] is not None or any(e is None for e in ends[:-1]):
            raise BillingError(f"{field}.tiers", "only the last tier has up_to null")
        bounded = [e for e in ends if e is not None]
        if bounded != sorted(set(bounded)):
            raise BillingError(f"{field}.tiers", "up_to must increase from tier to tier")
    else:
        tiers = [Tier(None, money(spec, field))]
    if free:
        if mode == "volume":
            raise BillingError(field, "free_tokens cannot be combined with volume tiers")
        # the allowance is a first tier at price 0; the other tiers' bounds move up by it
        tiers = [Tier(free, ZERO)] + [Tier(None if t.up_to is None else t.up_to + free, t.mtok) for t in tiers]
    return ClassPrice(tuple(tiers), mode)


@dataclasses.dataclass(frozen=True)
class Rule:
    model: str = "*"
    provider: str | None = None
    prices: Mapping[str, ClassPrice] | None = None  # token class -> price (price rules)
    markup_percent: Decimal | None = None  # markup rules
    fixed_per_request: Decimal = ZERO
    spec: Mapping[str, Any] = dataclasses.field(default_factory=dict, compare=False)  # as written

    @property
    def is_markup(self) -> bool:
        return self.prices is None

    def matches(self, provider: str, model: str) -> bool:
        if self.provider not in (None, "*", provider):
            return False
        if self.model == model or fnmatch.fnmatchcase(model, self.model):
            return True
        return "/" in self.model and fnmatch.fnmatchcase(f"{provider}/{model}", self.model)

    def price_of(self, token_class: str) -> ClassPrice | None:
        """The class's price, following the documented fallbacks (None: the class is not billed)."""
        assert self.prices is not None
        cls: str | None = token_class
        while cls is not None:
            if cls in self.prices:
                return self.prices[cls]
            cls = CLASS_FALLBACK.get(cls)
        return None

    def describe(self) -> str:
        where = f"{self.provider}/" if self.provider else ""
        return f"{where}{self.model}"


_RULE_KEYS = {"model", "provider", "prices", "free_tokens", "markup_percent", "fixed_per_request"}


def parse_rule(spec: Any, field: str) -> Rule:
    if not isinstance(spec, Mapping):
        raise BillingError(field, "a rule is an object with model and prices or markup_percent")
    unknown = set(spec) - _RULE_KEYS
    if unknown:
        raise BillingError(f"{field}.{sorted(unknown)[0]}", "unknown field")
    model = spec.get("model", "*")
    if not isinstance(model, str) or not model:
        raise BillingError(f"{field}.model", "a model id or glob such as gpt-4o* or openai/*")
    provider = spec.get("provider")
    if provider is not None and (not isinstance(provider, str) or not provider):
        raise BillingError(f"{field}.provider", "a provider name such as openai")
    fixed = money(spec.get("fixed_per_request", "0"), f"{field}.fixed_per_request")
    has_prices, has_markup = "prices" in spec, "markup_percent" in spec
    if has_prices == has_markup:
        raise BillingError(field, "give either prices (USD per 1M tokens per token class) or markup_percent")
    if has_markup:
        if "free_tokens" in spec:
            raise BillingError(f"{field}.free_tokens", "only price rules have free tokens")
        pct = money(spec["markup_percent"], f"{field}.markup_percent")
        return Rule(model, provider, None, pct, fixed, dict(spec))
    raw = spec["prices"]
    if not isinstance(raw, Mapping) or not raw:
        raise BillingError(f"{field}.prices", f"an object token class -> price; classes: {', '.join(TOKEN_CLASSES)}")
    free = spec.get("free_tokens") or {}
    if not isinstance(free, Mapping):
        raise BillingError(f"{field}.free_tokens", "an object token class -> free tokens per period")
    for cls in [*raw, *free]:
        if cls not in TOKEN_CLASSES:
            raise BillingError(f"{field}.prices.{cls}", f"unknown token class; use {', '.join(TOKEN_CLASSES)}")
    prices: dict[str, ClassPrice] = {}
    for cls, p in raw.items():
        n = free.get(cls, 0)
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise BillingError(f"{field}.free_tokens.{cls}", f"a whole number of tokens; got {n!r}")
        prices[cls] = _class_price(p, n, f"{field}.prices.{cls}")
    for cls in free:
        if cls not in raw:
            raise BillingError(f"{field}.free_tokens.{cls}", "a free allowance needs a price for that class")
    return Rule(model, provider, prices, None, fixed, dict(spec))


def parse_rules(spec: Any, field: str) -> tuple[Rule, ...]:
    if spec is None:
        return ()
    if not isinstance(spec, list):
        raise BillingError(field, "a list of rules")
    return tuple(parse_rule(r, f"{field}[{i}]") for i, r in enumerate(spec))


@dataclasses.dataclass(frozen=True)
class Plan:
    """One version of a plan, in force from ``effective_from`` (a date in the customer's time zone)."""

    id: str
    version: int
    effective_from: date
    name: str
    rules: tuple[Rule, ...]
    minimum_usd: Decimal = ZERO  # minimum monthly commitment

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "version": self.version,
            "effective_from": self.effective_from.isoformat(),
            "name": self.name,
            "rules": [dict(r.spec) for r in self.rules],
            "minimum_usd": str(self.minimum_usd),
        }


def parse_plan(spec: Any, version: int = 1) -> Plan:
    if not isinstance(spec, Mapping):
        raise BillingError("plan", "an object with id, effective_from, rules")
    unknown = set(spec) - {"id", "name", "effective_from", "rules", "minimum_usd", "version"}
    if unknown:
        raise BillingError(sorted(unknown)[0], "unknown plan field")
    pid = identifier(spec.get("id"), "id")
    rules = parse_rules(spec.get("rules"), "rules")
    if not rules:
        raise BillingError("rules", "a plan needs at least one rule")
    name = spec.get("name") or pid
    if not isinstance(name, str):
        raise BillingError("name", "must be a string")
    return Plan(
        id=pid,
        version=version,
        effective_from=parse_date(spec.get("effective_from", "1970-01-01"), "effective_from"),
        name=name,
        rules=rules,
        minimum_usd=money(spec.get("minimum_usd", "0"), "minimum_usd"),
    )


@dataclasses.dataclass(frozen=True)
class Customer:
    id: str
    name: str = ""
    email: str | None = None
    timezone: str = "UTC"
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    overrides: tuple[Rule, ...] = ()  # customer-specific rules: win over the plan's

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "email": self.email,
            "timezone": self.timezone,
            "metadata": dict(self.metadata),
            "overrides": [dict(r.spec) for r in self.overrides],
        }


def parse_customer(spec: Mapping[str, Any], existing: Customer | None = None) -> Customer:
    unknown = set(spec) - {"id", "name", "email", "timezone", "metadata", "overrides"}
    if unknown:
        raise BillingError(sorted(unknown)[0], "unknown customer field")
    if existing is None:
        cid = spec.get("id")
        if not isinstance(cid, str) or not _CUSTOMER_ID.match(cid) or cid != cid.strip():
            raise BillingError("id", "required: the customer's value of the customer dimension (1-1024 characters)")
    base = existing or Customer(id=str(spec.get("id")))
    name = spec.get("name", base.name) or ""
    email = spec.get("email", base.email)
    if email is not None and (not isinstance(email, str) or "@" not in email):
        raise BillingError("email", f"not an email address: {email!r}")
    metadata = spec.get("metadata", base.metadata)
    if not isinstance(metadata, Mapping):
        raise BillingError("metadata", "an object of string keys")
    overrides = parse_rules(spec["overrides"], "overrides") if "overrides" in spec else base.overrides
    return Customer(
        id=base.id,
        name=str(name),
        email=email,
        timezone=check_timezone(spec.get("timezone", base.timezone)),
        metadata=dict(metadata),
        overrides=overrides,
    )


@dataclasses.dataclass(frozen=True)
class Subscription:
    customer_id: str
    plan_id: str
    start: date  # in the customer's time zone


@dataclasses.dataclass(frozen=True)
class Grant:
    """Prepaid credit: ``amount`` USD usable from ``granted_at`` until ``expires_at`` (never when None)."""

    id: str
    customer_id: str
    amount: Decimal
    granted_at: datetime
    expires_at: datetime | None = None
    note: str = ""

    def active(self, when: datetime) -> bool:
        return self.granted_at <= when and (self.expires_at is None or when < self.expires_at)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "customer": self.customer_id,
            "amount_usd": str(self.amount),
            "granted_at": iso(self.granted_at),
            "expires_at": iso(self.expires_at) if self.expires_at else None,
            "note": self.note,
        }


def iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def dedupe(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))
