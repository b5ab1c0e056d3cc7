"""``POST /v1/events``: a batch of schema-v1 events, idempotent on ``id``, validated per event."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from meterline.server import batches
from meterline.server.deps import IngestKey, MetricsDep, SettingsDep, WriterDep
from meterline.server.schemas import EventBatch, IngestResult
from meterline.store.base import Store

logger = logging.getLogger("meterline.server")
router = APIRouter(tags=["ingest"])


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it passes ``limit`` bytes."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise batches.too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise batches.too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/v1/events",
    response_model=IngestResult,
    responses={
        207: {"model": IngestResult, "description": "some events were rejected (see `rejected`)"},
        413: {"description": "body or batch too large (the message names the limit)"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": EventBatch.model_json_schema()}},
            "description": "gzip bodies accepted (Content-Encoding: gzip)",
        }
    },
)
async def ingest(
    request: Request, key: IngestKey, settings: SettingsDep, writer: WriterDep, metrics: MetricsDep
) -> JSONResponse:
    """Store a batch. Events whose id is already stored are acknowledged as duplicates and not stored
    again; invalid events are listed in ``rejected`` (index, field, reason) and the others are stored.
    200 when nothing was rejected, 207 otherwise."""
    try:
        body = await read_body(request, settings.max_body_bytes)
        result = await run_in_threadpool(_store_batch, body, request.headers.get("content-encoding"), settings, writer)
    except batches.BatchError as exc:
        return JSONResponse({"detail": exc.message}, status_code=exc.status)
    metrics.count_events(result["accepted"], result["duplicates"], len(result["rejected"]))
    stored = result.pop("_events")
    hooks = list(getattr(request.app.state, "ingest_hooks", ()))  # e.g. budget alerts
    if hooks and stored:
        # on a worker thread, not awaited: neither the answer nor this request's metrics wait for them
        asyncio.get_running_loop().run_in_executor(None, _run_hooks, hooks, stored)
    return JSONResponse(result, status_code=207 if result["rejected"] else 200)


def _run_hooks(hooks: list[Any], events: list[Any]) -> None:
    for hook in hooks:
        hook(events)


def _store_batch(body: bytes, encoding: str | None, settings: Any, writer: Store) -> dict[str, Any]:
    raw = batches.decompress(body, encoding, settings.max_body_bytes)
    items = batches.parse_events(raw, settings.max_batch_events)
    events, indexes, rejected, repeats = batches.validate_indexed(items)
    # a batch the store refuses is stored event by event: one unstorable event never holds back the rest.
    # The store unavailable raises: server/errors.py answers 503 + Retry-After (nothing of the batch is lost:
    # the client retries it, and ids already stored count as duplicates)
    new, failed = writer.insert_each(events)
    if failed:
        for i, reason in failed:
            logger.warning("meterline collector: the store refused event %s: %s", events[i].id, reason)
            rejected.append(batches.rejection(indexes[i], events[i].id, "event", f"the store refused it: {reason}"))
        rejected.sort(key=lambda r: int(r["index"]))
        refused = {i for i, _ in failed}
        events = [e for i, e in enumerate(events) if i not in refused]
    return {"accepted": new, "duplicates": len(events) - new + repeats, "rejected": rejected, "_events": events}
