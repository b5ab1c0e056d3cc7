"""API keys of the collector: stored as SHA-256 hashes, never in clear.

A key is 32 random bytes (``ml_`` + scope letter + base32 text), so a plain SHA-256 is enough: there is
nothing to brute-force that a salt would protect. The clear key is shown once, when it is created.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import time
import uuid
from typing import Any

from meterline.store.base import SQLStore as SQLStore  # its home is store.base; importable here as before
from meterline.store.extensions import register_tables
from meterline.store.sql import sql

SCOPES = ("ingest", "read", "admin")
# key spellings: meterline's own, and Revenium's (revenium-python-sdk refuses keys not starting with hak_/rev_)
STYLES = ("meterline", "revenium")
TABLE = "api_keys"


@dataclasses.dataclass(frozen=True)
class ApiKey:
    id: str
    name: str | None
    scope: str
    prefix: str  # the first characters of the key, to recognise it in a list
    created_at: float
    revoked_at: float | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"active": self.active}


def _tables(dialect: str) -> list[str]:
    real = "DOUBLE PRECISION" if dialect == "postgresql" else "REAL"
    return [
        f"CREATE TABLE IF NOT EXISTS {TABLE} (id TEXT PRIMARY KEY, name TEXT, scope TEXT NOT NULL, "
        f"prefix TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE, created_at {real} NOT NULL, revoked_at {real})"
    ]


register_tables("api_keys", _tables)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.strip().encode()).hexdigest()


def create_key(store: SQLStore, scope: str, name: str | None = None, *, style: str = "meterline") -> tuple[str, ApiKey]:
    """A new key: (the clear key, to show once; its record). ``style="revenium"`` spells it ``hak_…`` so
    Revenium's SDKs accept it; scopes and hashing are the same."""
    if scope not in SCOPES:
        raise ValueError(f"scope: must be one of {', '.join(SCOPES)}; got {scope!r}")
    if style not in STYLES:
        raise ValueError(f"style: must be one of {', '.join(STYLES)}; got {style!r}")
    if name is not None and (len(name) > 256 or "\x00" in name or not name.isprintable()):
        raise ValueError("name: at most 256 printable characters")
    prefix = "hak" if style == "revenium" else "ml"
    key = f"{prefix}_{scope[0]}_{secrets.token_urlsafe(32)}"
    rec = ApiKey(id=str(uuid.uuid4()), name=name, scope=scope, prefix=key[:10], created_at=time.time(), revoked_at=None)
    store.execute(
        sql(
            store.dialect,
            f"INSERT INTO {TABLE} (id, name, scope, prefix, key_hash, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        ),
        (rec.id, name, scope, rec.prefix, hash_key(key), rec.created_at),
    )
    return key, rec


_COLS = "id, name, scope, prefix, created_at, revoked_at"


def list_keys(store: SQLStore, *, include_revoked: bool = True) -> list[ApiKey]:
    where = "" if include_revoked else " WHERE revoked_at IS NULL"
    rows = store.fetch(f"SELECT {_COLS} FROM {TABLE}{where} ORDER BY created_at, id")
    return [ApiKey(*r) for r in rows]


def find_key(store: SQLStore, key: str) -> ApiKey | None:
    """The active key record for a clear key, or None (unknown or revoked)."""
    rows = store.fetch(
        sql(store.dialect, f"SELECT {_COLS} FROM {TABLE} WHERE key_hash = ? AND revoked_at IS NULL"), (hash_key(key),)
    )
    return ApiKey(*rows[0]) if rows else None


def revoke_key(store: SQLStore, key_id_or_prefix: str) -> ApiKey | None:
    """Revoke a key by id or by its shown prefix (must match exactly one active key)."""
    rows = store.fetch(
        sql(store.dialect, f"SELECT {_COLS} FROM {TABLE} WHERE (id = ? OR prefix = ?) AND revoked_at IS NULL"),
        (key_id_or_prefix, key_id_or_prefix),
    )
    if len(rows) != 1:
        return None
    rec = ApiKey(*rows[0])
    now = time.time()
    store.execute(sql(store.dialect, f"UPDATE {TABLE} SET revoked_at = ? WHERE id = ?"), (now, rec.id))
    return dataclasses.replace(rec, revoked_at=now)


def count_active(store: SQLStore) -> int:
    return int(store.fetch(f"SELECT COUNT(*) FROM {TABLE} WHERE revoked_at IS NULL")[0][0])
