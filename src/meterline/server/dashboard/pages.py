"""Read pages (read or admin key): overview, explorer (+ CSV), requests and event detail, traces."""

from __future__ import annotations

import csv
import io
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from meterline.core.event import DIMENSIONS, format_cost
from meterline.server.api.query import trace_totals
from meterline.server.dashboard import auth, views
from meterline.server.dashboard.common import PAGE_SIZE, SECURITY_HEADERS, filters_from, render, start_timer, time_range
from meterline.store import listings
from meterline.store.query import BUCKETS, METRICS, QueryError, UsageQuery

router = APIRouter(dependencies=[Depends(start_timer)])
EXPLORER_ROWS = 100
TRACE_STEPS = 2000


def _bad(exc: QueryError) -> HTTPException:
    return HTTPException(400, str(exc))


@router.get("/", response_class=HTMLResponse)
def overview(request: Request) -> Response:
    auth.require(request)
    store = request.app.state.reader
    try:
        tr = time_range(request)
        bucket = request.query_params.get("bucket") or ("hour" if tr.days == 1 else "day")
        if bucket not in BUCKETS:
            raise QueryError(f"bucket: must be one of {', '.join(BUCKETS)}; got {bucket!r}")
        spend_rows = views.series(store, tr, bucket, {})
        tops = [(title, dim, views.top(store, tr, dim)) for title, dim in views.TOP_DIMENSIONS]
        context: dict[str, Any] = {
            "tr": tr,
            "bucket": bucket,
            "cards": views.cards(store, tr, {}),
            "chart": views.chart_json(spend_rows),
            "spend_rows": spend_rows,
            "tops": [(title, dim, rows, views.bars(rows)) for title, dim, rows in tops],
            "latency": views.latency(store, tr),
            "page": "overview",
        }
    except QueryError as exc:
        raise _bad(exc) from None
    if request.headers.get("hx-request") and request.query_params.get("part") == "spend":
        return render(request, "_spend.html", context)  # the bucket selector swaps only the chart
    return render(request, "overview.html", context)


def _explorer_query(request: Request) -> tuple[UsageQuery, Any, list[str]]:
    qp = request.query_params
    tr = time_range(request)
    dims = [d for d in (qp.get("group1"), qp.get("group2")) if d]
    if len(dims) == 2 and dims[0] == dims[1]:
        dims = dims[:1]
    filters = filters_from(request)
    for dim, value in zip(qp.getlist("fdim"), qp.getlist("fval"), strict=False):
        if dim and value:
            if dim not in DIMENSIONS:
                raise QueryError(f"filter: unknown dimension {dim!r}")
            filters.setdefault(dim, []).append(value)
    bucket = qp.get("bucket") or None
    q = UsageQuery(group_by=dims, bucket=bucket, start=tr.start, end=tr.end, filters=filters, tz=tr.tz)
    q.validate()
    return q, tr, dims


@router.get("/explore", response_class=HTMLResponse)
def explore(request: Request) -> Response:
    auth.require(request)
    try:
        q, tr, dims = _explorer_query(request)
        rows = request.app.state.reader.usage(q)
        page = max(0, int(request.query_params.get("page") or 0))
    except QueryError as exc:
        raise _bad(exc) from None
    except ValueError:
        raise HTTPException(400, "page: a whole number") from None
    if q.bucket is None:
        rows.sort(key=lambda r: (r["total_cost"], r["requests"]), reverse=True)
    shown = rows[page * EXPLORER_ROWS : (page + 1) * EXPLORER_ROWS]
    chart = None
    if q.bucket:
        per_bucket: dict[Any, dict[str, Any]] = {}
        for r in rows:  # the chart sums the groups of each bucket
            b = per_bucket.setdefault(r["bucket"], {"bucket": r["bucket"], "total_cost": 0})
            b["total_cost"] += r["total_cost"]
        chart = views.chart_json(list(per_bucket.values()))
    params = {k: request.query_params.getlist(k) for k in request.query_params if k != "page"}
    return render(
        request,
        "explore.html",
        {
            "page": "explore",
            "tr": tr,
            "q": q,
            "dims": dims,
            "rows": shown,
            "bars": views.bars(shown),
            "total_rows": len(rows),
            "page_no": page,
            "has_next": (page + 1) * EXPLORER_ROWS < len(rows),
            "chart": chart,
            "params": params,
            "filters": [(d, v) for d, vs in q.filters.items() for v in vs],
            "buckets": BUCKETS,
        },
    )


@router.get("/explore.csv")
def explore_csv(request: Request) -> Response:
    auth.require(request)
    try:
        q, _, dims = _explorer_query(request)
        rows = request.app.state.reader.usage(q)
    except QueryError as exc:
        raise _bad(exc) from None
    columns = [*(["bucket"] if q.bucket else []), *dims, *METRICS]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for r in rows:
        writer.writerow([views.csv_value(r.get(c)) for c in columns])
    headers = {**SECURITY_HEADERS, "Content-Disposition": 'attachment; filename="meterline-usage.csv"'}
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)


@router.get("/requests", response_class=HTMLResponse)
def requests_log(request: Request) -> Response:
    auth.require(request)
    try:
        tr = time_range(request)
        filters = filters_from(request)
        events, next_cursor = listings.recent_events(
            request.app.state.reader,
            filters=filters,
            start=tr.start,
            end=tr.end,
            before=request.query_params.get("before") or None,
            limit=PAGE_SIZE,
        )
    except QueryError as exc:
        raise _bad(exc) from None
    params = {k: request.query_params.getlist(k) for k in request.query_params if k != "before"}
    return render(
        request,
        "requests.html",
        {
            "page": "requests",
            "tr": tr,
            "events": events,
            "next_cursor": next_cursor,
            "filters": filters,
            "params": params,
            "first_page": not request.query_params.get("before"),
        },
    )


@router.get("/requests/{event_id}", response_class=HTMLResponse)
def request_detail(event_id: str, request: Request) -> Response:
    auth.require(request)
    event = listings.event_by_id(request.app.state.reader, event_id)
    if event is None:
        raise HTTPException(404, f"no event with id {event_id!r}")
    return render(
        request,
        "request.html",
        {
            "page": "requests",
            "e": event,
            "breakdown": views.cost_breakdown(event),
            "tz": request.query_params.get("tz"),
        },
    )


@router.get("/traces", response_class=HTMLResponse)
def traces(request: Request) -> Response:
    auth.require(request)
    try:
        tr = time_range(request)
        filters = filters_from(request)
        found, next_cursor = listings.recent_traces(
            request.app.state.reader,
            filters=filters,
            start=tr.start,
            end=tr.end,
            before=request.query_params.get("before") or None,
            limit=25,
        )
    except QueryError as exc:
        raise _bad(exc) from None
    params = {k: request.query_params.getlist(k) for k in request.query_params if k != "before"}
    return render(
        request,
        "traces.html",
        {"page": "traces", "tr": tr, "traces": found, "next_cursor": next_cursor, "params": params, "filters": filters},
    )


@router.get("/traces/{trace_id}", response_class=HTMLResponse)
def trace_detail(trace_id: str, request: Request) -> Response:
    """The steps of one trace as a tree (at most TRACE_STEPS of them), with totals over every step."""
    auth.require(request)
    store = request.app.state.reader
    events, more = store.events(filters={"trace_id": [trace_id]}, limit=TRACE_STEPS)
    if not events:
        raise HTTPException(404, f"no events with trace_id {trace_id!r}")
    if more is None:
        totals = trace_totals(events)
    else:  # too many steps to list: totals from the usage query over all of them
        row = store.usage(UsageQuery(filters={"trace_id": [trace_id]}))[0]
        totals = {k: row[k] for k in ("requests", "errors", "total_tokens")} | {
            "total_cost": format_cost(row["total_cost"])
        }
    return render(
        request,
        "trace.html",
        {
            "page": "traces",
            "trace_id": trace_id,
            "tree": views.trace_tree(events),
            "totals": totals,
            "truncated": more is not None,
        },
    )
