"""Tests' price data files: genai-prices' packaged data written back as the JSON its updater fetches
(``prices/new_data/v2/data.json``: a list of providers), optionally with a model's prices changed."""

from __future__ import annotations

import dataclasses
import json
from datetime import date, time
from decimal import Decimal
from typing import Any


def _raw(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            if f.name.startswith("_"):
                continue
            item = getattr(value, f.name)
            if item is None:
                continue
            out[f.name.rstrip("_") if f.name in ("or_", "and_") else f.name] = _raw(item)
        return out
    if type(value).__name__ == "ModelPrice":
        return {k: _raw(v) for k, v in vars(value).items() if not k.startswith("_") and v is not None}
    if isinstance(value, (list, tuple)):
        return [_raw(v) for v in value]
    if isinstance(value, dict):
        return {k: _raw(v) for k, v in value.items()}
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (date, time)):
        return value.isoformat()
    return value


def packaged_providers() -> list[dict[str, Any]]:
    from genai_prices.data_snapshot import _bundled_snapshot

    return [_raw(p) for p in _bundled_snapshot().providers]


def find_model(providers: list[dict[str, Any]], provider: str, model: str) -> dict[str, Any]:
    for p in providers:
        if p["id"] == provider:
            for m in p["models"]:
                if m["id"] == model:
                    return m
    raise LookupError(f"{provider}/{model}")


def data_file(providers: list[dict[str, Any]]) -> bytes:
    return json.dumps(providers).encode()
