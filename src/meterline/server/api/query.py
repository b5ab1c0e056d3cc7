"""Read API: usage grouped by any dimension and time bucket, event listings, traces (scope ``read``)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool

from meterline.core.event import COST_FIELDS, DIMENSIONS, UsageEvent, format_cost
from meterline.server.deps import ReadKey, SettingsDep, StoreDep
from meterline.server.schemas import EventsPage, TraceResponse, UsageResponse
from meterline.store.query import TOKEN_METRICS, QueryError, UsageQuery, parse_query_time

router = APIRouter(tags=["query"])

_FILTER_HELP = (
    "Filters: any dimension as a query parameter, repeated for several values "
    f"(e.g. ?model=gpt-4o&model=claude-sonnet-4-5&environment=prod). Dimensions: {', '.join(DIMENSIONS)}."
)


def parse_time(value: str | None, name: str) -> datetime | None:
    return parse_query_time(value, name)


def filters_from(request: Request) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name in request.query_params:
        if name in DIMENSIONS:
            out[name] = request.query_params.getlist(name)
    return out


def wire_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format_cost(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


@router.get("/v1/usage", response_model=UsageResponse, description=_FILTER_HELP)
def usage(
    request: Request,
    key: ReadKey,
    store: StoreDep,
    group_by: Annotated[list[str], Query(description="dimensions, comma-separated or repeated")] = [],  # noqa: B006
    bucket: Annotated[str | None, Query(description="hour | day | week | month")] = None,
    start: Annotated[str | None, Query(description="ISO 8601, inclusive")] = None,
    end: Annotated[str | None, Query(description="ISO 8601, exclusive")] = None,
    tz: Annotated[str, Query(description="IANA zone for buckets")] = "UTC",
) -> dict[str, Any]:
    """Requests, errors, every token kind and every cost component (decimal strings) per group."""
    dims = [d.strip() for g in group_by for d in g.split(",") if d.strip()]
    q = UsageQuery(
        group_by=dims,
        bucket=bucket or None,
        start=parse_time(start, "start"),
        end=parse_time(end, "end"),
        filters=filters_from(request),
        tz=tz,
    )
    q.validate()
    rows = store.usage(q)
    return {
        "rows": [{k: wire_value(v) for k, v in r.items()} for r in rows],
        "group_by": dims,
        "bucket": q.bucket,
        "tz": tz,
    }


@router.get("/v1/events", response_model=EventsPage, description=_FILTER_HELP)
def events(
    request: Request,
    key: ReadKey,
    store: StoreDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, description="page size")] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    start: str | None = None,
    end: str | None = None,
) -> dict[str, Any]:
    """Events in (start_time, id) order, a page at a time."""
    if limit > settings.max_page_size:
        raise QueryError(f"limit: at most max_page_size ({settings.max_page_size})")
    page, next_cursor = store.events(
        filters=filters_from(request),
        start=parse_time(start, "start"),
        end=parse_time(end, "end"),
        cursor=cursor,
        limit=limit,
    )
    return {"events": [e.to_wire() for e in page], "next_cursor": next_cursor}


def trace_totals(events: list[UsageEvent]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "requests": len(events),
        "errors": sum(1 for e in events if e.status == "error"),
        "unpriced": sum(1 for e in events if e.total_cost is None),
    }
    for m in TOKEN_METRICS:
        out[m] = sum(getattr(e, m) for e in events)
    for c in COST_FIELDS:
        out[c] = format_cost(sum((getattr(e, c) or Decimal(0) for e in events), Decimal(0)))
    if events:
        out["start_time"] = min(e.start_time for e in events).isoformat()
        ends = [e.end_time or e.start_time for e in events]
        out["end_time"] = max(ends).isoformat()
    return out


@router.get("/v1/traces/{trace_id}", response_model=TraceResponse, responses={404: {"description": "no such trace"}})
async def trace(trace_id: str, key: ReadKey, store: StoreDep) -> dict[str, Any]:
    """Every event of one trace, in time order, with totals."""
    found: list[UsageEvent] = await run_in_threadpool(store.trace, trace_id)
    if not found:
        raise HTTPException(404, f"no events with trace_id {trace_id!r}")
    return {"trace_id": trace_id, "events": [e.to_wire() for e in found], "totals": trace_totals(found)}
