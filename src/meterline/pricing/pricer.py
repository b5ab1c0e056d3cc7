"""Resolve a rate plan per (provider, model, day) and price an event's usage components exactly."""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Sequence
from datetime import date, datetime, time, timezone
from decimal import Decimal
from typing import Any

from meterline.event import UsageEvent, quantize_cost
from meterline.pricing.overrides import PriceOverride

_MTOK = Decimal(1_000_000)
_BEDROCK = frozenset({"bedrock", "bedrock_converse"})
_ZERO = Decimal(0)

# meterline/LiteLLM provider names -> genai-prices provider ids
_GENAI_PROVIDER = {
    "bedrock": "aws",
    "bedrock_converse": "aws",
    "sagemaker": "aws",
    "vertex_ai": "google",
    "vertex_ai_beta": "google",
    "gemini": "google",
    "text-completion-openai": "openai",
    "azure_ai": "azure",
    "xai": "x-ai",
    "together_ai": "together",
    "fireworks_ai": "fireworks",
    "mistralai": "mistral",
    "moonshot": "moonshotai",
}


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
    """USD per million tokens for each usage component (``None``: falls back as documented)."""

    source: str
    input_mtok: Price = _ZERO
    output_mtok: Price = _ZERO
    cache_read_mtok: Price | None = None
    cache_write_mtok: Price | None = None
    cache_write_1h_mtok: Price | None = None

    def cost(self, event: UsageEvent) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        """(input, cache_read, cache_write, output) costs, each quantised to a pico-dollar."""
        total_input = event.input_tokens + event.cache_read_tokens + event.cache_write_tokens

        def rate(p: Price | None, fallback: Price) -> Decimal:
            chosen = fallback if p is None else p
            return chosen.at(total_input) if isinstance(chosen, Tiered) else chosen

        in_rate = rate(self.input_mtok, _ZERO)
        write_rate_5m = rate(self.cache_write_mtok, self.input_mtok)
        write_rate_1h = rate(self.cache_write_1h_mtok, self.cache_write_mtok or self.input_mtok)
        write_1h = event.cache_write_1h_tokens
        write_5m = event.cache_write_tokens - write_1h
        return (
            quantize_cost(event.input_tokens * in_rate / _MTOK),
            quantize_cost(event.cache_read_tokens * rate(self.cache_read_mtok, self.input_mtok) / _MTOK),
            quantize_cost((write_5m * write_rate_5m + write_1h * write_rate_1h) / _MTOK),
            quantize_cost(event.output_tokens * rate(self.output_mtok, _ZERO) / _MTOK),
        )


def _from_genai(value: Any) -> Price | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return value
    tiers = getattr(value, "tiers", None)
    if tiers is not None:
        return Tiered(base=value.base, tiers=tuple((int(t.start), t.price) for t in tiers))
    return None


_BEDROCK_ARN = re.compile(r"^arn:aws[a-z-]*:bedrock:[^:]*:[^:]*:(?:foundation-model|inference-profile)/(?P<id>.+)$")
# Cross-region inference profile prefixes ("us.anthropic.claude-…"); genai-prices prices "global." apart.
_BEDROCK_REGION = re.compile(r"^(?:us|eu|apac|global|us-gov|jp|au|ca)\.(?=[a-z0-9-]+\.)")


def bedrock_base_model(model: str) -> str:
    """A Bedrock model id without its inference-profile region prefix ("us.anthropic.x-v1:0" -> "anthropic.x-v1:0");
    used to match user price overrides written for the base model."""
    return _BEDROCK_REGION.sub("", model, count=1)


def normalise_model(provider: str, model: str) -> str:
    """Strip LiteLLM routing prefixes ("openai/gpt-4o" -> "gpt-4o", "bedrock/converse/x" -> "x") and Bedrock
    ARNs of foundation models and inference profiles ("arn:aws:bedrock:…:inference-profile/us.anthropic.x" ->
    "us.anthropic.x"; application inference profiles are opaque ids and stay as they are)."""
    name = model
    prefixes = (f"{provider}/", "bedrock/", "converse/", "invoke/", "openai/", "anthropic/", "azure/")
    changed = True
    while changed:
        changed = False
        for p in prefixes:
            if name.startswith(p):
                name = name[len(p) :]
                changed = True
    arn = _BEDROCK_ARN.match(name)
    return arn["id"] if arn else name


class Pricer:
    """Thread-safe pricer with a resolved-price cache. One instance per process is enough."""

    def __init__(self, overrides: Sequence[PriceOverride] = ()) -> None:
        self._overrides = sorted(overrides, key=lambda o: o.valid_from or date.min, reverse=True)
        self._cache: dict[tuple[str, str, date], RatePlan | None] = {}
        self._lock = threading.Lock()
        self._genai_source: str | None = None

    @property
    def genai_source(self) -> str:
        if self._genai_source is None:
            try:
                import genai_prices

                self._genai_source = f"genai-prices@{genai_prices.__version__}"
            except Exception:  # pragma: no cover - genai-prices is a core dependency  # noqa: BLE001 - meterline must never raise into the caller or kill its worker
                self._genai_source = "genai-prices"
        return self._genai_source

    def resolve(self, provider: str, model: str, when: datetime) -> RatePlan | None:
        day = when.astimezone(timezone.utc).date()
        key = (provider, model, day)
        plan = self._cache.get(key, _MISSING)
        if plan is not _MISSING:
            return plan  # type: ignore[return-value]
        plan = self._resolve_uncached(provider, model, day)
        with self._lock:
            if len(self._cache) > 50_000:  # many distinct (model, day) pairs over a long life
                self._cache.clear()
            self._cache[key] = plan
        return plan

    def _resolve_uncached(self, provider: str, model: str, day: date) -> RatePlan | None:
        bare = normalise_model(provider, model)
        names = {model, bare, bedrock_base_model(bare)} if provider in _BEDROCK else {model, bare}
        for o in self._overrides:
            if (o.valid_from is None or o.valid_from <= day) and any(o.matches(provider, n) for n in names):
                return RatePlan(
                    source="override",
                    input_mtok=o.input_mtok,
                    output_mtok=o.output_mtok,
                    cache_read_mtok=o.cache_read_mtok,
                    cache_write_mtok=o.cache_write_mtok,
                    cache_write_1h_mtok=o.cache_write_1h_mtok,
                )
        try:
            from genai_prices import data_snapshot

            snapshot = data_snapshot.get_snapshot()
            genai_provider = _GENAI_PROVIDER.get(provider, provider)
            try:
                _, info = snapshot.find_provider_model(bare, None, genai_provider, None)
            except LookupError:
                _, info = snapshot.find_provider_model(bare, None, None, None)
            prices = info.get_prices(datetime.combine(day, time(12), tzinfo=timezone.utc))
        except (LookupError, ValueError):
            return None
        input_p = _from_genai(getattr(prices, "input_mtok", None))
        output_p = _from_genai(getattr(prices, "output_mtok", None))
        if input_p is None and output_p is None:
            return None
        return RatePlan(
            source=self.genai_source,
            input_mtok=input_p if input_p is not None else _ZERO,
            output_mtok=output_p if output_p is not None else _ZERO,
            cache_read_mtok=_from_genai(getattr(prices, "cache_read_mtok", None)),
            cache_write_mtok=_from_genai(getattr(prices, "cache_write_mtok", None)),
            cache_write_1h_mtok=_from_genai(getattr(prices, "cache_write_1h_mtok", None)),
        )

    def price(self, event: UsageEvent) -> None:
        """Fill the event's cost fields and ``pricing_source`` (unless the caller already priced it)."""
        if event.total_cost is not None:
            if event.pricing_source is None:
                event.pricing_source = "caller"
            return
        plan = None
        # Bedrock: the requested id carries the inference profile ("global." vs regional prices differ),
        # the reply's model name does not.
        order = (
            (event.model, event.response_model) if event.provider in _BEDROCK else (event.response_model, event.model)
        )
        for model in order:
            if model:
                plan = self.resolve(event.provider, model, event.start_time)
                if plan is not None:
                    break
        if plan is None:
            event.input_cost = event.cache_read_cost = event.cache_write_cost = event.output_cost = None
            event.pricing_source = "unpriced"
            return
        i, cr, cw, o = plan.cost(event)
        event.input_cost, event.cache_read_cost, event.cache_write_cost, event.output_cost = i, cr, cw, o
        event.total_cost = i + cr + cw + o
        event.pricing_source = plan.source


_MISSING = object()
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
