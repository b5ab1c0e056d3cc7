"""Resolve the rate plan in force at a call's own instant and price an event's usage exactly.

A plan is resolved per (provider, model, service tier) and cached together with the window of time in which
it holds (genai-prices changes prices by date and by time of day): a call is priced with the plan whose window
contains its ``start_time``, never with "the price of that day".
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from datetime import date, datetime, time, timezone
from decimal import Decimal
from typing import Any

from meterline.core.event import UsageEvent, quantize_cost
from meterline.core.usage import ATTR_CITATION_TOKENS, ATTR_SERVICE_TIER
from meterline.pricing import corrections as corr
from meterline.pricing import genai
from meterline.pricing.models import BEDROCK, bedrock_base_model, candidates, genai_provider, normalise_model
from meterline.pricing.overrides import PriceOverride

__all__ = ["Pricer", "RatePlan", "Tiered", "bedrock_base_model", "get_pricer", "normalise_model", "set_pricer"]

_MTOK = Decimal(1_000_000)
_ZERO = Decimal(0)
_QZERO = quantize_cost(_ZERO)
_UTC = timezone.utc

# genai-prices price keys meterline counts per event (token classes of schema v1 and their subsets)
TOKEN_KEYS = frozenset(
    {
        "input_mtok",
        "output_mtok",
        "cache_read_mtok",
        "cache_write_mtok",
        "cache_write_5m_mtok",
        "cache_write_1h_mtok",
        "output_reasoning_mtok",
        "output_citation_mtok",
    }
)
# modality token prices meterline can apply when the reply split the counts (event attribute -> subset of the
# uncached input / of the plain output): price key -> (attribute, side)
MODALITY_UNITS = {
    "input_audio_mtok": ("meterline.input_audio_tokens", "input"),
    "input_image_mtok": ("meterline.input_image_tokens", "input"),
    "output_audio_mtok": ("meterline.output_audio_tokens", "output"),
    "output_image_mtok": ("meterline.output_image_tokens", "output"),
}
# per-unit fees: price key -> (unit, per). Requests: one per event. Server-side tool calls: the count the reply
# reported (event attribute ``meterline.<unit>``); OpenAI (Responses output items) and Anthropic
# (``server_tool_use``) report every one they bill, so a call that reports none used none.
FEE_UNITS = {
    "requests_kcount": ("requests", 1000),
    "web_searches_kcount": ("web_searches", 1000),
    "storage_searches_kcount": ("storage_searches", 1000),
    "code_executions_kcount": ("code_executions", 1000),
    "social_searches_kcount": ("social_searches", 1000),
}
# providers whose every call may run web searches (so an unreported count is unknown, not zero)
_SEARCH_PROVIDERS = frozenset({"perplexity"})
_MODALITY_WORDS = ("_audio_", "_image_", "_video_")


@dataclasses.dataclass(frozen=True, slots=True)
class Tiered:
    """A price that switches, for the whole request, once total input passes ``start`` tokens."""

    base: Decimal
    tiers: tuple[tuple[int, Decimal], ...]

    def at(self, total_input: int) -> Decimal:
        for start, price in reversed(self.tiers):
            if total_input > start:
                return price
        return self.base


Price = Decimal | Tiered


@dataclasses.dataclass(frozen=True, slots=True)
class RatePlan:
    """USD per million tokens for each usage component (``None``: charged as its parent class, as
    genai-prices does: cache reads/writes at the input price, 1-hour writes at the cache-write price,
    reasoning and citation tokens at the output price), plus per-request and per-unit fees."""

    source: str
    input_mtok: Price = _ZERO
    output_mtok: Price = _ZERO
    cache_read_mtok: Price | None = None
    cache_write_mtok: Price | None = None
    cache_write_1h_mtok: Price | None = None
    cache_write_5m_mtok: Price | None = None
    output_reasoning_mtok: Price | None = None
    output_citation_mtok: Price | None = None
    # (price key, USD per `per` units): requests_kcount, web_searches_kcount
    fees: tuple[tuple[str, Price], ...] = ()
    # price keys this plan has that meterline cannot count (document pages, audio hours, modality tokens, …)
    uncounted: tuple[str, ...] = ()
    # (price key, price) for modality token prices (MODALITY_UNITS) in this plan
    modality: tuple[tuple[str, Price], ...] = ()
    # where the price comes from
    provider: str | None = None  # the genai-prices provider whose list was used
    model_id: str | None = None  # the genai-prices model id (or the override's pattern)
    fallback: str | None = None  # set when that provider is not the call's own
    origin: str | None = None  # the override file
    service_tier: str | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    # a shipped correction (meterline.pricing.corrections) that changed this plan, and the per-request fee by
    # search context size it sets ((size, USD per 1,000 requests), the default first)
    correction: str | None = None
    request_fees: tuple[tuple[str, Decimal], ...] = ()

    def holds_at(self, when: datetime) -> bool:
        return (self.valid_from is None or self.valid_from <= when) and (
            self.valid_until is None or when < self.valid_until
        )

    def cost(self, event: UsageEvent) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        """(input, cache_read, cache_write, output) token costs, each quantised to a pico-dollar."""
        total_input = event.input_tokens + event.cache_read_tokens + event.cache_write_tokens
        i, o, w = self.input_mtok, self.output_mtok, self.cache_write_mtok
        input_cost = cache_read_cost = cache_write_cost = output_cost = _QZERO
        split = self._modality_split(event, total_input) if self.modality and event.attributes else None
        if event.input_tokens:
            if split is None:
                input_cost = quantize_cost(event.input_tokens * _rate(total_input, i) / _MTOK)
            else:
                plain = max(event.input_tokens - split[0], 0)
                input_cost = quantize_cost((plain * _rate(total_input, i) + split[1]) / _MTOK)
        if event.cache_read_tokens:
            cache_read_cost = quantize_cost(
                event.cache_read_tokens * _rate(total_input, self.cache_read_mtok, i) / _MTOK
            )
        if event.cache_write_tokens:
            write_1h = event.cache_write_1h_tokens
            write_5m = event.cache_write_tokens - write_1h
            amount = write_5m * _rate(total_input, self.cache_write_5m_mtok, w, i) if write_5m else _ZERO
            if write_1h:
                amount += write_1h * _rate(total_input, self.cache_write_1h_mtok, w, i)
            cache_write_cost = quantize_cost(amount / _MTOK)
        if event.output_tokens:
            reasoning = event.reasoning_tokens
            citation = 0
            if event.attributes and ATTR_CITATION_TOKENS in event.attributes:
                citation = min(_count(event, ATTR_CITATION_TOKENS) or 0, event.output_tokens - reasoning)
            plain_out = event.output_tokens - reasoning - citation
            if split is not None:
                amount = split[3]
                plain_out = max(plain_out - split[2], 0)
            else:
                amount = _ZERO
            amount += plain_out * _rate(total_input, o)
            if reasoning:
                amount += reasoning * _rate(total_input, self.output_reasoning_mtok, o)
            if citation:
                amount += citation * _rate(total_input, self.output_citation_mtok, o)
            output_cost = quantize_cost(amount / _MTOK)
        return input_cost, cache_read_cost, cache_write_cost, output_cost

    def _modality_split(self, event: UsageEvent, total_input: int) -> tuple[int, Decimal, int, Decimal] | None:
        """(input tokens, their cost x 1M, output tokens, their cost x 1M) of the modality counts the reply split."""
        tokens = [0, 0]
        amounts = [_ZERO, _ZERO]
        room = [event.input_tokens, max(event.output_tokens - event.reasoning_tokens, 0)]  # never more than reported
        for key, price in self.modality:
            attr, side = MODALITY_UNITS[key]
            k = 0 if side == "input" else 1
            n = min(_count(event, attr) or 0, room[k] - tokens[k])
            if n > 0:
                tokens[k] += n
                amounts[k] += n * _rate(total_input, price)
        if not tokens[0] and not tokens[1]:
            return None
        return tokens[0], amounts[0], tokens[1], amounts[1]

    def fee_cost(self, event: UsageEvent) -> tuple[Decimal, tuple[str, ...]]:
        """Per-request and per-unit fees, and the units that could not be counted (the cost is then partial)."""
        if not self.fees and not self.uncounted:
            return _QZERO, ()
        total = _ZERO
        unknown: list[str] = []
        total_input = event.input_tokens + event.cache_read_tokens + event.cache_write_tokens
        for key, price in self.fees:
            unit, per = FEE_UNITS[key]
            if unit == "requests":
                n: int | None = 1
                if self.request_fees:
                    price = corr.request_fee(self.request_fees, event.attributes)
            else:
                n = _count(event, f"meterline.{unit}") if event.attributes else None
                if n is None and unit == "web_searches" and self.provider in _SEARCH_PROVIDERS:
                    unknown.append(unit)
                    continue
            if n:
                total += n * _rate(total_input, price) / per
        for key in self.uncounted:
            if key in MODALITY_UNITS and event.attributes and MODALITY_UNITS[key][0] in event.attributes:
                continue  # the reply said how many: priced in cost()
            modality = any(word in f"_{key}" for word in _MODALITY_WORDS) and key.endswith("_mtok")
            if not modality or event.operation in ("audio", "image"):
                unknown.append(key.rsplit("_", 1)[0])
        return quantize_cost(total), tuple(unknown)


def _rate(total_input: int, *chain: Price | None) -> Decimal:
    """The first price of ``chain`` that is set (a class without its own price is charged as its parent)."""
    for p in chain:
        if p is not None:
            return p.at(total_input) if isinstance(p, Tiered) else p
    return _ZERO


def _count(event: UsageEvent, key: str) -> int | None:
    value = event.attributes.get(key) if event.attributes else None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        n = int(value)
    except ValueError:
        return None
    return max(n, 0)


def _price(value: Any) -> Price | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return value
    tiers = getattr(value, "tiers", None)
    if tiers is not None:
        return Tiered(base=value.base, tiers=tuple((int(t.start), t.price) for t in tiers))
    return None


def plan_from_genai(match: genai.GenaiMatch, source: str, service_tier: str | None) -> RatePlan | None:
    prices = {k: v for k, v in vars(match.prices).items() if v is not None and not k.startswith("_")}
    token = {k: _price(v) for k, v in prices.items() if k in TOKEN_KEYS}
    if token.get("input_mtok") is None and token.get("output_mtok") is None and not prices:
        return None
    fees = tuple((k, p) for k, v in prices.items() if k in FEE_UNITS and (p := _price(v)) is not None)
    uncounted = tuple(sorted(k for k in prices if k not in TOKEN_KEYS and k not in FEE_UNITS))
    modality = tuple((k, p) for k, v in prices.items() if k in MODALITY_UNITS and (p := _price(v)) is not None)
    return RatePlan(
        source=source if match.fallback is None else f"{source};fallback:{match.fallback}",
        input_mtok=token.get("input_mtok") or _ZERO,
        output_mtok=token.get("output_mtok") or _ZERO,
        cache_read_mtok=token.get("cache_read_mtok"),
        cache_write_mtok=token.get("cache_write_mtok"),
        cache_write_1h_mtok=token.get("cache_write_1h_mtok"),
        cache_write_5m_mtok=token.get("cache_write_5m_mtok"),
        output_reasoning_mtok=token.get("output_reasoning_mtok"),
        output_citation_mtok=token.get("output_citation_mtok"),
        fees=fees,
        uncounted=uncounted,
        modality=modality,
        provider=match.provider_id,
        model_id=match.model_id,
        fallback=match.fallback,
        service_tier=service_tier if match.context else None,
        valid_from=match.valid_from,
        valid_until=match.valid_until,
    )


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=_UTC) if when.tzinfo is None else when.astimezone(_UTC)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=_UTC)


class Pricer:
    """Thread-safe pricer with a resolved-price cache. One instance per process is enough.

    Precedence: user overrides (the latest entry in force at the call's date wins), then genai-prices under
    the call's own provider, then (marked ``;fallback:<provider>``) the provider genai-prices says resells the
    model or any provider that lists it. Unknown: ``unpriced``, null costs."""

    _MAX_KEYS = 50_000

    def __init__(
        self, overrides: Sequence[PriceOverride] = (), corrections: Sequence[corr.Correction] | None = None
    ) -> None:
        self._corrections = corr.CORRECTIONS if corrections is None else tuple(corrections)
        self._overrides = sorted(overrides, key=lambda o: o.valid_from or date.min, reverse=True)
        self._override_edges = sorted({_midnight(o.valid_from) for o in overrides if o.valid_from is not None})
        self._cache: dict[tuple[str, str, str | None], list[tuple[RatePlan | None, datetime | None, datetime | None]]]
        self._cache = {}
        self._lock = threading.Lock()
        self._genai_source: str | None = None
        self._snapshot = genai.snapshot_token()

    @property
    def genai_source(self) -> str:
        if self._genai_source is None:
            self._genai_source = genai.version()
        return self._genai_source

    @property
    def overrides(self) -> tuple[PriceOverride, ...]:
        return tuple(self._overrides)

    def resolve(self, provider: str, model: str, when: datetime, service_tier: str | None = None) -> RatePlan | None:
        """The plan in force for ``model`` called through ``provider`` at the instant ``when``."""
        when = _utc(when)
        token = genai.snapshot_token()
        if token != self._snapshot:  # genai-prices' data was updated at run time: forget every resolved price
            with self._lock:
                self._cache.clear()
                self._snapshot = token
                self._genai_source = None
        key = (provider, model, service_tier)
        for plan, lo, hi in self._cache.get(key, ()):
            if (lo is None or lo <= when) and (hi is None or when < hi):
                return plan
        plan, lo, hi = self._resolve_uncached(provider, model, when, service_tier)
        with self._lock:
            if len(self._cache) > self._MAX_KEYS:  # many distinct models over a long life
                self._cache.clear()
            windows = self._cache.setdefault(key, [])
            if len(windows) >= 16:  # e.g. off-peak windows day after day: keep the recent ones
                del windows[:8]
            windows.append((plan, lo, hi))
        return plan

    def _override_window(self, when: datetime) -> tuple[datetime | None, datetime | None]:
        lo = max((e for e in self._override_edges if e <= when), default=None)
        hi = min((e for e in self._override_edges if e > when), default=None)
        return lo, hi

    def _resolve_uncached(
        self, provider: str, model: str, when: datetime, service_tier: str | None
    ) -> tuple[RatePlan | None, datetime | None, datetime | None]:
        lo, hi = self._override_window(when)
        names = set(candidates(provider, model))
        if provider in BEDROCK:
            names |= {bedrock_base_model(n) for n in names}
        day = when.date()
        for o in self._overrides:
            if (o.valid_from is None or o.valid_from <= day) and any(o.matches(provider, n) for n in names):
                plan = RatePlan(
                    source="override",
                    input_mtok=o.input_mtok,
                    output_mtok=o.output_mtok,
                    cache_read_mtok=o.cache_read_mtok,
                    cache_write_mtok=o.cache_write_mtok,
                    cache_write_1h_mtok=o.cache_write_1h_mtok,
                    output_reasoning_mtok=o.output_reasoning_mtok,
                    fees=(("requests_kcount", o.requests_kcount),) if o.requests_kcount is not None else (),
                    model_id=o.model,
                    origin=o.origin,
                    valid_from=lo,
                    valid_until=hi,
                )
                return plan, lo, hi
        found, lo, hi = self._corrected(provider, model, when, service_tier, lo, hi, 0)
        return (None if found is None else dataclasses.replace(found, valid_from=lo, valid_until=hi)), lo, hi

    def _corrected(
        self,
        provider: str,
        model: str,
        when: datetime,
        tier: str | None,
        lo: datetime | None,
        hi: datetime | None,
        depth: int,
    ) -> tuple[RatePlan | None, datetime | None, datetime | None]:
        """The reference's plan with the shipped corrections applied (an alias or a documented successor is
        priced as its target, a price correction replaces keys, a retirement without successor is flagged)."""
        names = candidates(provider, model)
        gp = genai_provider(provider)
        for edge in corr.edges(gp, names, self._corrections):
            if edge <= when and (lo is None or edge > lo):
                lo = edge
            elif edge > when and (hi is None or edge < hi):
                hi = edge
        c = corr.find(gp, names, when, self._corrections) if depth < 3 else None
        if c is not None and c.target is not None:
            plan, lo, hi = self._corrected(provider, c.target, when, tier, lo, hi, depth + 1)
            if plan is None:
                return None, lo, hi
            return dataclasses.replace(plan, source=f"{plan.source};correction:{c.id}", correction=c.id), lo, hi
        plan, lo, hi = self.reference(provider, model, when, tier, lo, hi)
        if plan is None or c is None:
            return plan, lo, hi
        if c.kind == "retired":
            return dataclasses.replace(plan, source=f"{plan.source};retired:{c.id}", correction=c.id), lo, hi
        changes: dict[str, Any] = {k: v for k, v in c.prices if k in RatePlan.__dataclass_fields__}
        if c.request_fees:
            changes["fees"] = (
                *tuple(f for f in plan.fees if f[0] != "requests_kcount"),
                ("requests_kcount", c.request_fees[0][1]),
            )
            changes["request_fees"] = c.request_fees
        source = f"{plan.source};correction:{c.id}"
        return dataclasses.replace(plan, source=source, correction=c.id, **changes), lo, hi

    def reference(
        self,
        provider: str,
        model: str,
        when: datetime,
        tier: str | None = None,
        lo: datetime | None = None,
        hi: datetime | None = None,
    ) -> tuple[RatePlan | None, datetime | None, datetime | None]:
        """genai-prices' plan for ``model`` at ``when``, without overrides or corrections, and its window."""
        try:
            match = genai.lookup(provider, model, when, tier)
        except (LookupError, ValueError):
            match = None
        if match is None:
            return None, lo, hi
        if match.valid_from is not None and (lo is None or match.valid_from > lo):
            lo = match.valid_from
        if match.valid_until is not None and (hi is None or match.valid_until < hi):
            hi = match.valid_until
        return plan_from_genai(match, genai.version(), tier), lo, hi

    def price(self, event: UsageEvent) -> None:
        """Fill the event's cost fields and ``pricing_source`` (unless the caller already priced it).

        ``total_cost`` is the token components plus per-request and per-unit fees. ``pricing_source`` names the
        price list, then ``;fallback:<provider>`` when another provider's price was used and
        ``;partial:<units>`` when a billed unit could not be counted (the cost is then a lower bound)."""
        if event.total_cost is not None:
            if event.pricing_source is None:
                event.pricing_source = "caller"
            return
        tier = service_tier_of(event)
        plan = None
        # Bedrock: the requested id carries the inference profile ("global." vs regional prices differ),
        # the reply's model name does not. A price under the call's own provider beats a fallback.
        order = (
            (event.model, event.response_model) if event.provider in BEDROCK else (event.response_model, event.model)
        )
        for model in order:
            if model:
                found = self.resolve(event.provider, model, event.start_time, tier)
                if found is not None and (plan is None or found.fallback is None):
                    plan = found
                    if found.fallback is None:
                        break
        if plan is None:
            event.input_cost = event.cache_read_cost = event.cache_write_cost = event.output_cost = None
            event.pricing_source = "unpriced"
            return
        i, cr, cw, o = plan.cost(event)
        fees, unknown = plan.fee_cost(event)
        event.input_cost, event.cache_read_cost, event.cache_write_cost, event.output_cost = i, cr, cw, o
        event.total_cost = i + cr + cw + o + fees
        event.pricing_source = plan.source + (f";partial:{','.join(unknown)}" if unknown else "")


def service_tier_of(event: UsageEvent) -> str | None:
    """The service tier the call reported (``meterline.service_tier``, else a ``service_tier`` attribute)."""
    attrs = event.attributes
    if not attrs:
        return None
    value = attrs.get(ATTR_SERVICE_TIER, attrs.get("service_tier"))
    return value.lower() if isinstance(value, str) and value else None


_default: Pricer | None = None
_default_lock = threading.Lock()


def get_pricer() -> Pricer:
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Pricer()
    return _default


def set_pricer(pricer: Pricer) -> None:
    global _default
    _default = pricer
