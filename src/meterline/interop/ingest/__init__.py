"""Compatible ingest: the wire formats of clients people already run, mapped onto schema v1.

No HTTP framework here (the routes live in ``meterline.server.api.compat_*``): each module turns one
client's payload into :class:`~meterline.core.event.UsageEvent` objects, or raises
:class:`~meterline.core.event.EventValidationError` naming the client's own field.

Idempotency comes from the client's own ids: the event id is ``uuid5(NAMESPACE, "<client>:<its id>")``,
so a client's retry (same transaction id) is stored once.
"""

from __future__ import annotations

import uuid
from typing import Any

NAMESPACE = uuid.UUID("6d657465-726c-696e-6500-636f6d706174")  # "meterline compat", fixed forever


def event_id(client: str, transaction_id: str) -> str:
    """The event id for a client's own transaction id (stable across that client's retries)."""
    return str(uuid.uuid5(NAMESPACE, f"{client}:{transaction_id}"))


# provider spellings of other clients -> meterline provider names
_PROVIDER_ALIASES = {
    "aws.bedrock": "bedrock",
    "aws_bedrock": "bedrock",
    "amazon_bedrock": "bedrock",
    "azure.ai.openai": "azure",
    "azure_openai": "azure",
    "azure.ai.inference": "azure_ai",
    "gcp.vertex_ai": "vertex_ai",
    "vertex": "vertex_ai",
    "gcp.gemini": "gemini",
    "gcp.gen_ai": "gemini",
    "google": "gemini",
    "mistral_ai": "mistral",
    "x_ai": "xai",
    "ibm.watsonx.ai": "watsonx",
}
# names that say "a router", not the upstream provider: infer from the model instead
_NOT_A_PROVIDER = frozenset({"", "litellm", "litellm-proxy", "unknown", "other", "openai_compatible"})
_GENAI_TO_METERLINE = {"aws": "bedrock", "google": "gemini", "x-ai": "xai", "together": "together_ai"}


def infer_provider(provider: Any, model: str) -> str:
    """The upstream provider in meterline's spelling: the client's own value when it names one, else a
    ``provider/`` prefix of the model, else the provider genai-prices knows the model from, else ``unknown``."""
    name = str(provider or "").strip().lower()
    name = _PROVIDER_ALIASES.get(name, name)
    if name not in _NOT_A_PROVIDER:
        return name
    if "/" in model:
        prefix = model.split("/", 1)[0].lower()
        if prefix and prefix not in _NOT_A_PROVIDER:
            return _PROVIDER_ALIASES.get(prefix, prefix)
    return _lookup_provider(model) or "unknown"


_lookup_cache: dict[str, str | None] = {}


def _lookup_provider(model: str) -> str | None:
    if model in _lookup_cache:
        return _lookup_cache[model]
    found: str | None = None
    try:
        from genai_prices import data_snapshot

        provider, _ = data_snapshot.get_snapshot().find_provider_model(model, None, None, None)
        found = _GENAI_TO_METERLINE.get(provider.id, provider.id)
    except (LookupError, ValueError, AttributeError):
        found = None
    if len(_lookup_cache) > 10_000:
        _lookup_cache.clear()
    _lookup_cache[model] = found
    return found
