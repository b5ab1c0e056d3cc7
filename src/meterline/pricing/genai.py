"""Looking prices up in genai-prices: the right provider first, the price in force at the call's own instant,
the service tier the call says, and the validity window of that price (so the pricer can cache it).

genai-prices' ``ModelPrice`` carries one price per usage unit (``input_mtok``, ``output_reasoning_mtok``,
``requests_kcount``, ``web_searches_kcount``, …); its prices change by date (``StartDateConstraint``) and by
time of day (``TimeOfDateConstraint``, e.g. DeepSeek off-peak), and request variants (``price_variants``)
select batch/flex/priority prices.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from meterline.pricing.models import candidates, genai_provider

UTC = timezone.utc


@dataclasses.dataclass(frozen=True, slots=True)
class GenaiMatch:
    provider_id: str  # the genai-prices provider whose price list held the model
    model_id: str
    prices: Any  # genai_prices.types.ModelPrice
    fallback: str | None  # set when provider_id is not the call's own provider
    valid_from: datetime | None
    valid_until: datetime | None
    context: Mapping[str, str] | None


def tier_context(service_tier: str | None) -> dict[str, str] | None:
    """genai-prices' request context for a service tier the call reported."""
    if not service_tier:
        return None
    tier = service_tier.lower()
    if tier == "batch":
        return {"processing": "batch"}
    return {"service_tier": tier}


_kept_loaded = False


def _snapshot() -> Any:
    global _kept_loaded
    if not _kept_loaded:  # once per process: the price data `meterline prices update` kept, if any
        _kept_loaded = True
        from meterline.pricing.data import load_kept

        load_kept()
    from genai_prices import data_snapshot

    return data_snapshot.get_snapshot()


def snapshot_token() -> int:
    """Changes when genai-prices' data changes (``UpdatePrices`` installs a new snapshot): resolved prices are stale."""
    return id(_snapshot())


def _provider(snapshot: Any, provider_id: str) -> Any:
    from genai_prices.data_snapshot import find_provider_by_id

    return find_provider_by_id(snapshot.providers, provider_id)


def find(provider: str, model: str) -> tuple[Any, Any, str | None] | None:
    """(genai provider, model info, fallback provider id or None) for ``model`` called through ``provider``.

    Order: the provider's own price list; then the providers genai-prices says it resells (Azure: OpenAI,
    Google: Anthropic); then any provider whose model-name pattern claims the model. The last two are marked
    as a fallback, never applied silently."""
    snapshot = _snapshot()
    names = candidates(provider, model)
    own_id = genai_provider(provider)
    own = _provider(snapshot, own_id)
    if own is not None:
        for name in names:
            info = own.find_model(name)
            if info is not None:
                return own, info, None
        for other_id in own.fallback_model_providers or ():
            other = _provider(snapshot, other_id)
            for name in names if other is not None else ():
                info = other.find_model(name)
                if info is not None:
                    return other, info, other.id
    for name in names:
        try:
            other, info = snapshot.find_provider_model(name, None, None, None)
        except LookupError:
            continue
        return other, info, None if other.id == own_id else other.id
    return None


def _at(day: date, t: time) -> datetime:
    moment = datetime.combine(day, t)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _boundaries(constraint: Any, when: datetime) -> Iterable[datetime]:
    start_date = getattr(constraint, "start_date", None)
    if isinstance(start_date, date):
        yield datetime.combine(start_date, time(0), tzinfo=UTC)
        return
    start, end = getattr(constraint, "start_time", None), getattr(constraint, "end_time", None)
    if isinstance(start, time) and isinstance(end, time):
        day = when.astimezone(UTC).date()
        for d in (day - timedelta(days=1), day, day + timedelta(days=1)):
            yield _at(d, start)
            yield _at(d, end)


def window(info: Any, when: datetime) -> tuple[datetime | None, datetime | None]:
    """The instants between which ``info``'s prices (and variants) stay what they are at ``when``."""
    constraints = [c.constraint for c in info.prices] if isinstance(info.prices, list) else []
    constraints += [v.constraint for v in info.price_variants or ()]
    lo: datetime | None = None
    hi: datetime | None = None
    for c in constraints:
        if c is None:
            continue
        for b in _boundaries(c, when):
            if b <= when and (lo is None or b > lo):
                lo = b
            elif b > when and (hi is None or b < hi):
                hi = b
    return lo, hi


def lookup(provider: str, model: str, when: datetime, service_tier: str | None = None) -> GenaiMatch | None:
    found = find(provider, model)
    if found is None:
        return None
    gp, info, fallback = found
    context = tier_context(service_tier)
    # as genai-prices' own calc_price: request variants only apply to the provider's own models
    if context and not any(info is m for m in gp.models):
        context = None
    prices = info.get_prices(when, context)
    lo, hi = window(info, when)
    return GenaiMatch(gp.id, info.id, prices, fallback, lo, hi, context)


def version() -> str:
    """``pricing_source`` of the data in use: ``genai-prices@<release>`` (its packaged data),
    ``genai-prices@<release>+data.<date>.<sha8>`` (data installed by ``meterline prices update`` or the periodic
    refresh), ``genai-prices@<release>+update`` (data someone installed through genai-prices directly)."""
    try:
        import genai_prices

        from meterline.pricing.data import info_of

        snapshot = _snapshot()
        info = info_of(snapshot)
        if info is not None:
            return info.source
        source = f"genai-prices@{genai_prices.__version__}"
        if getattr(snapshot, "from_auto_update", False):
            source += "+update"
        return source
    except Exception:  # pragma: no cover - genai-prices is a core dependency  # noqa: BLE001 - meterline must never raise into the caller or kill its worker
        return "genai-prices"
