"""The usage event, schema v1: one record per provider call.

Field names are the wire and storage names (see DESIGN.md). Money is ``Decimal`` quantised to
12 decimal places (pico-USD), timestamps are timezone-aware UTC with microseconds.
``to_wire`` / ``from_wire`` convert to and from the JSON form: costs as strings, times as ISO 8601.
``from_wire`` validates and raises :class:`EventValidationError` naming the field.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

SCHEMA_VERSION = 1
COST_PLACES = Decimal("1e-12")  # costs are exact to a pico-dollar
MAX_ATTRIBUTES = 64
MAX_TAGS = 32
MAX_STRING = 1024
MAX_ERROR_MESSAGE = 2000

OPERATIONS = frozenset({"chat", "completion", "embedding", "image", "audio", "rerank", "other"})
STATUSES = frozenset({"success", "error", "cancelled"})
STOP_REASONS = frozenset({"end", "max_tokens", "stop_sequence", "tool_use", "content_filter", "error", "cancelled"})
USAGE_SOURCES = frozenset({"provider", "estimated"})
INTEGRATIONS = frozenset(
    {"litellm", "litellm_proxy", "anthropic", "bedrock", "openai", "manual", "revenium", "lago", "openmeter", "otlp"}
)


class EventValidationError(ValueError):
    """An event field has a bad value. ``field`` names it, ``reason`` says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


# Event ids: random version-4 UUIDs from a generator seeded once from os.urandom (and again in a forked
# child), instead of uuid.uuid4()'s os.urandom call per event: a system call, ~2 µs of the caller's thread.
_ids = random.Random()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_ids.seed)
_VERSION_MASK = ~((0xF000 << 64) | (0xC000 << 48))
_VERSION_BITS = (0x4000 << 64) | (0x8000 << 48)


def new_event_id() -> str:
    h = f"{(_ids.getrandbits(128) & _VERSION_MASK) | _VERSION_BITS:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclasses.dataclass(slots=True, kw_only=True)
class UsageEvent:
    # identity
    id: str = dataclasses.field(default_factory=new_event_id)
    schema_version: int = SCHEMA_VERSION
    # timing
    start_time: datetime
    end_time: datetime | None = None
    duration_ms: float | None = None
    time_to_first_token_ms: float | None = None
    # call
    provider: str
    model: str
    response_model: str | None = None
    operation: str = "chat"
    operation_subtype: str | None = None
    stream: bool = False
    status: str = "success"
    stop_reason: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    # usage (additive, non-overlapping)
    input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0  # subset of cache_write_tokens, priced at the 1-hour rate
    output_tokens: int = 0
    reasoning_tokens: int = 0
    total_tokens: int = 0
    usage_source: str = "provider"
    # cost
    input_cost: Decimal | None = None
    cache_read_cost: Decimal | None = None
    cache_write_cost: Decimal | None = None
    output_cost: Decimal | None = None
    total_cost: Decimal | None = None
    currency: str = "USD"
    pricing_source: str | None = None
    # attribution
    trace_id: str | None = None
    task_type: str | None = None
    subscriber_id: str | None = None
    subscriber_email: str | None = None
    credential_name: str | None = None
    credential_hash: str | None = None
    organization_id: str | None = None
    subscription_id: str | None = None
    product_id: str | None = None
    agent: str | None = None
    response_quality_score: float | None = None
    environment: str | None = None
    region: str | None = None
    credential_alias: str | None = None
    trace_type: str | None = None
    trace_name: str | None = None
    parent_transaction_id: str | None = None
    transaction_name: str | None = None
    retry_number: int | None = None
    tags: list[str] = dataclasses.field(default_factory=list)
    attributes: dict[str, str | int | float | bool] = dataclasses.field(default_factory=dict)
    # gateway
    api_key_hash: str | None = None
    api_key_alias: str | None = None
    team_id: str | None = None
    user_id: str | None = None
    end_user_id: str | None = None
    model_group: str | None = None
    deployment_id: str | None = None
    api_base: str | None = None
    cache_hit: bool | None = None
    fallback_depth: int | None = None
    # source
    integration: str = "manual"
    sdk_version: str | None = None
    # content (only with capture_content)
    input_messages: Any = None
    output_text: str | None = None

    def finalize_totals(self) -> None:
        """Recompute ``total_tokens`` and ``duration_ms`` from their parts."""
        self.total_tokens = self.input_tokens + self.cache_read_tokens + self.cache_write_tokens + self.output_tokens
        if self.end_time is not None and self.duration_ms is None:
            self.duration_ms = round((self.end_time - self.start_time).total_seconds() * 1000.0, 3)

    def to_wire(self, *, compact: bool = False) -> dict[str, Any]:
        """The JSON form: decimals as strings, datetimes as ISO 8601 UTC. ``compact`` leaves out null fields
        (a missing field reads back as null): about half the bytes and parse time on the way to a collector."""
        out: dict[str, Any] = {}
        for f in FIELD_NAMES:
            v = getattr(self, f)
            if v is None and compact:
                continue
            if isinstance(v, Decimal):
                v = format_cost(v)
            elif isinstance(v, datetime):
                v = format_time(v)
            elif isinstance(v, list):
                v = list(v)
            elif isinstance(v, dict):
                v = dict(v)
            out[f] = v
        return out

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> UsageEvent:
        """Validate a JSON object and build an event; raises :class:`EventValidationError`."""
        return _from_wire(data)


FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(UsageEvent))
COST_FIELDS = ("input_cost", "cache_read_cost", "cache_write_cost", "output_cost", "total_cost")
TOKEN_FIELDS = (
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "reasoning_tokens",
    "total_tokens",
)
TIME_FIELDS = ("start_time", "end_time")
BOOL_FIELDS = ("stream", "cache_hit")
FLOAT_FIELDS = ("duration_ms", "time_to_first_token_ms", "response_quality_score")
INT_FIELDS = ("schema_version", "retry_number", "fallback_depth")
_STRING_LIMITS = {"trace_type": 128, "trace_name": 256, "error_message": MAX_ERROR_MESSAGE}
STRING_FIELDS = tuple(
    f.name
    for f in dataclasses.fields(UsageEvent)
    if f.name not in (*COST_FIELDS, *TOKEN_FIELDS, *TIME_FIELDS, *BOOL_FIELDS, *FLOAT_FIELDS, *INT_FIELDS)
    and f.name not in ("tags", "attributes", "input_messages")
)


def quantize_cost(value: Decimal) -> Decimal:
    return value.quantize(COST_PLACES)


def format_cost(value: Decimal) -> str:
    """Plain decimal notation, trailing zeros removed ("0.00015", never "1.5E-4")."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def format_time(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: Any, field: str = "time") -> datetime:
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        dt = datetime.fromtimestamp(float(value), tz=timezone.utc)
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise EventValidationError(field, f"not an ISO 8601 time: {value!r}") from None
    else:
        raise EventValidationError(field, f"expected an ISO 8601 string, got {type(value).__name__}")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def parse_cost(value: Any, field: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, (bool, float)):
        # Floats cannot carry money exactly; the wire form is a decimal string.
        raise EventValidationError(field, 'costs are decimal strings (e.g. "0.0015"), not numbers')
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise EventValidationError(field, f"not a decimal number: {value!r}") from None
    if not d.is_finite():
        raise EventValidationError(field, "must be finite")
    if d < 0:
        raise EventValidationError(field, "must not be negative")
    return quantize_cost(d)


def _check_choice(field: str, value: Any, choices: frozenset[str]) -> None:
    if value not in choices:
        raise EventValidationError(field, f"must be one of {', '.join(sorted(choices))}; got {value!r}")


def _from_wire(data: Mapping[str, Any]) -> UsageEvent:
    if not isinstance(data, Mapping):
        raise EventValidationError("event", "must be a JSON object")
    kw: dict[str, Any] = {}
    for name in ("provider", "model"):
        v = data.get(name)
        if not isinstance(v, str) or not v:
            raise EventValidationError(name, "required, a non-empty string")
    if data.get("start_time") is None:
        raise EventValidationError("start_time", "required")
    kinds = _WIRE_KIND
    for name, value in data.items():
        kind = kinds.get(name)
        if kind is None:
            raise EventValidationError(name, "unknown field")
        if value is None:
            continue
        # one dict lookup per field, most common kind first: the collector validates every event it ingests
        if kind == _STR:
            if value.__class__ is not str and not isinstance(value, str):
                raise EventValidationError(name, f"must be a string; got {type(value).__name__}")
            limit = _STRING_LIMITS.get(name, MAX_STRING)
            if len(value) > limit:
                raise EventValidationError(name, f"longer than {limit} characters")
            kw[name] = value
        elif kind == _TOKEN:
            if (value.__class__ is not int and (isinstance(value, bool) or not isinstance(value, int))) or value < 0:
                raise EventValidationError(name, f"must be a non-negative integer; got {value!r}")
            kw[name] = value
        elif kind == _TIME:
            kw[name] = parse_time(value, name)
        elif kind == _COST:
            kw[name] = parse_cost(value, name)
        elif kind == _INT:
            if isinstance(value, bool) or not isinstance(value, int):
                raise EventValidationError(name, f"must be an integer; got {value!r}")
            kw[name] = value
        elif kind == _FLOAT:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise EventValidationError(name, f"must be a finite number; got {value!r}")
            kw[name] = float(value)
        elif kind == _BOOL:
            if not isinstance(value, bool):
                raise EventValidationError(name, f"must be true or false; got {value!r}")
            kw[name] = value
        elif kind == _TAGS:
            kw[name] = validate_tags(value) if value or not isinstance(value, list) else []
        elif kind == _ATTRS:
            kw[name] = validate_attributes(value) if value or not isinstance(value, Mapping) else {}
        else:  # input_messages: any JSON
            kw[name] = value
    if kw.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
        raise EventValidationError("schema_version", f"only version {SCHEMA_VERSION} is understood")
    if "id" in kw:
        try:
            uuid.UUID(kw["id"])
        except ValueError:
            raise EventValidationError("id", f"not a UUID: {kw['id']!r}") from None
    _check_choice("operation", kw.get("operation", "chat"), OPERATIONS)
    _check_choice("status", kw.get("status", "success"), STATUSES)
    _check_choice("usage_source", kw.get("usage_source", "provider"), USAGE_SOURCES)
    _check_choice("integration", kw.get("integration", "manual"), INTEGRATIONS)
    if kw.get("stop_reason") is not None:
        _check_choice("stop_reason", kw["stop_reason"], STOP_REASONS)
    score = kw.get("response_quality_score")
    if score is not None and not 0.0 <= score <= 1.0:
        raise EventValidationError("response_quality_score", "must be between 0 and 1")
    event = UsageEvent(**kw)
    if event.reasoning_tokens > event.output_tokens:
        raise EventValidationError("reasoning_tokens", "is part of output_tokens and cannot exceed it")
    if event.cache_write_1h_tokens > event.cache_write_tokens:
        raise EventValidationError("cache_write_1h_tokens", "is part of cache_write_tokens and cannot exceed it")
    expected_total = event.input_tokens + event.cache_read_tokens + event.cache_write_tokens + event.output_tokens
    if "total_tokens" in kw and event.total_tokens != expected_total:
        raise EventValidationError(
            "total_tokens",
            f"must equal input + cache_read + cache_write + output ({expected_total}); got {event.total_tokens}",
        )
    event.finalize_totals()
    return event


_STR, _TOKEN, _TIME, _COST, _INT, _FLOAT, _BOOL, _TAGS, _ATTRS, _ANY = range(10)
_WIRE_KIND: dict[str, int] = {
    **dict.fromkeys(STRING_FIELDS, _STR),
    **dict.fromkeys(TOKEN_FIELDS, _TOKEN),
    **dict.fromkeys(TIME_FIELDS, _TIME),
    **dict.fromkeys(COST_FIELDS, _COST),
    **dict.fromkeys(INT_FIELDS, _INT),
    **dict.fromkeys(FLOAT_FIELDS, _FLOAT),
    **dict.fromkeys(BOOL_FIELDS, _BOOL),
    "tags": _TAGS,
    "attributes": _ATTRS,
    "input_messages": _ANY,
}


def validate_tags(value: Any) -> list[str]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(t, str) for t in value):
        raise EventValidationError("tags", "must be a list of strings")
    if len(value) > MAX_TAGS:
        raise EventValidationError("tags", f"at most {MAX_TAGS} tags")
    return [str(t)[:MAX_STRING] for t in value]


def validate_attributes(value: Any) -> dict[str, str | int | float | bool]:
    if not isinstance(value, Mapping):
        raise EventValidationError("attributes", "must be an object of string keys to scalar values")
    if len(value) > MAX_ATTRIBUTES:
        raise EventValidationError("attributes", f"at most {MAX_ATTRIBUTES} entries")
    out: dict[str, str | int | float | bool] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not k or len(k) > 128:
            raise EventValidationError("attributes", f"key {k!r} must be a string of 1..128 characters")
        if isinstance(v, str):
            out[k] = v[:MAX_STRING]
        elif isinstance(v, (bool, int)) or (isinstance(v, float) and math.isfinite(v)):
            out[k] = v
        else:
            raise EventValidationError(f"attributes.{k}", f"must be a string, number or boolean; got {v!r}")
    return out
