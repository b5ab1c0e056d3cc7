"""Turn an ingest request body into stored events: decompress, parse, validate each event, price.

No SQL here (the store does that) and no HTTP framework: errors are :class:`BatchError` with the status
code the API answers with, so the logic is the same for every router that ingests.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from typing import Any

from meterline.core.event import COST_FIELDS, MAX_COST, EventValidationError, UsageEvent
from meterline.pricing import get_pricer


class BatchError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def too_large(limit: int) -> BatchError:
    return BatchError(413, f"request body larger than max_body_bytes ({limit} bytes); send smaller batches")


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """The body after ``Content-Encoding: gzip`` (or deflate), refusing to inflate past ``limit``."""
    enc = (encoding or "identity").strip().lower()
    if enc in ("", "identity"):
        return body
    if enc not in ("gzip", "deflate", "x-gzip"):
        raise BatchError(415, f"Content-Encoding {encoding!r} is not supported; use gzip or none")
    wbits = 16 + zlib.MAX_WBITS if enc != "deflate" else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BatchError(400, f"body is not valid {enc} data: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise too_large(limit)
    return out


def parse_events(body: bytes, max_events: int) -> list[Any]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BatchError(400, f"body is not JSON: {exc}"[:300]) from None
    except RecursionError:  # a hostile nesting (thousands of [[[…) exhausts the parser's stack
        raise BatchError(400, "body is not JSON this collector reads: nested too deeply") from None
    if isinstance(doc, dict) and "events" in doc:
        items = doc["events"]
    elif isinstance(doc, list):
        items = doc
    else:
        raise BatchError(400, 'body must be {"events": [...]} (or a JSON array of events)')
    if not isinstance(items, list):
        raise BatchError(400, "events: must be a list")
    if len(items) > max_events:
        raise BatchError(
            413, f"batch of {len(items)} events is larger than max_batch_events ({max_events}); send smaller batches"
        )
    return items


def validate(items: Sequence[Any]) -> tuple[list[UsageEvent], list[dict[str, Any]], int]:
    """(valid events, one per id; rejections with index/id/field/reason; duplicate ids within the batch)."""
    events, _, rejected, repeats = validate_indexed(items)
    return events, rejected, repeats


def rejection(index: int, raw_id: Any, field: str, reason: str) -> dict[str, Any]:
    """One entry of ``rejected``, safe to send back whatever the sender put in it (bounded, valid text)."""
    return {"index": index, "id": _printable(raw_id) if isinstance(raw_id, str) else None,
            "field": _printable(field), "reason": _printable(reason, 500)}  # fmt: skip


def _printable(text: str, limit: int = 200) -> str:
    """``text`` cut to ``limit`` characters, lone surrogates escaped (JSON answers are UTF-8)."""
    return text[:limit].encode("utf-8", "backslashreplace").decode("utf-8")


def validate_indexed(items: Sequence[Any]) -> tuple[list[UsageEvent], list[int], list[dict[str, Any]], int]:
    """Like :func:`validate`, plus the batch index of each valid event (to report a store refusal)."""
    events: list[UsageEvent] = []
    indexes: list[int] = []
    rejected: list[dict[str, Any]] = []
    seen: set[str] = set()
    repeats = 0
    pricer = get_pricer()
    for index, item in enumerate(items):
        raw_id = item.get("id") if isinstance(item, dict) else None
        try:
            event = UsageEvent.from_wire(item)
            if not item.get("id"):
                # the id is the idempotency key: without it a retried batch would be counted twice
                raise EventValidationError("id", "required: a UUID chosen by the sender (the idempotency key)")
            if event.id in seen:
                repeats += 1
                continue
            # the same pricing code as the SDK; an event the sender priced keeps its costs
            pricer.price(event)
            check_priced(event)
        except EventValidationError as exc:
            rejected.append(rejection(index, raw_id, exc.field, exc.reason))
            continue
        seen.add(event.id)
        events.append(event)
        indexes.append(index)
    return events, indexes, rejected, repeats


def check_priced(event: UsageEvent) -> None:
    """A cost the pricer computed is bounded like a sent one (tokens are bounded, prices are not)."""
    for name in COST_FIELDS:
        value = getattr(event, name)
        if value is not None and value > MAX_COST:
            raise EventValidationError(name, f"priced at more than {MAX_COST} USD for one call")
