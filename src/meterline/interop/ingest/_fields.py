"""Small readers shared by the client mappings: each raises EventValidationError naming the client's field."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from meterline.core.event import EventValidationError, parse_time, quantize_cost


def count(data: Mapping[str, Any], *names: str, field: str | None = None) -> int | None:
    """The first of ``names`` present, as a non-negative integer (integral floats and digit strings too)."""
    for name in names:
        value = data.get(name)
        if value is None:
            continue
        label = field or name
        if isinstance(value, bool):
            raise EventValidationError(label, f"must be a non-negative integer; got {value!r}")
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or value < 0:
            raise EventValidationError(label, f"must be a non-negative integer; got {value!r}")
        return value
    return None


def money(value: Any, field: str) -> Decimal | None:
    """A client's cost: decimal string, int or float (floats as their shortest repr), never negative."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise EventValidationError(field, f"must be a number; got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise EventValidationError(field, "must be finite")
    try:
        d = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value).strip())
    except InvalidOperation:
        raise EventValidationError(field, f"not a decimal number: {value!r}") from None
    if not d.is_finite() or d < 0:
        raise EventValidationError(field, f"must be a finite, non-negative number; got {value!r}")
    return quantize_cost(d)


def time(value: Any, field: str) -> datetime:
    """ISO 8601 text, or unix seconds (int, float or digit string)."""
    if isinstance(value, str):
        text = value.strip()
        try:
            return parse_time(float(text), field)
        except ValueError:
            return parse_time(text, field)
    if isinstance(value, bool):
        raise EventValidationError(field, f"expected a time; got {value!r}")
    try:
        return parse_time(value, field)
    except (OverflowError, OSError):
        raise EventValidationError(field, f"out of range: {value!r}") from None


def text(data: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise EventValidationError(name, "required")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise EventValidationError(name, f"must be a string; got {type(value).__name__}")
    return str(value)


def scalar_attributes(data: Mapping[str, Any], prefix: str = "") -> dict[str, str | int | float | bool]:
    """Flat scalar entries (non-scalars JSON-encoded), for ``attributes``; at most 64 kept."""
    import json

    out: dict[str, str | int | float | bool] = {}
    for key, value in data.items():
        if value is None or len(out) >= 64:
            continue
        name = f"{prefix}{key}"[:128]
        if isinstance(value, (str, bool, int)) or (isinstance(value, float) and math.isfinite(value)):
            out[name] = value[:1024] if isinstance(value, str) else value
        else:
            out[name] = json.dumps(value, default=str)[:1024]
    return out
