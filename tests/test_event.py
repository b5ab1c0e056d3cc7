from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from meterline.core.event import EventValidationError, UsageEvent, format_cost

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)


def _wire(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {"provider": "openai", "model": "gpt-4o-mini", "start_time": "2026-03-01T12:00:00Z"}
    base.update(kw)
    return base


def test_wire_round_trip_keeps_exact_values() -> None:
    e = UsageEvent(
        provider="anthropic",
        model="claude-3-5-sonnet-20240620",
        start_time=T0,
        end_time=T0.replace(second=2),
        input_tokens=10,
        cache_read_tokens=20,
        cache_write_tokens=30,
        cache_write_1h_tokens=5,
        output_tokens=40,
        reasoning_tokens=4,
        input_cost=Decimal("0.000030000000"),
        total_cost=Decimal("0.000030000000"),
        tags=["a"],
        attributes={"k": 1},
    )
    e.finalize_totals()
    wire = e.to_wire()
    assert wire["start_time"] == "2026-03-01T12:00:00.123456Z"
    assert wire["total_tokens"] == 100
    assert wire["duration_ms"] == 2000.0
    assert wire["input_cost"] == "0.00003"
    back = UsageEvent.from_wire(wire)
    assert back == e
    compact = e.to_wire(compact=True)  # what the HTTP sink sends: null fields left out
    assert "subscriber_id" not in compact and "cache_read_cost" not in compact and len(compact) < len(wire) / 2
    assert UsageEvent.from_wire(compact) == e


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        ({"input_cost": 0.1}, "input_cost", 'costs are decimal strings (e.g. "0.0015"), not numbers'),
        ({"input_tokens": -1}, "input_tokens", "must be a non-negative integer; got -1"),
        ({"status": "ok"}, "status", "must be one of cancelled, error, success; got 'ok'"),
        ({"colour": "red"}, "colour", "unknown field"),
        ({"model": ""}, "model", "required, a non-empty string"),
        ({"start_time": "yesterday"}, "start_time", "not an ISO 8601 time: 'yesterday'"),
        ({"id": "nope"}, "id", "not a UUID: 'nope'"),
        ({"response_quality_score": 1.5}, "response_quality_score", "must be between 0 and 1"),
        (
            {"output_tokens": 1, "reasoning_tokens": 2},
            "reasoning_tokens",
            "is part of output_tokens and cannot exceed it",
        ),
        (
            {"input_tokens": 1, "total_tokens": 5},
            "total_tokens",
            "must equal input + cache_read + cache_write + output (1); got 5",
        ),
        ({"trace_type": "x" * 129}, "trace_type", "longer than 128 characters"),
        ({"attributes": {"k": [1]}}, "attributes.k", "must be a string, number or boolean; got [1]"),
    ],
)
def test_from_wire_names_the_bad_field(fields: dict[str, object], field: str, reason: str) -> None:
    with pytest.raises(EventValidationError) as info:
        UsageEvent.from_wire(_wire(**fields))
    assert info.value.field == field
    assert info.value.reason == reason


def test_costs_are_quantised_to_pico_dollars_and_formatted_plainly() -> None:
    e = UsageEvent.from_wire(_wire(total_cost="0.0000000000015"))
    assert e.total_cost == Decimal("0.000000000002")  # half-even at 12 places
    assert format_cost(Decimal("1E-7")) == "0.0000001"
    assert format_cost(Decimal("0E-12")) == "0"
    assert format_cost(Decimal("12.500")) == "12.5"


def test_default_ids_are_distinct_version_4_uuids_also_in_a_forked_child() -> None:
    # ids come from a generator seeded from os.urandom (not one os.urandom call per event); a forked child
    # re-seeds, so parent and child never hand out the same ids.
    import os
    import uuid as _uuid

    from meterline.core.event import new_event_id

    ids = [UsageEvent(start_time=datetime.now(timezone.utc), provider="p", model="m").id for _ in range(2000)]
    assert len(set(ids)) == 2000
    for raw in ids[:50]:
        parsed = _uuid.UUID(raw)
        assert str(parsed) == raw and parsed.version == 4 and parsed.variant == _uuid.RFC_4122
    if not hasattr(os, "fork"):
        return
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: write 100 ids and leave at once
        os.write(write, "\n".join(new_event_id() for _ in range(100)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split("\n"))
    parent = {new_event_id() for _ in range(100)}
    assert len(child) == 100 and not child & parent
