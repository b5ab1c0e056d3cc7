"""``POST /meter/v2/ai/completions``: the Revenium meter API, so revenium-python-sdk middlewares work with
``REVENIUM_METERING_BASE_URL=http://collector/meter`` and a ``hak_…`` key from
``meterline keys create --scope ingest --style revenium`` (sent as ``x-api-key``)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from meterline.core.event import EventValidationError
from meterline.interop.ingest import revenium
from meterline.server import batches, errors
from meterline.server.api import _compat
from meterline.server.deps import IngestKey

router = APIRouter(tags=["compatible ingest"])
PATH = "/meter/v2/ai/completions"


def _error(status: int, message: str) -> JSONResponse:
    """Revenium's API answers errors in Spring's shape: timestamp, status, error, message, path."""
    reason = {
        400: "Bad Request",
        401: "Unauthorized",
        403: "Forbidden",
        413: "Payload Too Large",
        415: "Unsupported Media Type",
        503: "Service Unavailable",
    }.get(status, "Error")
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body = {"timestamp": now, "status": status, "error": reason, "message": message, "path": PATH}
    return JSONResponse(body, status_code=status)


@errors.client_format(PATH)
def _client_error(request: Request, status: int, message: str) -> JSONResponse:
    return _error(status, message)


@router.post(PATH, status_code=201, summary="Revenium meter API: one AI completion")
async def revenium_completion(request: Request, key: IngestKey) -> JSONResponse:
    """One completion in Revenium's camelCase form → one event (id = uuid5 of ``transactionId``: the SDK's
    retries are stored once). Answers a MeteringResponseResource."""
    try:
        body: Any = json.loads(await _compat.body_of(request))
    except batches.BatchError as exc:
        return _error(exc.status, exc.message)
    except (ValueError, UnicodeDecodeError) as exc:
        return _error(400, f"body is not JSON: {exc}")
    try:
        event = revenium.to_event(body)
    except EventValidationError as exc:
        request.app.state.metrics.count_events(0, 0, 1)
        return _error(400, f"{exc.field}: {exc.reason}")
    await _compat.store(request, [event])
    return JSONResponse(revenium.response_resource(event, str(body["transactionId"])), status_code=201)
