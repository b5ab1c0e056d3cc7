"""Shared by the compatible-ingest routes (Revenium, Lago, OpenMeter, OTLP): read a body, store events.

Each route answers in its own client's format; what they share is here: the size-limited body,
gzip, pricing at ingest (the same code as the SDK; an event the client priced keeps its cost), the
idempotent insert, the metrics counters and the ingest hooks (budget alerts)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from meterline.core.event import UsageEvent
from meterline.pricing import get_pricer
from meterline.server import batches
from meterline.server.api.ingest import read_body
from meterline.store.base import Store

logger = logging.getLogger("meterline.server")


async def body_of(request: Request) -> bytes:
    """The decompressed body; :class:`batches.BatchError` (413/415/400) when too large or not gzip."""
    settings = request.app.state.settings
    raw = await read_body(request, settings.max_body_bytes)
    return batches.decompress(raw, request.headers.get("content-encoding"), settings.max_body_bytes)


def _store(writer: Store, events: Sequence[UsageEvent]) -> int:
    pricer = get_pricer()
    for event in events:
        pricer.price(event)
    return int(writer.insert(events))


async def store(request: Request, events: Sequence[UsageEvent], rejected: int = 0) -> int:
    """Price and store ``events`` (one per id); returns how many were new. The store unavailable raises its
    driver's error: ``server/errors.py`` answers 503 + Retry-After in the route's client format."""
    unique = list({e.id: e for e in events}.values())
    new = await run_in_threadpool(_store, request.app.state.writer, unique) if unique else 0
    request.app.state.metrics.count_events(new, len(events) - new, rejected)
    hooks = list(getattr(request.app.state, "ingest_hooks", ()))
    if hooks and unique:
        asyncio.get_running_loop().run_in_executor(None, _run_hooks, hooks, unique)
    return new


def _run_hooks(hooks: list[Any], events: list[UsageEvent]) -> None:
    for hook in hooks:
        hook(events)
