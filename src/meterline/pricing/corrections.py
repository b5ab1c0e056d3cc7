"""Corrections over the reference price data, shipped with meterline: where genai-prices is stale, the price the
provider publishes, each with the provider's page and the day it was checked.

They apply after a user's own price table and before genai-prices. Kinds:

- ``alias``: the name is priced as ``target`` while the entry holds (a ``-latest`` alias, or a legacy name the
  provider routes to another model). The event says ``;correction:<id>``.
- ``retired``: the provider retired the name. With a ``target`` the provider documented (its successor), calls
  are priced as that model (``;correction:<id>``); without one, the reference price is kept and the event is
  flagged ``;retired:<id>`` (nobody should be billed on a guess).
- ``price``: price keys replaced over the reference price (``prices``), or the per-request fee chosen by the
  call's search context size (``request_fees``; the event attribute ``meterline.search_context_size``, else the
  provider's default, the first entry).

``meterline prices check`` lists them and flags one the reference has caught up with (it prices the model as the
correction does): remove it from this table in the next release.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, time, timezone
from decimal import Decimal
from typing import Any

UTC = timezone.utc

# the event attribute that says which search context size a call asked for (Perplexity's web_search_options)
ATTR_SEARCH_CONTEXT = "meterline.search_context_size"


@dataclasses.dataclass(frozen=True)
class Correction:
    id: str
    kind: str  # "alias" | "retired" | "price"
    provider: str  # genai-prices provider id
    models: tuple[str, ...]
    source_url: str
    checked: date
    note: str
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    target: str | None = None
    prices: tuple[tuple[str, Decimal], ...] = ()
    request_fees: tuple[tuple[str, Decimal], ...] = ()  # (search context size, USD per 1,000 requests)

    def holds_at(self, when: datetime) -> bool:
        return (self.valid_from is None or self.valid_from <= when) and (
            self.valid_until is None or when < self.valid_until
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "provider": self.provider,
            "models": list(self.models),
            "target": self.target,
            "valid_from": self.valid_from.isoformat() if self.valid_from else None,
            "valid_until": self.valid_until.isoformat() if self.valid_until else None,
            "prices": {k: str(v) for k, v in self.prices},
            "request_fees_per_1000": {k: str(v) for k, v in self.request_fees},
            "source_url": self.source_url,
            "checked": self.checked.isoformat(),
            "note": self.note,
        }


def _at(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=UTC)


_DEEPSEEK = "https://api-docs.deepseek.com/quick_start/pricing"
_PERPLEXITY = "https://docs.perplexity.ai/getting-started/pricing"
_MISTRAL_MODELS = "https://docs.mistral.ai/getting-started/models/"

CORRECTIONS: tuple[Correction, ...] = (
    Correction(
        id="deepseek-legacy-names-v4-flash",
        kind="alias",
        provider="deepseek",
        models=("deepseek-chat", "deepseek-reasoner"),
        valid_from=_at(2026, 4, 24),
        valid_until=_at(2026, 7, 24, 15, 59),
        target="deepseek-v4-flash",
        source_url=_DEEPSEEK,
        checked=date(2026, 12, 5),
        note="With V4 (2026-04-24) DeepSeek routes deepseek-chat to deepseek-v4-flash non-thinking and "
        "deepseek-reasoner to its thinking mode, billed at V4 Flash prices; the reference still has the 2025 "
        "V3/R1 list ($0.27/$1.10, $0.55/$2.19).",
    ),
    Correction(
        id="deepseek-legacy-names-retired",
        kind="retired",
        provider="deepseek",
        models=("deepseek-chat", "deepseek-reasoner"),
        valid_from=_at(2026, 7, 24, 15, 59),
        target="deepseek-v4-flash",
        source_url=_DEEPSEEK,
        checked=date(2026, 12, 5),
        note="Retired 2026-07-24 15:59 UTC; DeepSeek documents deepseek-v4-flash (non-thinking / thinking) as "
        "their successor, so a call recorded under the old names is priced as deepseek-v4-flash.",
    ),
    Correction(
        id="perplexity-sonar-request-fee",
        kind="price",
        provider="perplexity",
        models=("sonar", "sonar-reasoning"),
        request_fees=(("low", Decimal(5)), ("medium", Decimal(8)), ("high", Decimal(12))),
        source_url=_PERPLEXITY,
        checked=date(2026, 12, 5),
        note="The request fee depends on the search context size; the default is low ($5 per 1,000 requests). "
        "The reference charges every call the high-context fee ($12).",
    ),
    Correction(
        id="perplexity-sonar-pro-request-fee",
        kind="price",
        provider="perplexity",
        models=("sonar-pro", "sonar-reasoning-pro"),
        request_fees=(("low", Decimal(6)), ("medium", Decimal(10)), ("high", Decimal(14))),
        source_url=_PERPLEXITY,
        checked=date(2026, 12, 5),
        note="As Sonar: low $6, medium $10, high $14 per 1,000 requests; default low. The reference charges $14.",
    ),
    Correction(
        id="mistral-large-latest-large-3",
        kind="alias",
        provider="mistral",
        models=("mistral-large-latest",),
        valid_from=_at(2026, 5, 31),
        target="mistral-large-2512",
        source_url=_MISTRAL_MODELS,
        checked=date(2026, 12, 5),
        note="Mistral Large 2.1 (mistral-large-2411) was retired 2026-05-31; mistral-large-latest points at "
        "Mistral Large 3 (mistral-large-2512, $0.5/$1.5). The reference prices the alias as Large 2 ($2/$6).",
    ),
    Correction(
        id="mistral-large-2411-retired",
        kind="retired",
        provider="mistral",
        models=("mistral-large-2411",),
        valid_from=_at(2026, 5, 31),
        source_url=_MISTRAL_MODELS,
        checked=date(2026, 12, 5),
        note="Retired 2026-05-31 with no successor that Mistral bills it as: priced at its last price, flagged.",
    ),
)


def find(
    provider: str, names: Iterable[str], when: datetime, table: Sequence[Correction] = CORRECTIONS
) -> Correction | None:
    """The correction in force for one of ``names`` (best first) under genai-prices provider ``provider``."""
    for name in names:
        low = name.lower()
        for c in table:
            if c.provider == provider and low in c.models and c.holds_at(when):
                return c
    return None


def edges(provider: str, names: Iterable[str], table: Sequence[Correction] = CORRECTIONS) -> list[datetime]:
    """The instants where a correction for these names starts or stops (a cached price must not cross one)."""
    wanted = {n.lower() for n in names}
    out: list[datetime] = []
    for c in table:
        if c.provider == provider and wanted & set(c.models):
            out += [t for t in (c.valid_from, c.valid_until) if t is not None]
    return out


def search_context(attributes: Any) -> str | None:
    if not attributes:
        return None
    value = attributes.get(ATTR_SEARCH_CONTEXT, attributes.get("search_context_size"))
    return value.strip().lower() if isinstance(value, str) and value.strip() else None


def request_fee(fees: Sequence[tuple[str, Decimal]], attributes: Any) -> Decimal:
    """The per-1,000-requests fee for the call's search context size (unknown or unset: the default, first)."""
    size = search_context(attributes)
    for key, price in fees:
        if key == size:
            return price
    return fees[0][1]


# -- has the reference caught up? ----------------------------------------------------------------------------------

_COMPARED = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok", "output_reasoning_mtok")


def _same_prices(a: Any, b: Any) -> bool:
    return all(getattr(a, k) == getattr(b, k) for k in _COMPARED) and dict(a.fees) == dict(b.fees)


def status(c: Correction, reference: Callable[[str, datetime], Any], at: datetime | None = None) -> str:
    """``applies`` or ``caught up`` (the reference now prices the model as the correction does: remove it), or
    ``flag`` (a retirement without a successor: nothing to catch up with). ``reference(model, when)`` is the
    reference's plan (no corrections) or None."""
    when = at or max(c.valid_from or _at(1970, 1, 1), datetime.combine(c.checked, time(12), tzinfo=UTC))
    if c.kind == "retired" and c.target is None:
        return "flag"
    plans = [reference(m, when) for m in c.models]
    if any(p is None for p in plans):
        return "applies"
    if c.target is not None:
        target = reference(c.target, when)
        return "caught up" if target is not None and all(_same_prices(p, target) for p in plans) else "applies"
    for p in plans:
        if any(getattr(p, k, None) != v for k, v in c.prices):
            return "applies"
        if c.request_fees and dict(p.fees).get("requests_kcount") != c.request_fees[0][1]:
            return "applies"
    return "caught up"
