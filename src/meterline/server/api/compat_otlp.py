"""``POST /v1/traces``: OTLP/HTTP trace export (protobuf, the Python exporter's default, or JSON; gzip), so
any OpenTelemetry SDK or collector emitting gen_ai spans sends here with
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://collector/v1/traces`` and
``OTEL_EXPORTER_OTLP_TRACES_HEADERS=Authorization=Bearer%20<ingest key>``.

One event per gen_ai provider-call span; other spans are ignored; spans that cannot be read are
counted in ``partial_success.rejected_spans`` of the ExportTraceServiceResponse."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from meterline.interop.ingest import otlp
from meterline.server import batches, errors
from meterline.server.api import _compat
from meterline.server.deps import IngestKey

router = APIRouter(tags=["compatible ingest"])
_PROTOBUF = "application/x-protobuf"


def _status(ctype: str, status: int, message: str) -> Response:
    # OTLP/HTTP errors carry a google.rpc.Status; JSON clients read the message, protobuf ones the code
    if ctype == _PROTOBUF and otlp.protobuf_available():
        from google.rpc.status_pb2 import Status

        return Response(Status(code=status, message=message).SerializeToString(), status, media_type=_PROTOBUF)
    return JSONResponse({"code": status, "message": message}, status_code=status)


@errors.client_format("/v1/traces")
def _client_error(request: Request, status: int, message: str) -> Response:
    ctype = request.headers.get("content-type", _PROTOBUF).split(";")[0].strip().lower()
    return _status(ctype, status, message)


@router.post("/v1/traces", summary="OTLP/HTTP traces: gen_ai spans become events")
async def otlp_traces(request: Request, key: IngestKey) -> Response:
    ctype = request.headers.get("content-type", _PROTOBUF).split(";")[0].strip().lower()
    if ctype not in (_PROTOBUF, "application/json"):
        return _status("application/json", 415, f"content type {ctype!r}; use application/x-protobuf or json")
    if ctype == _PROTOBUF and not otlp.protobuf_available():
        return _status(
            "application/json",
            415,
            "OTLP protobuf needs pip install 'meterline[interop]' on the collector; or export OTLP/JSON",
        )
    try:
        body = await _compat.body_of(request)
        spans = otlp.spans_from_protobuf(body) if ctype == _PROTOBUF else otlp.spans_from_json(body)
        result = otlp.convert(spans)
    except batches.BatchError as exc:
        return _status(ctype, exc.status, exc.message)
    except (otlp.OtlpError, ValueError, TypeError, AttributeError) as exc:
        return _status(ctype, 400, f"unreadable ExportTraceServiceRequest: {exc}")
    await _compat.store(request, result.events, rejected=result.rejected)
    message = "; ".join(result.errors)
    if result.rejected:
        message = f"{result.rejected} gen_ai span(s) rejected: {message}"
    if ctype == _PROTOBUF:
        return Response(otlp.response_protobuf(result.rejected, message), 200, media_type=_PROTOBUF)
    return JSONResponse(otlp.response_json(result.rejected, message))
