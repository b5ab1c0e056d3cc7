"""The usage event, schema v1: one record per provider call.

Field names are the wire and storage names (see DESIGN.md). Money is ``Decimal`` quantised to
12 decimal places (pico-USD), timestamps are timezone-aware UTC with microseconds.
``to_wire`` / ``from_wire`` convert to and from the JSON form: costs as strings, times as ISO 8601.
``from_wire`` validates and raises :class:`EventValidationError` naming the field.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import re
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
# Bounds of every value an event may carry (see docs/guides/collector.md "Input limits"). They keep every stored
# value and every sum in range: tokens and costs sum in 64-bit SQL integers, times convert in any zone.
MAX_TOKENS = 1_000_000_000  # per token field of one call (the largest context windows are ~10^7)
MAX_COST = Decimal(9_000_000)  # USD per cost field of one call: int64 pico-dollars hold up to ~9.22e6
MAX_COUNT = 10_000  # retry_number, fallback_depth
MAX_DURATION_MS = 366 * 86_400_000.0  # a call longer than a year is a clock error
MAX_CONTENT = 1_000_000  # characters of output_text, and of input_messages as JSON
MAX_JSON_DEPTH = 64  # nesting of input_messages
MIN_TIME = datetime(1970, 1, 1, tzinfo=timezone.utc)  # supported window of start_time/end_time:
MAX_TIME = datetime(2200, 1, 1, tzinfo=timezone.utc)  # [MIN_TIME, MAX_TIME)

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
    # content (only with capture_content / capture_headers / capture_raw_request; redacted on the recorder
    # thread, stored apart from the usage row: see meterline.sdk.content)
    input_messages: Any = None
    output_text: str | None = None
    output_tool_calls: Any = None  # [{id, name, arguments}] the reply asked for
    request_headers: Any = None  # {name: value}, credential headers masked
    raw_request: Any = None  # the request body as sent (credential keys masked)

    def __post_init__(self) -> None:
        # every spelling of one UUID is one idempotency key (an id that is no UUID is left for from_wire)
        i = self.id
        if i.__class__ is str and not (len(i) == 36 and i.islower()) and not _CANONICAL_ID.fullmatch(i):
            try:
                self.id = str(uuid.UUID(i.strip()))
            except ValueError:
                pass

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
CONTENT_FIELDS = ("input_messages", "output_text", "output_tool_calls", "request_headers", "raw_request")
FLOAT_FIELDS = ("duration_ms", "time_to_first_token_ms", "response_quality_score")
INT_FIELDS = ("schema_version", "retry_number", "fallback_depth")
# The fields a report groups by, by role. Each name is spelled here once: the stores' DIMENSIONS, the metadata a
# caller may set (meterline.core.metadata) and ClickHouse's column types are unions or subsets of these groups.
CALL_DIMENSIONS = (
    "provider",
    "model",
    "response_model",
    "operation",
    "operation_subtype",
    "status",
    "stop_reason",
    "error_type",
    "stream",
    "usage_source",
    "pricing_source",
    "currency",
    "integration",
)
ATTRIBUTION_DIMENSIONS = (
    "trace_id",
    "task_type",
    "subscriber_id",
    "subscriber_email",
    "credential_name",
    "organization_id",
    "subscription_id",
    "product_id",
    "agent",
    "environment",
    "region",
    "credential_alias",
    "trace_type",
    "trace_name",
    "parent_transaction_id",
    "transaction_name",
)
GATEWAY_IDENTITY = ("api_key_alias", "team_id", "user_id", "end_user_id")  # callers of an in-house gateway set them
GATEWAY_DIMENSIONS = ("api_key_hash", *GATEWAY_IDENTITY, "model_group", "deployment_id", "api_base", "cache_hit")
DIMENSIONS = (*CALL_DIMENSIONS, *ATTRIBUTION_DIMENSIONS, *GATEWAY_DIMENSIONS)
_STRING_LIMITS = {"trace_type": 128, "trace_name": 256, "error_message": MAX_ERROR_MESSAGE, "output_text": MAX_CONTENT}
_FLOAT_RANGES = {
    "duration_ms": (0.0, MAX_DURATION_MS),
    "time_to_first_token_ms": (0.0, MAX_DURATION_MS),
    "response_quality_score": (0.0, 1.0),
}
STRING_FIELDS = tuple(
    f.name
    for f in dataclasses.fields(UsageEvent)
    if f.name not in (*COST_FIELDS, *TOKEN_FIELDS, *TIME_FIELDS, *BOOL_FIELDS, *FLOAT_FIELDS, *INT_FIELDS)
    and f.name not in ("tags", "attributes", *CONTENT_FIELDS)
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
    # isoformat, not strftime: "%Y" drops the leading zeros of years before 1000 on glibc ("1-01-01…")
    return value.astimezone(timezone.utc).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_time(value: Any, field: str = "time") -> datetime:
    """An aware UTC datetime inside [MIN_TIME, MAX_TIME) from a datetime, epoch seconds or ISO 8601 text."""
    try:
        if isinstance(value, datetime):
            dt = value
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise EventValidationError(field, f"must be a finite time; got {value!r}")
            dt = datetime.fromtimestamp(float(value), tz=timezone.utc)
        elif isinstance(value, str):
            if len(value) > 64:
                raise EventValidationError(field, "not an ISO 8601 time: longer than 64 characters")
            try:
                dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise EventValidationError(field, f"not an ISO 8601 time: {value!r}") from None
        else:
            raise EventValidationError(field, f"expected an ISO 8601 string, got {type(value).__name__}")
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        dt = dt.astimezone(timezone.utc)
    except EventValidationError:
        raise
    except (ValueError, OverflowError, OSError):
        # fromisoformat's ValueError, and the overflow of year 1 / year 9999 with an offset
        raise EventValidationError(field, f"not an ISO 8601 time in the supported range: {value!r}"[:200]) from None
    if not MIN_TIME <= dt < MAX_TIME:
        raise EventValidationError(
            field, f"outside the supported range {MIN_TIME.year}-01-01 .. {MAX_TIME.year}-01-01 (UTC): {value!r}"[:200]
        )
    return dt


def parse_cost(value: Any, field: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, (bool, float)):
        # Floats cannot carry money exactly; the wire form is a decimal string.
        raise EventValidationError(field, 'costs are decimal strings (e.g. "0.0015"), not numbers')
    if not isinstance(value, (str, int, Decimal)):
        raise EventValidationError(field, f'must be a decimal string (e.g. "0.0015"); got {type(value).__name__}')
    text = str(value)
    if len(text) > 64:
        raise EventValidationError(field, "not a decimal number: longer than 64 characters")
    try:
        d = Decimal(text)
    except (InvalidOperation, ValueError):
        raise EventValidationError(field, f"not a decimal number: {text!r}") from None
    if not d.is_finite():
        raise EventValidationError(field, "must be finite")
    if d < 0:
        raise EventValidationError(field, "must not be negative")
    if d > MAX_COST:
        raise EventValidationError(field, f"more than {MAX_COST} USD for one call")
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
            if not value.isascii() or "\x00" in value:  # the common ASCII text needs no further look
                check_text(name, value)
            kw[name] = value
        elif kind == _TOKEN:
            if (value.__class__ is not int and (isinstance(value, bool) or not isinstance(value, int))) or value < 0:
                raise EventValidationError(name, f"must be a non-negative integer; got {value!r}"[:200])
            if value > MAX_TOKENS:
                raise EventValidationError(name, f"must be at most {MAX_TOKENS} for one call; got {value}"[:200])
            kw[name] = value
        elif kind == _TIME:
            kw[name] = parse_time(value, name)
        elif kind == _COST:
            kw[name] = parse_cost(value, name)
        elif kind == _INT:
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
                raise EventValidationError(name, f"must be an integer between 0 and {MAX_COUNT}; got {value!r}"[:200])
            kw[name] = value
        elif kind == _FLOAT:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise EventValidationError(name, f"must be a finite number; got {value!r}"[:200])
            low, high = _FLOAT_RANGES[name]
            if not low <= value <= high:
                raise EventValidationError(name, f"must be between {low:g} and {high:g}")
            kw[name] = float(value)
        elif kind == _BOOL:
            if not isinstance(value, bool):
                raise EventValidationError(name, f"must be true or false; got {value!r}"[:200])
            kw[name] = value
        elif kind == _TAGS:
            kw[name] = validate_tags(value) if value or not isinstance(value, list) else []
        elif kind == _ATTRS:
            kw[name] = validate_attributes(value) if value or not isinstance(value, Mapping) else {}
        else:  # content: any JSON (output_text: a string), bounded in depth, size and text content
            if name == "output_text":
                if not isinstance(value, str):
                    raise EventValidationError(name, f"must be a string; got {type(value).__name__}")
                if len(value) > MAX_CONTENT:
                    raise EventValidationError(name, f"longer than {MAX_CONTENT} characters")
                check_text(name, value)
            else:
                if name == "request_headers" and not isinstance(value, Mapping):
                    raise EventValidationError(name, "must be an object of header names to values")
                check_content(name, value)
            kw[name] = value
    if kw.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
        raise EventValidationError("schema_version", f"only version {SCHEMA_VERSION} is understood")
    if "id" in kw:
        kw["id"] = canonical_id(kw["id"])
    _check_choice("operation", kw.get("operation", "chat"), OPERATIONS)
    _check_choice("status", kw.get("status", "success"), STATUSES)
    _check_choice("usage_source", kw.get("usage_source", "provider"), USAGE_SOURCES)
    _check_choice("integration", kw.get("integration", "manual"), INTEGRATIONS)
    if kw.get("stop_reason") is not None:
        _check_choice("stop_reason", kw["stop_reason"], STOP_REASONS)
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
    if "total_cost" not in kw:
        parts = [kw[c] for c in COST_FIELDS[:-1] if kw.get(c) is not None]
        if parts and sum(parts) > MAX_COST:
            raise EventValidationError("total_cost", f"the cost fields add up to more than {MAX_COST} USD")
    event.finalize_totals()
    if event.duration_ms is not None and not 0 <= event.duration_ms <= MAX_DURATION_MS:
        raise EventValidationError("duration_ms", "end_time must be after start_time, by less than a year")
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
    **dict.fromkeys(CONTENT_FIELDS, _ANY),
}


def validate_tags(value: Any) -> list[str]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(t, str) for t in value):
        raise EventValidationError("tags", "must be a list of strings")
    if len(value) > MAX_TAGS:
        raise EventValidationError("tags", f"at most {MAX_TAGS} tags")
    out = [str(t)[:MAX_STRING] for t in value]
    for t in out:
        if not t.isascii() or "\x00" in t:
            check_text("tags", t)
    return out


def check_event(event: UsageEvent) -> None:
    """Raise :class:`EventValidationError` (naming the field) when an event built in code rather than read
    from the wire holds a value no store can keep: the bounds of :func:`UsageEvent.from_wire` (text without
    NUL or lone surrogates and within its length, tokens, costs, counts, durations, the time window,
    tags, attributes, content), without a round trip through JSON."""
    for name in STRING_FIELDS:
        v = getattr(event, name)
        if v is None:
            continue
        if not isinstance(v, str):
            raise EventValidationError(name, f"must be a string; got {type(v).__name__}")
        limit = _STRING_LIMITS.get(name, MAX_STRING)
        if len(v) > limit:
            raise EventValidationError(name, f"longer than {limit} characters")
        if not v.isascii() or "\x00" in v:
            check_text(name, v)
    for name in TOKEN_FIELDS:
        v = getattr(event, name)
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_TOKENS:
            raise EventValidationError(name, f"must be an integer between 0 and {MAX_TOKENS}; got {v!r}"[:200])
    for name in COST_FIELDS:
        v = getattr(event, name)
        if v is not None and (not isinstance(v, Decimal) or not v.is_finite() or not 0 <= v <= MAX_COST):
            raise EventValidationError(name, f"must be a Decimal between 0 and {MAX_COST}; got {v!r}"[:200])
    for name in TIME_FIELDS:
        v = getattr(event, name)
        if v is not None:
            t = v if v.tzinfo is not None else v.replace(tzinfo=timezone.utc)
            if not MIN_TIME <= t < MAX_TIME:
                raise EventValidationError(name, f"outside the supported range {MIN_TIME.year}..{MAX_TIME.year}")
    for name in ("retry_number", "fallback_depth"):
        v = getattr(event, name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_COUNT):
            raise EventValidationError(name, f"must be an integer between 0 and {MAX_COUNT}; got {v!r}"[:200])
    for name, (low, high) in _FLOAT_RANGES.items():
        v = getattr(event, name)
        if v is not None and (not isinstance(v, (int, float)) or not math.isfinite(v) or not low <= v <= high):
            raise EventValidationError(name, f"must be between {low:g} and {high:g}")
    if event.tags:
        validate_tags(event.tags)
    if event.attributes:
        validate_attributes(event.attributes)
    if event.input_messages is not None:
        check_content("input_messages", event.input_messages)


_CANONICAL_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def canonical_id(value: Any, field: str = "id") -> str:
    """The lowercase dashed form of a UUID given in any spelling Python accepts (plain, hex without
    dashes, in braces, ``urn:uuid:``, upper case): one id is one idempotency key, however it is written."""
    if not isinstance(value, str):
        raise EventValidationError(field, f"must be a UUID string; got {type(value).__name__}")
    if _CANONICAL_ID.fullmatch(value):
        return value
    try:
        return str(uuid.UUID(value.strip()))
    except ValueError:
        raise EventValidationError(field, f"not a UUID: {value!r}"[:200]) from None


def check_text(field: str, value: str) -> None:
    """Text every store can hold: no NUL character (PostgreSQL refuses it) and no lone surrogate (it has
    no UTF-8 form: SQLite and every JSON encoder refuse it)."""
    if "\x00" in value:
        raise EventValidationError(field, "contains a NUL character (\\u0000)")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise EventValidationError(field, "contains a lone UTF-16 surrogate (not valid Unicode text)") from None


def check_content(field: str, value: Any) -> None:
    """Any JSON value of at most MAX_JSON_DEPTH levels and about MAX_CONTENT characters, with valid text
    (walked without recursion, so a hostile nesting cannot exhaust the stack)."""
    size = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise EventValidationError(field, f"nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, str):
            check_text(field, item)
            size += len(item) + 2
        elif isinstance(item, Mapping):
            for k, v in item.items():
                if not isinstance(k, str):
                    raise EventValidationError(field, "object keys must be strings")
                check_text(field, k)
                size += len(k) + 4
                stack.append((v, depth + 1))
        elif isinstance(item, (list, tuple)):
            size += 2
            stack.extend((v, depth + 1) for v in item)
        elif item is None or isinstance(item, bool):
            size += 5
        elif isinstance(item, int):
            if abs(item) >= 2**63:
                raise EventValidationError(field, "integers must fit in 64 bits")
            size += 20
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise EventValidationError(field, "numbers must be finite")
            size += 24
        else:
            raise EventValidationError(
                field, f"must be JSON (objects, arrays, strings, numbers); got {type(item).__name__}"
            )
        if size > MAX_CONTENT:
            raise EventValidationError(field, f"larger than {MAX_CONTENT} characters as JSON")


def validate_attributes(value: Any) -> dict[str, str | int | float | bool]:
    if not isinstance(value, Mapping):
        raise EventValidationError("attributes", "must be an object of string keys to scalar values")
    if len(value) > MAX_ATTRIBUTES:
        raise EventValidationError("attributes", f"at most {MAX_ATTRIBUTES} entries")
    out: dict[str, str | int | float | bool] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not k or len(k) > 128:
            raise EventValidationError("attributes", f"key {k!r} must be a string of 1..128 characters"[:200])
        check_text("attributes", k)
        if isinstance(v, str):
            out[k] = v[:MAX_STRING]
            check_text(f"attributes.{k}", out[k])  # type: ignore[arg-type]
        elif _scalar(v):
            out[k] = v
        else:
            raise EventValidationError(f"attributes.{k}", f"must be a string, number or boolean; got {v!r}")
    return out


def _scalar(v: Any) -> bool:
    """A bool, a 64-bit integer or a finite float (what every store and exporter can hold)."""
    if isinstance(v, bool):
        return True
    if isinstance(v, int):
        return -(2**63) <= v < 2**63
    return isinstance(v, float) and math.isfinite(v)


def content_json(event: UsageEvent) -> str | None:
    """The stored form: one JSON object of the content fields that are set (None when there is none)."""
    doc = {name: getattr(event, name) for name in CONTENT_FIELDS if getattr(event, name) is not None}
    if not doc:
        return None
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, default=str)
