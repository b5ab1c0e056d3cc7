"""Business metadata: normalising field spellings, merging scopes, and the environment fallbacks.

Accepted spellings (so Revenium middleware users can switch without rewriting):
snake_case schema names (``subscriber_id``), camelCase (``subscriberId``), dotted (``subscriber.id``),
nested (``subscriber={"id": ..., "email": ..., "credential": {"name": ..., "value": ...}}``) and the older
flat Revenium names (``subscriber_credential_name``, ``subscriber_credential``).
A credential *value* is never kept: only its salted hash (``credential_hash``); any other key under a
``credential`` (``{"credential": {"name", "value", "token": ...}}``) is dropped, never stored.
The salt is ``METERLINE_HASH_SALT`` or, when unset, a random salt generated once per installation in
``<user data dir>/hash_salt`` (hosts that must produce the same hashes share one ``METERLINE_HASH_SALT``).
Keys that are not schema fields become ``attributes`` (flat string -> scalar map, bounded).

(This module was ``meterline.metadata``; renamed so it no longer collides with the public
``meterline.metadata(...)`` scope function.)
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import os
import re
import secrets
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from meterline.core.event import ATTRIBUTION_DIMENSIONS, GATEWAY_IDENTITY, MAX_ATTRIBUTES, MAX_STRING, MAX_TAGS

logger = logging.getLogger("meterline")

# Schema fields that metadata may set.
STRING_FIELDS = frozenset((*ATTRIBUTION_DIMENSIONS, *GATEWAY_IDENTITY))
_LIMITS = {"trace_type": 128, "trace_name": 256}
METADATA_FIELDS = STRING_FIELDS | {"response_quality_score", "retry_number", "tags", "attributes"}

_ALIASES = {
    "subscriber.id": "subscriber_id",
    "subscriber.email": "subscriber_email",
    "subscriber.credential.name": "credential_name",
    "subscriber_credential_name": "credential_name",
    "subscriber.credential.value": "credential_value",
    "subscriber.credential": "credential_value",
    "subscriber_credential": "credential_value",
    "credential": "credential_value",
    "credential.name": "credential_name",
    "credential.value": "credential_value",
    "organization.id": "organization_id",
    "organization_name": "organization_id",
    "organization.name": "organization_id",
    "product.id": "product_id",
    "product_name": "product_id",
    "product.name": "product_id",
    "subscription.id": "subscription_id",
    "quality_score": "response_quality_score",
    "trace": "trace_id",
}

# Fields an integration owns; setting them through metadata is a mistake worth naming.
_OWNED = frozenset(
    {
        "id",
        "provider",
        "model",
        "operation",
        "status",
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "total_cost",
        "start_time",
        "end_time",
        "integration",
    }
)

_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


class MetadataError(ValueError):
    """A metadata field has a bad name or value; ``field`` names it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"meterline metadata field {field!r}: {reason}")
        self.field = field
        self.reason = reason


def hash_credential(value: str) -> str:
    """Salted HMAC-SHA256 of a credential value; the value itself is never kept."""
    return hmac.new(hash_salt(), value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:32]


_salt_cache: dict[str, bytes] = {}
_salt_lock = threading.Lock()


def hash_salt() -> bytes:
    """``METERLINE_HASH_SALT``, else this installation's own random salt (``hash_salt`` in the user data dir,
    created on first use with mode 0600). There is no public default: a hash made with a published salt
    could be reversed for short or common keys by anyone."""
    env = os.environ.get("METERLINE_HASH_SALT")
    if env:
        return env.encode()
    from meterline.core.config import data_dir

    path = data_dir() / "hash_salt"
    key = str(path)
    cached = _salt_cache.get(key)
    if cached is not None:
        return cached
    with _salt_lock:
        salt = _load_or_create_salt(path)
        _salt_cache[key] = salt
    return salt


def _load_or_create_salt(path: Path) -> bytes:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    except OSError as exc:  # a read-only home: a per-process salt still never publishes anything
        logger.warning("meterline: cannot create %s (%s); credential hashes differ per process", path, exc)
        return secrets.token_hex(32).encode()
    else:
        try:
            os.write(fd, secrets.token_hex(32).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    for _ in range(50):  # another process may be writing it right now
        try:
            salt = path.read_bytes().strip()
        except OSError as exc:
            logger.warning("meterline: cannot read %s (%s); credential hashes differ per process", path, exc)
            return secrets.token_hex(32).encode()
        if salt:
            return salt
        time.sleep(0.01)
    return secrets.token_hex(32).encode()


def _under_credential(key: str) -> bool:
    """A key inside a credential mapping (``subscriber.credential.extra``) or named like a secret part of one
    (``credential_token``): never stored, whatever its value."""
    parts = [p.lower() for p in key.replace("-", "_").split(".")]
    if "credential" in parts[:-1] or "subscriber_credential" in parts[:-1]:
        return True
    last = parts[-1]
    return last.startswith(("credential_", "subscriber_credential_")) or last in ("credential", "credentials")


def _flatten(fields: Mapping[str, Any], prefix: str, out: dict[str, Any]) -> None:
    for key, value in fields.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and key != "attributes":
            _flatten(value, f"{name}.", out)
        else:
            out[name] = value


def canonical_name(key: str) -> str:
    snake = ".".join(_CAMEL.sub(r"_\1", part).lower() for part in key.split("."))
    return _ALIASES.get(snake, snake)


def _scalar(field: str, value: Any) -> str | int | float | bool:
    if isinstance(value, str):
        return value[:MAX_STRING]
    if isinstance(value, (bool, int)) or (isinstance(value, float) and math.isfinite(value)):
        return value
    raise MetadataError(field, f"must be a string, number or boolean; got {type(value).__name__}")


def _one(out: dict[str, Any], name: str, value: Any, raw_key: str) -> None:
    if name in STRING_FIELDS:
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise MetadataError(raw_key, f"must be a string; got {type(value).__name__}")
        text = str(value)
        limit = _LIMITS.get(name, MAX_STRING)
        if len(text) > limit:
            raise MetadataError(raw_key, f"longer than {limit} characters")
        if name in ("organization_id", "product_id") and raw_key.endswith(("name", "Name")):
            out.setdefault(name, text)  # an explicit *_id wins over a *_name spelling
        else:
            out[name] = text
    elif name == "credential_value":
        if not isinstance(value, str):
            raise MetadataError(raw_key, "must be a string")
        out["credential_hash"] = hash_credential(value)
    elif name == "response_quality_score":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise MetadataError(raw_key, f"must be a number between 0 and 1; got {value!r}")
        out[name] = float(value)
    elif name == "retry_number":
        if isinstance(value, bool):
            raise MetadataError(raw_key, "must be a non-negative integer")
        try:
            n = int(value)
        except (TypeError, ValueError):
            raise MetadataError(raw_key, f"must be a non-negative integer; got {value!r}") from None
        if n < 0:
            raise MetadataError(raw_key, "must be a non-negative integer")
        out[name] = n
    elif name == "tags":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple, set, frozenset)) or not all(isinstance(t, str) for t in value):
            raise MetadataError(raw_key, "must be a list of strings")
        out["tags"] = list(value)
    elif name == "attributes":
        if not isinstance(value, Mapping):
            raise MetadataError(raw_key, "must be a mapping of names to scalar values")
        for k, v in value.items():
            if _under_credential(str(k)):
                logger.warning("meterline: attribute %r under a credential is not stored", str(k))
                continue
            out.setdefault("attributes", {})[str(k)] = _scalar(f"attributes.{k}", v)
    elif name in _OWNED:
        raise MetadataError(raw_key, "is measured by meterline and cannot be set through metadata")
    elif _under_credential(raw_key) or _under_credential(name):
        # only a credential's name and the hash of its value are kept; the rest may be secret
        logger.warning("meterline: metadata key %r under a credential is not stored", raw_key)
    else:
        out.setdefault("attributes", {})[raw_key] = _scalar(raw_key, value)


def normalise(fields: Mapping[str, Any] | None, *, strict: bool = True) -> dict[str, Any]:
    """Canonical metadata dict from any accepted spelling.

    strict: raise :class:`MetadataError` on a bad field; otherwise log a warning and drop that field
    (used for per-call ``usage_metadata=``, which must never break the caller's call).
    """
    if not fields:
        return {}
    if not isinstance(fields, Mapping):
        if strict:
            raise MetadataError("usage_metadata", f"must be a mapping; got {type(fields).__name__}")
        logger.warning("meterline: usage_metadata ignored: must be a mapping, got %s", type(fields).__name__)
        return {}
    flat: dict[str, Any] = {}
    _flatten(fields, "", flat)
    out: dict[str, Any] = {}
    for raw_key, value in flat.items():
        if value is None:
            continue
        try:
            _one(out, canonical_name(raw_key), value, raw_key)
        except MetadataError as exc:
            if strict:
                raise
            logger.warning("meterline: %s (field dropped)", exc)
    _bound(out, strict)
    return out


def _bound(out: dict[str, Any], strict: bool) -> None:
    attrs = out.get("attributes")
    if attrs and len(attrs) > MAX_ATTRIBUTES:
        if strict:
            raise MetadataError("attributes", f"at most {MAX_ATTRIBUTES} entries")
        out["attributes"] = dict(list(attrs.items())[:MAX_ATTRIBUTES])
    tags = out.get("tags")
    if tags and len(tags) > MAX_TAGS:
        if strict:
            raise MetadataError("tags", f"at most {MAX_TAGS} tags")
        out["tags"] = tags[:MAX_TAGS]


def merge(outer: Mapping[str, Any], inner: Mapping[str, Any]) -> dict[str, Any]:
    """Inner wins per field; tags are concatenated (de-duplicated), attributes merged."""
    if not outer:
        return dict(inner)
    merged = dict(outer)
    for key, value in inner.items():
        if key == "tags":
            merged["tags"] = list(dict.fromkeys([*outer.get("tags", ()), *value]))
        elif key == "attributes":
            merged["attributes"] = {**outer.get("attributes", {}), **value}
        else:
            merged[key] = value
    return merged


# Environment fallbacks, lowest precedence. First variable set wins.
ENV_FALLBACKS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("environment", ("METERLINE_ENVIRONMENT", "ENVIRONMENT", "DEPLOYMENT_ENV")),
    ("region", ("METERLINE_REGION", "AWS_REGION", "AZURE_REGION", "GCP_REGION", "GOOGLE_CLOUD_REGION")),
    ("credential_alias", ("METERLINE_CREDENTIAL_ALIAS",)),
    ("trace_type", ("METERLINE_TRACE_TYPE",)),
    ("trace_name", ("METERLINE_TRACE_NAME",)),
    ("parent_transaction_id", ("METERLINE_PARENT_TRANSACTION_ID",)),
    ("transaction_name", ("METERLINE_TRANSACTION_NAME",)),
    ("retry_number", ("METERLINE_RETRY_NUMBER",)),
)


def environment_fallbacks(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    env = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    for field, names in ENV_FALLBACKS:
        for name in names:
            value = env.get(name)
            if value:
                try:
                    _one(out, field, value, name)
                except MetadataError as exc:
                    logger.warning("meterline: environment variable %s ignored: %s", name, exc.reason)
                break
    return out
