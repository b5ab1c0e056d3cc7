"""User price tables: prices for private, fine-tuned or negotiated models.

A table is a list of entries; TOML (``[[model]]`` tables), YAML or JSON (``{"model": [...]}``)::

    [[model]]
    provider = "openai"          # optional: any provider when left out
    model = "ft:gpt-4o-mini:acme*"   # exact name or a glob pattern
    input_mtok = "0.30"          # USD per million tokens, as strings or numbers
    output_mtok = "1.20"
    cache_read_mtok = "0.15"     # optional, defaults to input_mtok
    cache_write_mtok = "0.375"   # optional, defaults to input_mtok
    cache_write_1h_mtok = "0.6"  # optional, defaults to cache_write_mtok
    output_reasoning_mtok = "2"  # optional, defaults to output_mtok
    requests_kcount = "5"        # optional: USD per 1,000 requests
    valid_from = "2026-01-01"    # optional: dated prices; the latest entry in force at the call wins

Overrides win over genai-prices. Bad entries raise :class:`PriceTableError` naming the entry and field.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import sys
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

PRICE_KEYS = (
    "input_mtok",
    "output_mtok",
    "cache_read_mtok",
    "cache_write_mtok",
    "cache_write_1h_mtok",
    "output_reasoning_mtok",
    "requests_kcount",
)


class PriceTableError(ValueError):
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class PriceOverride:
    model: str
    provider: str | None = None
    input_mtok: Decimal = Decimal(0)
    output_mtok: Decimal = Decimal(0)
    cache_read_mtok: Decimal | None = None
    cache_write_mtok: Decimal | None = None
    cache_write_1h_mtok: Decimal | None = None
    valid_from: date | None = None
    output_reasoning_mtok: Decimal | None = None
    requests_kcount: Decimal | None = None
    origin: str | None = None  # the file (or "settings") the entry came from, shown by `meterline prices check`

    def matches(self, provider: str, model: str) -> bool:
        if self.provider not in (None, "*", provider):
            return False
        return self.model == model or fnmatch.fnmatchcase(model, self.model)


def _decimal(value: Any, where: str) -> Decimal:
    if isinstance(value, bool):
        raise PriceTableError(f"{where}: expected a price, got {value!r}")
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise PriceTableError(f"{where}: not a number: {value!r}") from None
    if not d.is_finite() or d < 0:
        raise PriceTableError(f"{where}: must be a non-negative number, got {value!r}")
    return d


def parse_entries(entries: Sequence[Mapping[str, Any]], source: str = "price table") -> list[PriceOverride]:
    out: list[PriceOverride] = []
    for i, entry in enumerate(entries):
        where = f"{source} entry {i + 1}"
        if not isinstance(entry, Mapping):
            raise PriceTableError(f"{where}: must be a table/object")
        unknown = set(entry) - {"model", "provider", "valid_from", *PRICE_KEYS}
        if unknown:
            raise PriceTableError(f"{where}: unknown field {sorted(unknown)[0]!r}")
        model = entry.get("model")
        if not isinstance(model, str) or not model:
            raise PriceTableError(f"{where}: 'model' is required (a name or glob pattern)")
        if "input_mtok" not in entry and "output_mtok" not in entry:
            raise PriceTableError(f"{where} ({model}): needs input_mtok and/or output_mtok")
        prices = {k: _decimal(entry[k], f"{where} ({model}).{k}") for k in PRICE_KEYS if k in entry}
        valid_from = entry.get("valid_from")
        if isinstance(valid_from, datetime):
            valid_from = valid_from.date()
        elif isinstance(valid_from, str):
            try:
                valid_from = date.fromisoformat(valid_from)
            except ValueError:
                raise PriceTableError(f"{where} ({model}).valid_from: not a date: {valid_from!r}") from None
        elif valid_from is not None and not isinstance(valid_from, date):
            raise PriceTableError(f"{where} ({model}).valid_from: not a date: {valid_from!r}")
        provider = entry.get("provider")
        if provider is not None and not isinstance(provider, str):
            raise PriceTableError(f"{where} ({model}).provider: must be a string")
        out.append(PriceOverride(model=model, provider=provider, valid_from=valid_from, origin=source, **prices))
    return out


def load_price_table(path: str | Path) -> list[PriceOverride]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise PriceTableError(f"cannot read price table {p}: {exc.strerror}") from None
    suffix = p.suffix.lower()
    data: Any
    try:
        if suffix == ".toml":
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover - Python 3.10 needs the tomli backport
                import tomli as tomllib
            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        elif suffix == ".json":
            data = json.loads(text)
        else:
            raise PriceTableError(f"price table {p}: use a .toml, .yaml/.yml or .json file")
    except PriceTableError:
        raise
    except Exception as exc:  # the parsers' own errors carry line numbers: keep their text  # noqa: BLE001 - meterline must never raise into the caller or kill its worker
        raise PriceTableError(f"price table {p}: {exc}") from None
    entries = data.get("model") if isinstance(data, Mapping) else data
    if entries is None and isinstance(data, Mapping):
        entries = data.get("models")
    if not isinstance(entries, list):
        raise PriceTableError(f"price table {p}: expected a list of entries under 'model'")
    return parse_entries(entries, source=str(p))
