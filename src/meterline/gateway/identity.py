"""Who made a proxied call, and the caller's metadata: from the virtual key, headers and the body.

Trust rule: values bound to the virtual key (team, organization, user, key alias) are set by the
operator and win over what a caller sends in headers or the body, unless the operator allows callers to
override them (``METERLINE_GATEWAY_ALLOW_OVERRIDE=true`` or ``MeterlineProxyHandler(allow_override=True)``).
Where the key binds none of them (the master key, a key without a team), a caller cannot name them either:
they stay empty, unless the operator trusts callers' identity
(``METERLINE_GATEWAY_TRUST_CALLER_IDENTITY=true`` or ``MeterlineProxyHandler(trust_caller_identity=True)``),
so a caller cannot charge its calls to another team's budget or organization.

Caller metadata, lowest precedence first: the body's ``user`` (end user), the body's ``metadata``
(``litellm_metadata`` on ``/v1/messages``, where ``metadata`` is Anthropic's own field), then
``x-revenium-*`` headers (drop-in compatibility), then ``x-meterline-*`` headers.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from meterline.core.constants import GATEWAY_HEADER
from meterline.core.metadata import METADATA_FIELDS, canonical_name, merge, normalise

_MESSAGES = ("anthropic_messages", "aanthropic_messages")
_READ = METADATA_FIELDS | {"credential_value", "credential_hash"}
_PREFIXES = ("x-revenium-", "x-meterline-")  # later prefix wins
_SHA256 = re.compile(r"[0-9a-f]{64}")
# key-bound identity: standard_logging metadata name -> event field
KEY_FIELDS = {
    "user_api_key_alias": "api_key_alias",
    "user_api_key_team_id": "team_id",
    "user_api_key_org_id": "organization_id",
    "user_api_key_user_id": "user_id",
}


def key_hash(value: Any) -> str | None:
    """LiteLLM's hashed token (sha256 hex). LiteLLM puts the RAW key in ``user_api_key_hash`` when
    authentication fails, so anything that is not a sha256 hex digest is hashed here: a raw key is
    never stored."""
    if not isinstance(value, str) or not value:
        return None
    if _SHA256.fullmatch(value):
        return value
    return hashlib.sha256(value.encode()).hexdigest()


def header_metadata(headers: Mapping[str, Any] | None) -> dict[str, Any]:
    """``x-meterline-subscriber-id: s1`` -> ``{"subscriber_id": "s1"}`` (and the x-revenium-* names)."""
    if not headers:
        return {}
    out: dict[str, Any] = {}
    for prefix in _PREFIXES:
        for name, value in headers.items():
            lname = str(name).lower()
            if not lname.startswith(prefix) or lname == GATEWAY_HEADER or not isinstance(value, str):
                continue
            field = lname[len(prefix) :].replace("-", "_")
            if field == "tags":
                out["tags"] = [t.strip() for t in value.split(",") if t.strip()]
            elif field == "response_quality_score":
                try:
                    out[field] = float(value)
                except ValueError:
                    out[field] = value  # normalise() names the bad field and drops it
            else:
                out[field] = value
    return out


# top-level names in a body's metadata that meterline reads (nested forms such as subscriber: {id: …})
_NESTED = frozenset({"subscriber", "organization", "product", "subscription", "usage_metadata", "meterline"})


def body_metadata(body: Mapping[str, Any] | None, call_type: str | None) -> dict[str, Any]:
    """meterline's fields from the body's metadata object.

    That object is shared with LiteLLM, which also writes its own entries into it (``user_api_key_*``,
    ``headers``, ``model_info``, …) while it handles the request, so only metadata field names are read
    (any accepted spelling; ``usage_metadata: {…}`` or ``meterline: {…}`` nest them explicitly).
    """
    if not isinstance(body, Mapping):
        return {}
    raw = body.get("litellm_metadata") if call_type in _MESSAGES else body.get("metadata")
    if not isinstance(raw, Mapping):
        return {}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if not isinstance(key, str):
            continue
        if key in ("usage_metadata", "meterline") and isinstance(value, Mapping):
            out.update(value)
        elif key in _NESTED or canonical_name(key) in _READ:
            out[key] = value
    return out


def caller_metadata(
    headers: Mapping[str, Any] | None, body: Mapping[str, Any] | None, call_type: str | None
) -> dict[str, Any]:
    """Normalised caller metadata (never raises: a bad field is logged and dropped)."""
    out: dict[str, Any] = {}
    if isinstance(body, Mapping) and isinstance(body.get("user"), str) and body["user"]:
        out["end_user_id"] = body["user"]
    out = merge(out, normalise(body_metadata(body, call_type), strict=False))
    return merge(out, normalise(header_metadata(headers), strict=False))


def key_identity(source: Mapping[str, Any]) -> dict[str, Any]:
    """Key-bound identity from LiteLLM's ``user_api_key_*`` metadata entries."""
    out: dict[str, Any] = {}
    for src, field in KEY_FIELDS.items():
        value = source.get(src)
        if isinstance(value, str) and value:
            out[field] = value
    return out


# what a key can bind: a caller never sets these unless the operator trusts callers (see the module docstring)
IDENTITY_FIELDS = frozenset(KEY_FIELDS.values())


def resolve(
    caller: Mapping[str, Any],
    key: Mapping[str, Any],
    *,
    allow_override: bool,
    trust_caller_identity: bool = False,
) -> dict[str, Any]:
    """Merge caller metadata and key identity by the trust rule (see the module docstring): with
    ``allow_override`` the caller wins everywhere; else the key's values win, and the caller's values of
    :data:`IDENTITY_FIELDS` the key leaves empty are dropped unless ``trust_caller_identity``."""
    if allow_override:
        return merge(key, caller)
    if not trust_caller_identity:
        caller = {k: v for k, v in caller.items() if k not in IDENTITY_FIELDS}
    return merge(caller, key)
