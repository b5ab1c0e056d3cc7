"""Exports to the billing systems people already run: Lago, OpenMeter, Stripe (meter events), FOCUS 1.2 CSV.

One-shot (``meterline export --format lago|openmeter|stripe|focus …``) and continuous (``--follow``, or the
collector's forwarders): both read the store through :mod:`meterline.interop.export.ledger`, the durable
cursor that makes every event reach each target exactly once through restarts and rate limits.
"""

from __future__ import annotations

from meterline.interop.export.base import ChargeBy, ExportError, Target, load_mapping
from meterline.interop.export.runner import Exporter, Report

FORMATS = ("lago", "openmeter", "stripe")

__all__ = ["FORMATS", "ChargeBy", "ExportError", "Exporter", "Report", "Target", "load_mapping", "make_target"]


def make_target(fmt: str, url: str | None, api_key: str | None, charge_by: ChargeBy, **options: str | None) -> Target:
    """The target for ``fmt`` (lago, openmeter or stripe)."""
    if fmt == "lago":
        from meterline.interop.export.lago import LagoTarget

        return LagoTarget(url, api_key, charge_by, code=options.get("code") or "llm_usage")
    if fmt == "openmeter":
        from meterline.interop.export.openmeter import OpenMeterTarget

        return OpenMeterTarget(url, api_key, charge_by, event_type=options.get("event_type") or "llm_tokens")
    if fmt == "stripe":
        from meterline.interop.export.stripe import StripeTarget

        return StripeTarget(
            url,
            api_key,
            charge_by,
            event_name=options.get("event_name") or "llm_tokens",
            value=options.get("value") or "total_tokens",
        )
    raise ExportError(f"--format: unknown export target {fmt!r}; use one of {', '.join(FORMATS)}")
