"""Seeded data for the dashboard tests (route tests and browser tests): three customers over the last weeks,
errors, prompt-cache reads, streams with a first-token time, one trace with a tree of steps, one event with
captured content, and older events in the previous period. Costs are exact Decimals that differ per event."""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from meterline.core.event import UsageEvent
from meterline.store import keys as key_store
from meterline.store.backend import open_stores

CUSTOMERS = ("acme", "globex", "initech")
MODELS = ("gpt-4o", "claude-sonnet-4-5", "gpt-4o-mini")
TRACE_ID = "trace-checkout-1"


@dataclasses.dataclass
class Seeded:
    database: str
    keys: dict[str, str]  # scope -> clear key
    events: list[UsageEvent]
    trace_root: str
    content_event: str


def key_hash(alias: str) -> str:
    """A stand-in for the gateway's sha256 hex of a key, derived from the alias."""
    return hashlib.sha256(alias.encode()).hexdigest()


def _event(i: int, start: datetime, **extra: Any) -> UsageEvent:
    inp, cread, out = 100 + i * 7, (50 * (i % 4)), 20 + i
    in_cost = Decimal(inp) * Decimal("0.0000025")
    cr_cost = Decimal(cread) * Decimal("0.00000125")
    out_cost = Decimal(out) * Decimal("0.00001")
    stream = i % 5 == 0
    fields: dict[str, Any] = {
        "id": str(uuid.UUID(int=i + 1)),
        "provider": "anthropic" if i % 3 == 1 else "openai",
        "model": MODELS[(i // 3) % 3],
        "start_time": start,
        "end_time": start + timedelta(milliseconds=200 + i * 3),
        "duration_ms": float(200 + i * 3),
        "time_to_first_token_ms": float(50 + i) if stream else None,
        "stream": stream,
        "status": "error" if i % 11 == 0 else "success",
        "input_tokens": inp,
        "cache_read_tokens": cread,
        "output_tokens": out,
        "total_tokens": inp + cread + out,
        "input_cost": in_cost,
        "cache_read_cost": cr_cost,
        "cache_write_cost": Decimal(0),
        "output_cost": out_cost,
        "total_cost": in_cost + cr_cost + out_cost,
        "pricing_source": "genai-prices@test",
        "subscriber_id": CUSTOMERS[i % 3],
        "product_id": ("search", "support-bot")[i % 2],
        "api_key_alias": ("key-web", "key-batch")[i % 2],
        "api_key_hash": key_hash(("key-web", "key-batch")[i % 2]),
        "team_id": ("team-a", "team-b")[(i // 2) % 2],
        "environment": "production",
        "integration": "litellm",
    }
    fields.update(extra)
    return UsageEvent(**fields)


def seed(database: str, now: datetime | None = None) -> Seeded:
    """Store the seeded events and one key per scope; returns what the tests compare against."""
    now = now or datetime.now(timezone.utc)
    writer, reader = open_stores(database)
    try:
        keys = {scope: key_store.create_key(writer, scope, f"test-{scope}")[0] for scope in key_store.SCOPES}
        events = [_event(i, now - timedelta(hours=3 + i * 4)) for i in range(120)]  # the last ~20 days
        events += [_event(200 + i, now - timedelta(days=31 + i % 20)) for i in range(30)]  # previous period
        t0 = now - timedelta(hours=2)
        root = _event(300, t0, trace_id=TRACE_ID, transaction_name="plan", trace_name="checkout")
        child1 = _event(301, t0 + timedelta(seconds=1), trace_id=TRACE_ID, parent_transaction_id=root.id)
        child2 = _event(302, t0 + timedelta(seconds=2), trace_id=TRACE_ID, parent_transaction_id="plan")
        grandchild = _event(303, t0 + timedelta(seconds=3), trace_id=TRACE_ID, parent_transaction_id=child1.id)
        other = _event(304, t0 + timedelta(seconds=4), trace_id="trace-other", subscriber_id="globex")
        content = _event(
            305,
            now - timedelta(hours=1),
            input_messages=[{"role": "user", "content": "Where is order 42?"}],
            output_text="Order 42 ships tomorrow.",
        )
        events += [root, child1, child2, grandchild, other, content]
        writer.insert(events)
        return Seeded(database, keys, events, root.id, content.id)
    finally:
        writer.close()
        if reader is not writer:
            reader.close()
