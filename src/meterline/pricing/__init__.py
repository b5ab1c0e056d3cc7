"""Exact Decimal pricing of usage events, as the provider bills them.

Prices come from user overrides first (a TOML, YAML or JSON price table for private or negotiated
models), then from ``genai-prices`` under the call's own provider, at the call's own instant (prices change by
date and by time of day) and service tier. A price taken from another provider is marked
``;fallback:<provider>`` in ``pricing_source``; a billed unit meterline cannot count marks it ``;partial:<unit>``.
An unknown model is ``unpriced`` with null costs, never a silent $0. Resolved prices are cached with their
validity window: genai-prices' own ``calc_price`` costs ~250 µs a call, the cached path a few µs, and it runs
on the recorder's thread, never on the caller's. See docs/guides/pricing.md.
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
