"""API-key management over HTTP (scope ``admin``). The first admin key comes from the command line
(``meterline keys create --scope admin`` against the database): see docs/guides/collector.md."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool

from meterline.server.deps import AdminKey, WriterDep
from meterline.server.schemas import KeyCreate, KeyCreated, KeyInfo
from meterline.store import keys as key_store

router = APIRouter(tags=["keys"])


@router.post("/v1/keys", response_model=KeyCreated, status_code=201)
async def create_key(body: KeyCreate, key: AdminKey, writer: WriterDep) -> dict[str, Any]:
    """Create a key; the response is the only time its value is shown."""
    try:
        clear, rec = await run_in_threadpool(key_store.create_key, writer, body.scope, body.name, style=body.style)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    return {**rec.to_dict(), "key": clear}


@router.get("/v1/keys", response_model=list[KeyInfo])
async def list_keys(key: AdminKey, writer: WriterDep) -> list[dict[str, Any]]:
    recs = await run_in_threadpool(key_store.list_keys, writer)
    return [r.to_dict() for r in recs]


@router.delete("/v1/keys/{key_id}", response_model=KeyInfo)
async def revoke_key(key_id: str, request: Request, key: AdminKey, writer: WriterDep) -> dict[str, Any]:
    """Revoke by id or prefix; this replica forgets it at once, others within key_cache_seconds."""
    rec = await run_in_threadpool(key_store.revoke_key, writer, key_id)
    if rec is None:
        raise HTTPException(404, f"no single active key with id or prefix {key_id!r}")
    request.app.state.key_cache.clear()
    return rec.to_dict()
