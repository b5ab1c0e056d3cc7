"""An example LiteLLM ``custom_auth`` hook: virtual keys with identity, without LiteLLM's database.

Without a database the LiteLLM proxy only accepts its master key. This hook maps API keys to an
identity (alias, team, organization, user) from a YAML/JSON file or an environment variable::

    general_settings:
      custom_auth: meterline.gateway.auth.user_api_key_auth

    # METERLINE_GATEWAY_KEYS=/etc/meterline/keys.yaml   (or inline JSON: '{"keys": {...}}')
    keys:
      sk-team-a-1: {key_alias: checkout-app, team_id: team-a, org_id: acme, user_id: alice, rpm_limit: 60}
      sk-team-b-1: {key_alias: search-app, team_id: team-b, org_id: acme}

The master key (``LITELLM_MASTER_KEY``) is accepted too, with no identity. Keys are compared by their
sha256 digest in constant time; only digests are kept in memory after loading.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_FIELDS = ("key_alias", "team_id", "org_id", "user_id", "team_alias", "user_email")
_LIMITS = ("rpm_limit", "tpm_limit", "max_parallel_requests")  # per-key rate limits LiteLLM enforces
_lock = threading.Lock()
_cache: tuple[str, dict[str, dict[str, Any]]] | None = None


class KeyFileError(ValueError):
    pass


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_keys(data: Any, source: str = "keys") -> dict[str, dict[str, Any]]:
    """``{"keys": {raw_key: {key_alias, team_id, org_id, user_id}}}`` -> {sha256(key): identity}."""
    keys = data.get("keys") if isinstance(data, Mapping) else None
    if not isinstance(keys, Mapping):
        raise KeyFileError(f"{source}: expected a mapping with a 'keys' object of key -> identity")
    out: dict[str, dict[str, Any]] = {}
    for raw, ident in keys.items():
        if not isinstance(raw, str) or not raw:
            raise KeyFileError(f"{source}: keys must be non-empty strings")
        ident = ident or {}
        if not isinstance(ident, Mapping):
            raise KeyFileError(f"{source}: keys.{raw[:6]}…: expected a mapping of {', '.join(_FIELDS)}")
        unknown = [k for k in ident if k not in _FIELDS + _LIMITS]
        if unknown:
            known = ", ".join(_FIELDS + _LIMITS)
            raise KeyFileError(f"{source}: keys.{raw[:6]}….{unknown[0]}: unknown field; known: {known}")
        entry: dict[str, Any] = {}
        for k, v in ident.items():
            if v is None:
                continue
            if k in _LIMITS:
                if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                    raise KeyFileError(f"{source}: keys.{raw[:6]}….{k}: must be a positive integer")
                entry[k] = v
            else:
                entry[k] = str(v)
        out[_digest(raw)] = entry
    return out


def load_keys(spec: str | None = None) -> dict[str, dict[str, Any]]:
    """Keys from ``spec`` (a file path, or inline JSON), default ``METERLINE_GATEWAY_KEYS``; cached."""
    global _cache
    spec = spec if spec is not None else os.environ.get("METERLINE_GATEWAY_KEYS", "")
    with _lock:
        if _cache is not None and _cache[0] == spec:
            return _cache[1]
    if not spec:
        keys: dict[str, dict[str, Any]] = {}
    elif spec.lstrip().startswith("{"):
        keys = parse_keys(json.loads(spec), "METERLINE_GATEWAY_KEYS")
    else:
        import yaml

        keys = parse_keys(yaml.safe_load(Path(spec).read_text()), spec)
    with _lock:
        _cache = (spec, keys)
    return keys


def lookup(api_key: str) -> dict[str, Any] | None:
    """The identity bound to ``api_key``; ``{}`` for the master key; None when unknown."""
    digest = _digest(api_key)
    master = os.environ.get("LITELLM_MASTER_KEY")
    if master and hmac.compare_digest(digest, _digest(master)):
        return {}
    for known, ident in load_keys().items():
        if hmac.compare_digest(digest, known):
            return ident
    return None


async def user_api_key_auth(request: Any, api_key: str) -> Any:
    """LiteLLM ``custom_auth`` entry point."""
    from fastapi import HTTPException
    from litellm.proxy._types import UserAPIKeyAuth

    key = api_key.removeprefix("Bearer ").strip() if isinstance(api_key, str) else ""
    ident = lookup(key) if key else None
    if ident is None:
        raise HTTPException(status_code=401, detail={"error": "meterline gateway: unknown API key"})
    fields: dict[str, Any] = dict(ident)
    return UserAPIKeyAuth(api_key=key, **fields)
