"""The numbers behind the pages, from the same store functions as ``GET /v1/usage`` (``store.usage``)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from meterline.core.event import UsageEvent, format_cost
from meterline.server.dashboard.common import TimeRange
from meterline.store import listings
from meterline.store.base import EventSQL, ReportStore, UsageReader
from meterline.store.query import UsageQuery

# the overview's "top" lists: (title, dimension)
TOP_DIMENSIONS = (
    ("Models", "model"),
    ("Customers", "subscriber_id"),
    ("API keys", "api_key_alias"),
    ("Teams", "team_id"),
    ("Products", "product_id"),
)
LATENCY_SAMPLE = 10_000
SHARE_PAGE_SIZE = 20


def totals(
    store: UsageReader, start: datetime, end: datetime, tz: str, filters: Mapping[str, Sequence[str]]
) -> dict[str, Any]:
    rows = store.usage(UsageQuery(start=start, end=end, tz=tz, filters=filters))
    row = rows[0] if rows else {}
    requests = int(row.get("requests", 0))
    prompt = sum(int(row.get(k, 0)) for k in ("input_tokens", "cache_read_tokens", "cache_write_tokens"))
    return {
        "spend": row.get("total_cost", Decimal(0)),
        "requests": requests,
        "tokens": int(row.get("total_tokens", 0)),
        "errors": int(row.get("errors", 0)),
        "unpriced": int(row.get("unpriced", 0)),
        "error_rate": int(row.get("errors", 0)) / requests if requests else None,
        # prompt-cache hit rate: share of prompt tokens read from the provider's cache
        "cache_hit_rate": int(row.get("cache_read_tokens", 0)) / prompt if prompt else None,
    }


def cards(store: UsageReader, tr: TimeRange, filters: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
    cur = totals(store, tr.start, tr.end, tr.tz, filters)
    prev = totals(store, *tr.previous, tr.tz, filters)
    out = []
    for key, title, kind in (
        ("spend", "Spend", "money"),
        ("requests", "Requests", "number"),
        ("tokens", "Tokens", "number"),
        ("error_rate", "Error rate", "percent"),
        ("cache_hit_rate", "Cache hit rate", "percent"),
    ):
        out.append({"key": key, "title": title, "kind": kind, "value": cur[key], "previous": prev[key]})
    return out


def series(
    store: UsageReader, tr: TimeRange, bucket: str, filters: Mapping[str, Sequence[str]]
) -> list[dict[str, Any]]:
    return list(store.usage(UsageQuery(bucket=bucket, start=tr.start, end=tr.end, tz=tr.tz, filters=filters)))


def chart_json(rows: Sequence[Mapping[str, Any]], metric: str = "total_cost") -> str:
    """Series for the time chart (static/dashboard.js draws it): seconds since the epoch and values."""
    xs = [int(r["bucket"].timestamp()) for r in rows]
    ys = [float(r[metric]) if isinstance(r[metric], Decimal) else r[metric] for r in rows]
    return json.dumps({"x": xs, "y": ys, "label": metric}).replace("</", "<\\/")


def top(
    store: ReportStore, tr: TimeRange, dim: str, n: int = 5, filters: Mapping[str, Sequence[str]] | None = None
) -> list[dict[str, Any]]:
    q = UsageQuery(group_by=[dim], start=tr.start, end=tr.end, tz=tr.tz, filters=filters or {})
    fast = listings.top_groups(store, q, n)
    if fast is not None:
        return fast
    rows = store.usage(q)
    rows.sort(key=lambda r: (r["total_cost"], r["requests"]), reverse=True)
    return list(rows[:n])


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of sorted ``values``."""
    if not values:
        return None
    rank = max(1, math.ceil(p / 100 * len(values)))
    return values[rank - 1]


def latency(store: EventSQL, tr: TimeRange, filters: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    durations, ttfts = listings.latency_sample(store, start=tr.start, end=tr.end, filters=filters, limit=LATENCY_SAMPLE)
    durations.sort()
    ttfts.sort()
    return {
        "sample": len(durations),
        "sample_limit": LATENCY_SAMPLE,
        "latency": {p: percentile(durations, p) for p in (50, 95, 99)},
        "ttft": {p: percentile(ttfts, p) for p in (50, 95, 99)},
        "streams": len(ttfts),
    }


def bars(rows: Sequence[Mapping[str, Any]], metric: str = "total_cost") -> list[float]:
    """Each row's share of the largest, in percent, for CSS bars."""
    biggest = max((float(r[metric] or 0) for r in rows), default=0.0)
    return [float(r[metric] or 0) * 100 / biggest if biggest else 0.0 for r in rows]


def customer_usage(
    store: ReportStore, tr: TimeRange, only: Mapping[str, Sequence[str]], before: str | None
) -> dict[str, Any]:
    """What a share link shows: every query is filtered by ``only`` (the one customer)."""
    by_model = top(store, tr, "model", 20, only)
    by_product = top(store, tr, "product_id", 20, only)
    daily = series(store, tr, "day", only)
    events, next_cursor = listings.recent_events(
        store, filters=only, start=tr.start, end=tr.end, before=before, limit=SHARE_PAGE_SIZE
    )
    return {
        "cards": cards(store, tr, only),
        "by_model": by_model,
        "by_model_bars": bars(by_model),
        "by_product": by_product,
        "by_product_bars": bars(by_product),
        "chart": chart_json(daily),
        "events": events,
        "next_cursor": next_cursor,
    }


def cost_breakdown(e: UsageEvent) -> list[dict[str, Any]]:
    """Per token class: tokens and cost (exact), for the event detail page."""
    return [
        {"cls": "input (uncached)", "tokens": e.input_tokens, "cost": e.input_cost},
        {"cls": "cache read", "tokens": e.cache_read_tokens, "cost": e.cache_read_cost},
        {"cls": "cache write", "tokens": e.cache_write_tokens, "cost": e.cache_write_cost},
        {"cls": "output (incl. reasoning)", "tokens": e.output_tokens, "cost": e.output_cost},
    ]


def trace_tree(events: Sequence[UsageEvent]) -> list[tuple[int, UsageEvent]]:
    """(depth, event) in display order: children under the event whose id (or transaction name) their
    ``parent_transaction_id`` names, in time order; an unknown parent makes a root."""
    by_key: dict[str, UsageEvent] = {}
    for e in events:
        by_key.setdefault(e.id, e)
        if e.transaction_name:
            by_key.setdefault(e.transaction_name, e)
    children: dict[str, list[UsageEvent]] = {}
    roots: list[UsageEvent] = []
    for e in events:
        parent = by_key.get(e.parent_transaction_id or "")
        if parent is None or parent.id == e.id:
            roots.append(e)
        else:
            children.setdefault(parent.id, []).append(e)
    out: list[tuple[int, UsageEvent]] = []
    seen: set[str] = set()

    def walk(e: UsageEvent, depth: int) -> None:
        if e.id in seen:  # a cycle of parent ids: show each event once
            return
        seen.add(e.id)
        out.append((depth, e))
        for c in children.get(e.id, []):
            walk(c, depth + 1)

    for r in roots:
        walk(r, 0)
    for e in events:  # events only reachable through a cycle
        if e.id not in seen:
            walk(e, 0)
    return out


def csv_value(value: Any) -> str:
    if isinstance(value, Decimal):
        return format_cost(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return "" if value is None else str(value)
