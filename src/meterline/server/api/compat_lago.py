"""Lago's events API under ``/lago``: ``POST /lago/api/v1/events`` and ``/lago/api/v1/events/batch``, so
LiteLLM's ``lago`` callback (``LAGO_API_BASE=http://collector/lago``) and lago-python-client
(``api_url="http://collector/lago/"``) send here unchanged (``Authorization: Bearer <ingest key>``).

Answers as Lago does: ``{"event": EventObject}`` / ``{"events": [...]}``; invalid events get Lago's 422
``validation_errors`` body (keyed by index in a batch). The valid events of a batch are stored even when
others are refused: a client that re-sends the batch is de-duplicated on ``transaction_id``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from meterline.interop.ingest import lago
from meterline.server import batches, errors
from meterline.server.api import _compat
from meterline.server.deps import IngestKey

router = APIRouter(tags=["compatible ingest"])


def _bad_request(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"status": status, "error": message, "code": "bad_request"}, status_code=status)


# Lago's own bodies: 401 {status, error: "Unauthorized"}, 403 {status, error: "Forbidden", code}; meterline's
# explanation (which key, which scope) rides along in "message"
_CLIENT_ERRORS = {
    401: ("Unauthorized", None),
    403: ("Forbidden", "insufficient_scope"),
    503: ("Service Unavailable", "store_unavailable"),
}


@errors.client_format("/lago/api/v1/events", "/lago/api/v1/events/batch")
def _client_error(request: Request, status: int, message: str) -> JSONResponse:
    error, code = _CLIENT_ERRORS.get(status, ("Error", None))
    body: dict[str, Any] = {"status": status, "error": error}
    if code is not None:
        body["code"] = code
    body["message"] = message
    return JSONResponse(body, status_code=status)


async def _doc(request: Request, root: str) -> Any:
    try:
        doc = json.loads(await _compat.body_of(request))
    except batches.BatchError as exc:
        return _bad_request(exc.message, exc.status)
    except (ValueError, UnicodeDecodeError) as exc:
        return _bad_request(f"BadRequest: body is not JSON: {exc}")
    if not isinstance(doc, Mapping) or doc.get(root) is None:
        return _bad_request(f"BadRequest: param is missing or the value is empty: {root}")
    return doc[root]


@router.post("/lago/api/v1/events", summary="Lago events API: one event")
async def lago_event(request: Request, key: IngestKey) -> JSONResponse:
    raw = await _doc(request, "event")
    if isinstance(raw, JSONResponse):
        return raw
    try:
        event = lago.to_event(raw, datetime.now(timezone.utc))
    except lago.LagoError as exc:
        request.app.state.metrics.count_events(0, 0, 1)
        return JSONResponse(lago.validation_error({exc.field: [exc.reason]}), status_code=422)
    await _compat.store(request, [event])
    return JSONResponse({"event": lago.event_object(raw, event)})


@router.post("/lago/api/v1/events/batch", summary="Lago events API: a batch of up to 100 events")
async def lago_batch(request: Request, key: IngestKey) -> JSONResponse:
    items = await _doc(request, "events")
    if isinstance(items, JSONResponse):
        return items
    if not isinstance(items, list):
        return JSONResponse(lago.validation_error({"events": ["invalid_type"]}), status_code=422)
    if len(items) > lago.MAX_BATCH:
        return JSONResponse(lago.validation_error({"events": ["too_many_events"]}), status_code=422)
    now = datetime.now(timezone.utc)
    accepted: list[tuple[Any, Any]] = []
    invalid: dict[str, Any] = {}
    for index, raw in enumerate(items):
        try:
            accepted.append((raw, lago.to_event(raw, now)))
        except lago.LagoError as exc:
            invalid[str(index)] = {exc.field: [exc.reason]}
    await _compat.store(request, [e for _, e in accepted], rejected=len(invalid))
    if invalid:
        return JSONResponse(lago.validation_error(invalid), status_code=422)
    return JSONResponse({"events": [lago.event_object(raw, e) for raw, e in accepted]})
