"""The process-wide recorder and the public functions around it (init, record, flush, shutdown)."""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from meterline import _errors
from meterline import fields as _md
from meterline._version import __version__
from meterline.config import data_dir, env_flag, resolve_destination
from meterline.context import current_metadata
from meterline.event import UsageEvent
from meterline.pricing import Pricer, load_price_table, set_pricer
from meterline.pricing.overrides import parse_entries
from meterline.recorder import Recorder
from meterline.sinks import sink_for
from meterline.spool import Spool

logger = logging.getLogger("meterline")

Redactor = Callable[[Any, "str | None"], "tuple[Any, str | None]"]


@dataclasses.dataclass
class Settings:
    destination: str = ""
    capture_content: bool = False
    redact: Redactor | None = None


_lock = threading.RLock()
_recorder: Recorder | None = None
settings = Settings()


def init(
    destination: str | None = None,
    api_key: str | None = None,
    capture_content: bool | None = None,
    *,
    redact: Redactor | None = None,
    prices: str | Path | Sequence[Mapping[str, Any]] | None = None,
    queue_size: int = 100_000,
    batch_size: int = 500,
    flush_interval: float = 1.0,
    spool_dir: str | Path | None = None,
    spool_max_bytes: int = 256 * 1024 * 1024,
    exit_timeout: float = 5.0,
    max_retries: int = 4,
    backoff_max: float = 30.0,
    before_write: Callable[[UsageEvent], UsageEvent | None] | None = None,
) -> Recorder:
    """Configure where events go. Safe to call again: the previous recorder is flushed and closed.

    destination: ``sqlite:///file.db`` (default: ``meterline.db`` in the user data dir),
    ``postgresql://…`` or ``http(s)://collector`` (env ``METERLINE_DESTINATION``).
    api_key: for an HTTP collector (env ``METERLINE_API_KEY``).
    capture_content: also store prompts and replies (env ``METERLINE_CAPTURE_CONTENT``; off by default),
    passed through ``redact(messages, output_text) -> (messages, output_text)`` first.
    prices: a price table file (TOML/YAML/JSON) or a list of entries (env ``METERLINE_PRICES``).
    """
    global _recorder
    dest = resolve_destination(destination)
    key = api_key or os.environ.get("METERLINE_API_KEY")
    sink = sink_for(dest, api_key=key)
    table = prices if prices is not None else os.environ.get("METERLINE_PRICES")
    if table is None:
        pricer = Pricer()
    elif isinstance(table, (str, Path)):
        pricer = Pricer(load_price_table(table))
    else:
        pricer = Pricer(parse_entries(table))
    set_pricer(pricer)
    spool = Spool(Path(spool_dir) if spool_dir else data_dir() / "spool", max_bytes=spool_max_bytes)
    recorder = Recorder(
        sink,
        pricer=pricer,
        spool=spool,
        queue_size=queue_size,
        batch_size=batch_size,
        flush_interval=flush_interval,
        exit_timeout=exit_timeout,
        max_retries=max_retries,
        backoff_max=backoff_max,
        before_write=before_write,
    )
    with _lock:
        old, _recorder = _recorder, recorder
        settings.destination = dest
        settings.capture_content = (
            capture_content if capture_content is not None else env_flag("METERLINE_CAPTURE_CONTENT")
        )
        settings.redact = redact
    if old is not None:
        old.shutdown(exit_timeout)
    return recorder


def get_recorder() -> Recorder:
    """The current recorder; the first use without ``init()`` configures one from the environment."""
    r = _recorder
    if r is None:
        with _lock:
            if _recorder is None:
                init()
            r = _recorder
    assert r is not None
    return r


def flush(timeout: float = 5.0) -> bool:
    """Write everything recorded so far; True when done within ``timeout`` seconds."""
    r = _recorder
    return True if r is None else r.flush(timeout)


def shutdown(timeout: float = 5.0) -> bool:
    """Flush within ``timeout`` and stop the recorder (also runs at interpreter exit)."""
    global _recorder
    with _lock:
        r, _recorder = _recorder, None
    return True if r is None else r.shutdown(timeout)


def stats() -> dict[str, int]:
    """Counters: submitted, written, dropped_queue_full, dropped_oversize, spooled, replayed, … and
    ``internal_errors``."""
    r = _recorder
    out = r.stats() if r is not None else {}
    out["internal_errors"] = _errors.internal_errors()
    return out


# -- helpers for integrations (caller's thread: fast, never raising) ------------------------------
def apply_metadata(event: UsageEvent, scope: Mapping[str, Any], call: Mapping[str, Any]) -> None:
    merged = _md.merge(scope, call) if call else scope
    for key, value in merged.items():
        setattr(event, key, list(value) if key == "tags" else dict(value) if key == "attributes" else value)


def emit(event: UsageEvent, scope: Mapping[str, Any], call_metadata: Mapping[str, Any] | None = None) -> None:
    """Attach metadata and hand the event to the recorder. Used by every integration."""
    try:
        apply_metadata(event, scope, call_metadata or {})
        event.sdk_version = __version__
        get_recorder().submit(event)
    except Exception as exc:  # noqa: BLE001 - meterline must never raise into the caller or kill its worker
        _errors.report("emit", exc)


def capture(messages: Any, output_text: str | None) -> tuple[Any, str | None]:
    """Content to store with capture_content on (after the user's redaction hook)."""
    if settings.redact is not None:
        return settings.redact(messages, output_text)
    return messages, output_text


def record(*, usage_metadata: Mapping[str, Any] | None = None, **fields: Any) -> str:
    """Record a usage event by hand (any provider meterline does not instrument). Returns its id.

    Takes the event's field names (``provider``, ``model``, ``input_tokens``, ``output_tokens``, …;
    costs as ``Decimal`` or strings, never floats) and metadata fields (``subscriber_id=…`` or Revenium
    spellings). Missing costs are priced like any other call. Raises ``EventValidationError`` or
    ``MetadataError`` naming a bad field.
    """
    from meterline.event import FIELD_NAMES

    event_fields = {k: v for k, v in fields.items() if k in FIELD_NAMES and k not in _md.METADATA_FIELDS}
    meta_fields = {k: v for k, v in fields.items() if k not in event_fields}
    call_md = _md.merge(_md.normalise(meta_fields), _md.normalise(usage_metadata or {}))
    event_fields.setdefault("start_time", datetime.now(timezone.utc))
    event_fields.setdefault("integration", "manual")
    event = UsageEvent.from_wire(event_fields)
    apply_metadata(event, current_metadata(), call_md)
    event.sdk_version = __version__
    get_recorder().submit(event)
    return event.id
