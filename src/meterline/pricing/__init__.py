"""Exact Decimal pricing of usage events.

Prices come from user overrides first (a TOML, YAML or JSON price table for private or negotiated
models), then from ``genai-prices`` at the call's own date. An unknown model is ``unpriced`` with null
costs, never a silent $0. Resolved prices are cached per (provider, model, day): genai-prices' own
``calc_price`` costs ~250 µs a call, the cached path a few µs, and it runs on the recorder's thread,
never on the caller's.
"""

from __future__ import annotations

from meterline.pricing.overrides import PriceOverride, PriceTableError, load_price_table
from meterline.pricing.pricer import Pricer, RatePlan, get_pricer, set_pricer

__all__ = [
    "PriceOverride",
    "PriceTableError",
    "Pricer",
    "RatePlan",
    "get_pricer",
    "load_price_table",
    "set_pricer",
]
