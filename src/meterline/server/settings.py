"""Collector settings: command-line flags > environment (``METERLINE_*``) > config file > defaults.

The config file (``--config`` or ``METERLINE_CONFIG``) is TOML (``.toml``) or YAML (``.yaml``/``.yml``)
with the same names as the fields below, at the top level or under a ``[server]`` table.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from meterline.core.config import resolve_destination


class SettingsError(ValueError):
    """A bad setting; the message names it and where it came from."""


@dataclasses.dataclass
class Settings:
    database: str = ""  # destination: sqlite file (default: the user data dir's meterline.db) or postgresql://
    host: str = "127.0.0.1"
    port: int = 8787
    auth: bool = True  # False: no API key needed (only allowed on a loopback address)
    max_body_bytes: int = 16 * 1024 * 1024  # per request, after gzip decompression
    max_batch_events: int = 10_000  # events per POST /v1/events
    max_page_size: int = 1_000  # events per GET /v1/events page
    key_cache_seconds: float = 5.0  # how long a verified key is trusted without asking the database
    pool_size: int = 8  # PostgreSQL connections per process
    workers: int = 1  # uvicorn worker processes (PostgreSQL only; SQLite has one writer)
    log_level: str = "info"
    dashboard_secret: str = ""  # signs dashboard sessions and share links; empty: one generated per install (in the db)
    header_timeout_seconds: float = 10.0  # a request head must be complete this long after a connection or response
    keep_alive_seconds: int = 5  # an idle keep-alive connection is closed after this (uvicorn's timeout_keep_alive)
    max_request_line_bytes: int = 16_384  # longer request line (method, URL, version): 414
    max_header_bytes: int = 65_536  # larger request head (request line + headers): 431

    def __post_init__(self) -> None:
        self.database = resolve_destination(self.database or None)


_ENV_PREFIX = "METERLINE_"
# environment names that differ from METERLINE_<FIELD>
_ENV_ALIASES = {"database": ("METERLINE_DATABASE", "METERLINE_DESTINATION")}
_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def _convert(name: str, value: Any, origin: str) -> Any:
    default = _FIELDS[name].default
    try:
        if isinstance(default, bool):
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{name} (from {origin}): bad value {value!r}") from None


def read_config_file(path: str | Path) -> dict[str, Any]:
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"config file {p}: {exc}") from None
    data: Any
    if p.suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text) or {}
    else:
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover - Python 3.10 needs the tomli backport
            import tomli as tomllib
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"config file {p}: {exc}") from None
    if not isinstance(data, dict):
        raise SettingsError(f"config file {p}: expected a table of settings")
    if isinstance(data.get("server"), dict):
        data = {**{k: v for k, v in data.items() if k != "server"}, **data["server"]}
    unknown = sorted(k for k in data if k not in _FIELDS)
    if unknown:
        raise SettingsError(f"config file {p}: unknown setting {unknown[0]!r}; known: {', '.join(_FIELDS)}")
    return {k: _convert(k, v, str(p)) for k, v in data.items()}


def from_environment(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    env = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    for name in _FIELDS:
        for var in _ENV_ALIASES.get(name, (_ENV_PREFIX + name.upper(),)):
            if env.get(var, "").strip():
                out[name] = _convert(name, env[var], var)
                break
    return out


def load_settings(
    flags: Mapping[str, Any] | None = None,
    *,
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Merge the three sources; ``flags`` values that are None are treated as not given."""
    env = os.environ if environ is None else environ
    merged: dict[str, Any] = {}
    path = config_file or env.get("METERLINE_CONFIG")
    if path:
        merged.update(read_config_file(path))
    merged.update(from_environment(env))
    for k, v in (flags or {}).items():
        if v is None:
            continue
        if k not in _FIELDS:
            raise SettingsError(f"unknown setting {k!r}")
        merged[k] = _convert(k, v, "command line")
    settings = Settings(**merged)
    validate(settings)
    return settings


LOOPBACK = ("127.0.0.1", "::1", "localhost")


def validate(s: Settings) -> None:
    if not s.auth and s.host not in LOOPBACK:
        raise SettingsError(
            f"auth: --no-auth is only allowed on a loopback address (127.0.0.1, ::1, localhost); host is {s.host!r}"
        )
    for name in ("max_body_bytes", "max_batch_events", "max_page_size", "pool_size", "workers", "keep_alive_seconds"):
        if getattr(s, name) < 1:
            raise SettingsError(f"{name}: must be at least 1")
    if not 0 < s.header_timeout_seconds <= 3600:
        raise SettingsError("header_timeout_seconds: must be more than 0 and at most 3600")
    if s.max_request_line_bytes < 256:
        raise SettingsError("max_request_line_bytes: must be at least 256")
    if s.max_header_bytes < s.max_request_line_bytes:
        raise SettingsError("max_header_bytes: must be at least max_request_line_bytes (the head includes the line)")
    from meterline.core.config import destination_kind

    if destination_kind(s.database) not in ("sqlite", "postgresql", "clickhouse"):
        raise SettingsError(f"database: the collector stores into sqlite, postgresql or clickhouse, not {s.database!r}")
    if s.workers > 1 and s.database.lower().startswith("chdb://"):
        raise SettingsError(
            "workers: the embedded ClickHouse (chdb) opens its directory in one process; use a ClickHouse server"
        )
    if s.workers > 1 and destination_kind(s.database) == "sqlite":
        raise SettingsError("workers: SQLite has a single writer; use PostgreSQL for several worker processes")
