"""The LiteLLM proxy callback moved to :mod:`meterline.gateway.callback`; this name stays for proxy configs
that say ``callbacks: ["meterline.integrations.litellm_proxy.handler"]``."""

from __future__ import annotations

from meterline.gateway.callback import MeterlineProxyHandler, handler, instrument, uninstrument

__all__ = ["MeterlineProxyHandler", "handler", "instrument", "uninstrument"]
