"""Total input validation in the core: every hostile value is an EventValidationError naming the field."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest

from meterline.core.event import MAX_COST, MAX_TOKENS, EventValidationError, UsageEvent, canonical_id


def _wire(**fields: Any) -> dict[str, Any]:
    return {"provider": "openai", "model": "gpt-4o", "start_time": "2026-11-02T10:00:00Z", **fields}


def _nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("fields", "field", "reason_part"),
    [
        ({"start_time": 1e20}, "start_time", "supported range"),
        ({"start_time": float("nan")}, "start_time", "finite"),
        ({"start_time": "0001-01-01T00:00:00Z"}, "start_time", "outside the supported range"),
        ({"start_time": "9999-12-31T23:59:59-05:00"}, "start_time", "supported range"),
        ({"start_time": "1969-12-31T23:59:59Z"}, "start_time", "outside the supported range"),
        ({"end_time": "2200-01-01T00:00:00Z"}, "end_time", "outside the supported range"),
        ({"input_cost": "1e30"}, "input_cost", "more than 9000000 USD"),
        ({"total_cost": "NaN"}, "total_cost", "finite"),
        ({"output_cost": "1" * 100}, "output_cost", "longer than 64"),
        ({"input_cost": "5000000", "output_cost": "5000000"}, "total_cost", "add up to more than"),
        ({"input_tokens": 2**62}, "input_tokens", f"at most {MAX_TOKENS}"),
        ({"output_tokens": 10**30}, "output_tokens", f"at most {MAX_TOKENS}"),
        ({"retry_number": 2**70}, "retry_number", "between 0 and 10000"),
        ({"fallback_depth": -1}, "fallback_depth", "between 0 and 10000"),
        ({"duration_ms": 1e300}, "duration_ms", "must be between 0"),
        ({"duration_ms": -5}, "duration_ms", "must be between 0"),
        ({"time_to_first_token_ms": float("inf")}, "time_to_first_token_ms", "finite"),
        ({"response_quality_score": -0.1}, "response_quality_score", "between 0 and 1"),
        ({"subscriber_id": "\ud800"}, "subscriber_id", "lone UTF-16 surrogate"),
        ({"subscriber_id": "acme\x00"}, "subscriber_id", "NUL"),
        ({"tags": ["ok", "\udfff"]}, "tags", "surrogate"),
        ({"attributes": {"k\x00": "v"}}, "attributes", "NUL"),
        ({"attributes": {"k": "v\x00"}}, "attributes.k", "NUL"),
        ({"attributes": {"k": 2**64}}, "attributes.k", "must be a string, number or boolean"),
        ({"input_messages": _nested(1000)}, "input_messages", "nested deeper than 64"),
        ({"input_messages": [{"content": "x" * 1_000_001}]}, "input_messages", "larger than"),
        ({"input_messages": [{"content": "\ud800"}]}, "input_messages", "surrogate"),
        ({"output_text": "y" * 1_000_001}, "output_text", "longer than 1000000"),
        ({"id": "{not-a-uuid}"}, "id", "not a UUID"),
        ({"id": 12}, "id", "must be a string"),
    ],
)
def test_hostile_values_name_the_field(fields: dict[str, Any], field: str, reason_part: str) -> None:
    with pytest.raises(EventValidationError) as info:
        UsageEvent.from_wire(_wire(**fields))
    assert info.value.field == field
    assert reason_part in info.value.reason


def test_the_largest_accepted_values_are_stored_exactly() -> None:
    e = UsageEvent.from_wire(
        _wire(input_tokens=MAX_TOKENS, input_cost=str(MAX_COST), output_text="z" * 1_000_000,
              input_messages=_nested(60), start_time="2199-12-31T23:59:59.999999Z")
    )  # fmt: skip
    assert e.input_tokens == MAX_TOKENS and e.input_cost == Decimal("9000000")
    assert e.start_time.year == 2199


def test_uuid_spellings_canonicalize_everywhere() -> None:
    u = uuid.uuid4()
    for spelling in (u.hex, "{" + str(u) + "}", "urn:uuid:" + str(u), str(u).upper(), f" {u} "):
        assert canonical_id(spelling) == str(u)
        assert UsageEvent.from_wire(_wire(id=spelling)).id == str(u)
        # the app side too: an event built with any spelling carries the canonical id
        assert UsageEvent(provider="p", model="m", start_time=UsageEvent.from_wire(_wire()).start_time,
                          id=spelling).id == str(u)  # fmt: skip


def test_check_event_applies_the_same_bounds_to_events_built_in_code() -> None:
    from datetime import datetime, timezone

    from meterline.core.event import check_event

    now = datetime(2026, 11, 2, tzinfo=timezone.utc)
    check_event(UsageEvent(provider="p", model="m", start_time=now, input_tokens=5, output_text="ok"))
    bad = [
        ("subscriber_id", {"subscriber_id": "\ud800"}),
        ("subscriber_id", {"subscriber_id": "a\x00"}),
        ("input_tokens", {"input_tokens": 2**62}),
        ("total_cost", {"total_cost": Decimal("1e30")}),
        ("start_time", {"start_time": datetime(1, 1, 1, tzinfo=timezone.utc)}),
        ("retry_number", {"retry_number": 2**70}),
        ("duration_ms", {"duration_ms": float("nan")}),
        ("input_messages", {"input_messages": _nested(100)}),
        ("attributes.k", {"attributes": {"k": "\x00"}}),
    ]
    for field, fields in bad:
        kw: dict[str, Any] = {"provider": "p", "model": "m", "start_time": now, **fields}
        with pytest.raises(EventValidationError) as info:
            check_event(UsageEvent(**kw))
        assert info.value.field == field


def test_times_are_written_with_four_digit_years() -> None:
    from datetime import datetime, timezone

    from meterline.core.event import format_time

    assert format_time(datetime(1, 1, 1, tzinfo=timezone.utc)) == "0001-01-01T00:00:00.000000Z"
    assert format_time(datetime(2026, 11, 2, 10, tzinfo=timezone.utc)) == "2026-11-02T10:00:00.000000Z"
