"""FastAPI dependencies: settings, stores, metrics and API-key authentication (as ``Annotated`` types)."""

from __future__ import annotations

import threading
import time
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from meterline.server.metrics import Metrics
from meterline.server.settings import Settings
from meterline.store import keys as key_store
from meterline.store.base import Store

# which key scopes may use an endpoint that needs a scope (admin may do everything)
ALLOWED = {"ingest": ("ingest", "admin"), "read": ("read", "admin"), "admin": ("admin",)}
LOCAL = key_store.ApiKey(id="local", name="--no-auth", scope="admin", prefix="", created_at=0.0, revoked_at=None)


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_store(request: Request) -> Store:
    """The reading store (SQLiteStore, PostgresStore or ClickHouseStore)."""
    store: Store = request.app.state.reader
    return store


def get_writer(request: Request) -> Store:
    """The writing store: the single SQLite writer, or the PostgreSQL (ClickHouse) store."""
    store: Store = request.app.state.writer
    return store


def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
WriterDep = Annotated[Store, Depends(get_writer)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]


class KeyCache:
    """Verified keys for a few seconds, so ingest does not query the key table on every batch.
    A key revoked on another replica stops working within ``ttl`` seconds (on this one at once)."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._hits: dict[str, tuple[float, key_store.ApiKey]] = {}

    def get(self, key_hash: str) -> key_store.ApiKey | None:
        with self._lock:
            hit = self._hits.get(key_hash)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, key_hash: str, rec: key_store.ApiKey) -> None:
        with self._lock:
            if len(self._hits) > 10_000:
                self._hits.clear()
            self._hits[key_hash] = (time.monotonic() + self.ttl, rec)

    def clear(self) -> None:
        with self._lock:
            self._hits.clear()


def presented_key(request: Request) -> str | None:
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = request.headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


def authenticate(request: Request, scope: str) -> key_store.ApiKey:
    settings: Settings = request.app.state.settings
    if not settings.auth:
        return LOCAL
    key = presented_key(request)
    if key is None:
        raise _unauthorized(
            f"missing API key: send 'Authorization: Bearer <key>' (or 'x-api-key: <key>') with a key of scope "
            f"{' or '.join(ALLOWED[scope])}; create one with `meterline keys create --scope {scope}`"
        )
    cache: KeyCache = request.app.state.key_cache
    key_hash = key_store.hash_key(key)
    rec = cache.get(key_hash)
    if rec is None:
        rec = key_store.find_key(request.app.state.reader, key)
        if rec is None:
            raise _unauthorized("unknown or revoked API key")
        cache.put(key_hash, rec)
    if rec.scope not in ALLOWED[scope]:
        raise HTTPException(
            403,
            f"this API key has scope {rec.scope!r}; {request.method} {request.url.path} needs scope "
            f"{' or '.join(repr(s) for s in ALLOWED[scope])}",
        )
    return rec


def _ingest(request: Request) -> key_store.ApiKey:
    return authenticate(request, "ingest")


def _read(request: Request) -> key_store.ApiKey:
    return authenticate(request, "read")


def _admin(request: Request) -> key_store.ApiKey:
    return authenticate(request, "admin")


IngestKey = Annotated[key_store.ApiKey, Depends(_ingest)]
ReadKey = Annotated[key_store.ApiKey, Depends(_read)]
AdminKey = Annotated[key_store.ApiKey, Depends(_admin)]
