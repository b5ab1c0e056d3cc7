"""OpenMeter's ingest API under ``/openmeter``: ``POST /openmeter/api/v1/events`` with CloudEvents
(``application/cloudevents+json``, ``application/cloudevents-batch+json`` or ``application/json``), so
LiteLLM's ``openmeter`` callback (``OPENMETER_API_ENDPOINT=http://collector/openmeter``) sends here.
Success is 204; errors are ``application/problem+json`` (invalid events named by index; the valid
events of the request are stored, and a re-send is de-duplicated on (source, id))."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from meterline.core.event import EventValidationError
from meterline.interop.ingest import cloudevents
from meterline.server import batches, errors
from meterline.server.api import _compat
from meterline.server.deps import IngestKey

router = APIRouter(tags=["compatible ingest"])
_TYPES = ("application/cloudevents+json", "application/cloudevents-batch+json", "application/json")


def _problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse(
        cloudevents.problem(status, title, detail, **extra), status_code=status, media_type="application/problem+json"
    )


@errors.client_format("/openmeter/api/v1/events")
def _client_error(request: Request, status: int, message: str) -> JSONResponse:
    titles = {401: "Unauthorized", 403: "Forbidden", 503: "Service Unavailable"}
    return _problem(status, titles.get(status, "Error"), message)


@router.post("/openmeter/api/v1/events", status_code=204, summary="OpenMeter ingest: CloudEvents")
async def openmeter_events(request: Request, key: IngestKey) -> Response:
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if ctype not in _TYPES:
        return _problem(415, "Unsupported Media Type", f"content type {ctype!r}; use one of {', '.join(_TYPES)}")
    try:
        doc: Any = json.loads(await _compat.body_of(request))
    except batches.BatchError as exc:
        return _problem(exc.status, "Bad Request", exc.message)
    except (ValueError, UnicodeDecodeError) as exc:
        return _problem(400, "Bad Request", f"body is not JSON: {exc}")
    if ctype == "application/cloudevents-batch+json" and not isinstance(doc, list):
        return _problem(400, "Bad Request", "a cloudevents-batch+json body must be a JSON array of events")
    items = doc if isinstance(doc, list) else [doc]
    if len(items) > request.app.state.settings.max_batch_events:
        return _problem(413, "Payload Too Large", f"more than max_batch_events ({len(items)} events)")
    now = datetime.now(timezone.utc)
    events, invalid = [], []
    for index, raw in enumerate(items):
        try:
            events.append(cloudevents.to_event(raw, now))
        except EventValidationError as exc:
            invalid.append({"index": index, "field": exc.field, "reason": exc.reason})
    await _compat.store(request, events, rejected=len(invalid))
    if invalid:
        first = invalid[0]
        detail = f"{len(invalid)} invalid event(s); event {first['index']}: {first['field']}: {first['reason']}"
        return _problem(400, "Bad Request", detail, errors=invalid)
    return Response(status_code=204)
