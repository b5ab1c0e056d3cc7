"""The LiteLLM proxy callback moved to :mod:`meterline.gateway.callback`; this name stays for proxy configs
that say ``callbacks: ["meterline.integrations.litellm_proxy.handler"]``.

Resolved on first attribute access (PEP 562), so importing ``meterline.integrations`` never loads the
gateway, and integrations/ keep importing the core only.
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = ("MeterlineProxyHandler", "handler", "instrument", "uninstrument")


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return getattr(importlib.import_module("meterline.gateway.callback"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
