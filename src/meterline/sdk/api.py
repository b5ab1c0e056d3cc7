"""The process-wide recorder and the public functions around it (init, record, flush, shutdown)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from meterline._version import __version__
from meterline.core import errors as _errors
from meterline.core import metadata as _md
from meterline.core.config import (
    delivery_state_dir,
    destination_label,
    env_flag,
    legacy_spool_dir,
    resolve_destination,
)
from meterline.core.event import MAX_ATTRIBUTES, UsageEvent
from meterline.pricing import Pricer, load_price_table, set_pricer
from meterline.pricing.overrides import parse_entries
from meterline.sdk.delivery.deadletter import DeadLetters
from meterline.sdk.delivery.durable import fsync_interval_from_env
from meterline.sdk.delivery.spool import Spool
from meterline.sdk.recorder import Deferred, Recorder
from meterline.sdk.scopes import current_metadata
from meterline.sdk.sinks import sink_for

logger = logging.getLogger("meterline")

Redactor = Callable[[Any, "str | None"], "tuple[Any, str | None]"]


@dataclasses.dataclass
class Settings:
    destination: str = ""
    capture_content: bool = False
    redact: Redactor | None = None
    capture_headers: bool = False
    capture_raw_request: bool = False


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
    capture_headers: bool | None = None,
    capture_raw_request: bool | None = None,
    redact_presets: Sequence[str] | None = None,
    redact_patterns: Sequence[str] | None = None,
    content_max_bytes: int | None = None,
    otlp_endpoint: str | None = None,
    otlp_headers: Mapping[str, str] | None = None,
    durability: str | None = None,
    fsync_interval_ms: float | None = None,
) -> Recorder:
    """Configure where events go. Safe to call again: the previous recorder is flushed and closed.

    destination: ``sqlite:///file.db`` (default: ``meterline.db`` in the user data dir),
    ``postgresql://…`` or ``http(s)://collector`` (env ``METERLINE_DESTINATION``).
    api_key: for an HTTP collector (env ``METERLINE_API_KEY``).
    capture_content: also store prompts and replies (env ``METERLINE_CAPTURE_CONTENT``; off by default),
    passed through ``redact(messages, output_text) -> (messages, output_text)`` first.
    capture_headers / capture_raw_request: also keep the request's headers / body (env
    ``METERLINE_CAPTURE_HEADERS``, ``METERLINE_CAPTURE_RAW_REQUEST``); credential headers are always masked.
    redact_presets: redaction presets for captured content (env ``METERLINE_REDACT``: ``all`` (default),
    ``none`` or e.g. ``emails,secrets``); redact_patterns: extra regexes (env ``METERLINE_REDACT_PATTERNS``,
    a JSON list). Redaction runs on the recorder's thread. content_max_bytes: cap per event (env
    ``METERLINE_CONTENT_MAX_BYTES``, default 64 KiB).
    otlp_endpoint: also export each call as an OpenTelemetry gen_ai span over OTLP/HTTP (env
    ``METERLINE_OTLP_ENDPOINT``, e.g. ``http://otel-collector:4318``; headers: ``METERLINE_OTLP_HEADERS``).
    prices: a price table file (TOML/YAML/JSON) or a list of entries (env ``METERLINE_PRICES``).
    spool_dir: where this process keeps its local delivery state, one sub-directory per destination (named
    by a hash of the destination without credentials): the spool, the durable log and ``deadletter.jsonl``
    (default: ``delivery`` in the user data dir).
    durability: ``"memory"`` (default) or ``"disk"`` (env ``METERLINE_DURABILITY``): with ``"disk"`` every
    event is written to an append-only local log before ``record()`` returns, so a killed process (SIGKILL)
    loses none of them; the log is fsynced every ``fsync_interval_ms`` (env ``METERLINE_FSYNC_INTERVAL_MS``,
    default 50), so a machine crash loses about that interval.
    """
    global _recorder
    from meterline.sdk import content as _content
    from meterline.sdk import otel as _otel

    inherited = _inherited() if destination is None and not os.environ.get("METERLINE_DESTINATION") else {}
    dest = resolve_destination(destination or inherited.get("destination"))
    if spool_dir is None and inherited.get("spool_dir"):
        spool_dir = inherited["spool_dir"]
    mode = (durability or os.environ.get("METERLINE_DURABILITY") or inherited.get("durability") or "memory").strip()
    if mode.lower() not in ("memory", "disk"):
        raise ValueError(f"durability={mode!r}: expected 'memory' or 'disk'")
    fsync_interval = fsync_interval_from_env() if fsync_interval_ms is None else fsync_interval_ms / 1000
    if fsync_interval <= 0:
        raise ValueError(f"fsync_interval_ms={fsync_interval_ms!r}: must be > 0")
    key = api_key or os.environ.get("METERLINE_API_KEY")
    content_policy = _content_policy(
        capture_content,
        capture_headers,
        capture_raw_request,
        redact,
        redact_presets,
        redact_patterns,
        content_max_bytes,
    )
    sink = sink_for(dest, api_key=key)
    exporter = _otel.exporter_from(otlp_endpoint, otlp_headers)
    if exporter is not None:
        sink = _otel.ExportingSink(sink, exporter)
    table = prices if prices is not None else os.environ.get("METERLINE_PRICES")
    if table is None:
        pricer = Pricer()
    elif isinstance(table, (str, Path)):
        pricer = Pricer(load_price_table(table))
    else:
        pricer = Pricer(parse_entries(table))
    set_pricer(pricer)
    # one directory per destination: a spool for one destination is never replayed into another
    state = delivery_state_dir(dest, spool_dir)
    _describe_state_dir(state, dest)
    spool = Spool(state / "spool", max_bytes=spool_max_bytes)
    # spool files of the first release (one spool for all destinations) join this destination's replay
    spool.adopt(legacy_spool_dir(spool_dir))
    recorder = Recorder(
        sink,
        pricer=pricer,
        spool=spool,
        dead_letters=DeadLetters(state / "deadletter.jsonl", destination=destination_label(dest)),
        durable_dir=state / "durable" if mode.lower() == "disk" else None,
        fsync_interval=fsync_interval,
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
        settings.capture_content = content_policy.capture_content
        settings.capture_headers = content_policy.capture_headers
        settings.capture_raw_request = content_policy.capture_raw_request
        settings.redact = redact
        _content.configure(content_policy)
    _export_for_children(dest, spool_dir, mode.lower())
    if old is not None:
        old.shutdown(exit_timeout)
    return recorder


def _content_policy(
    capture_content: bool | None,
    capture_headers: bool | None,
    capture_raw_request: bool | None,
    redact: Redactor | None,
    presets: Sequence[str] | None,
    patterns: Sequence[str] | None,
    max_bytes: int | None,
) -> Any:
    import json

    from meterline.sdk.content import DEFAULT_MAX_BYTES, ContentPolicy
    from meterline.sdk.redaction import RedactionError, parse_presets
    from meterline.sdk.redaction import Redactor as PresetRedactor

    if patterns is None:
        raw = os.environ.get("METERLINE_REDACT_PATTERNS", "").strip()
        if raw:
            try:
                loaded = json.loads(raw) if raw.startswith("[") else [raw]
            except ValueError:
                raise RedactionError("METERLINE_REDACT_PATTERNS: not a JSON list of regular expressions") from None
            patterns = [str(p) for p in loaded]
    if max_bytes is None:
        env = os.environ.get("METERLINE_CONTENT_MAX_BYTES", "").strip()
        try:
            max_bytes = int(env) if env else DEFAULT_MAX_BYTES
        except ValueError:
            raise ValueError(f"METERLINE_CONTENT_MAX_BYTES: not a number of bytes: {env!r}") from None
    return ContentPolicy(
        capture_content=capture_content if capture_content is not None else env_flag("METERLINE_CAPTURE_CONTENT"),
        capture_headers=capture_headers if capture_headers is not None else env_flag("METERLINE_CAPTURE_HEADERS"),
        capture_raw_request=(
            capture_raw_request if capture_raw_request is not None else env_flag("METERLINE_CAPTURE_RAW_REQUEST")
        ),
        redactor=PresetRedactor(
            presets if presets is not None else parse_presets(os.environ.get("METERLINE_REDACT")), patterns or ()
        ),
        hook=redact,
        max_bytes=max_bytes,
    )


_CHILD_ENV = "_METERLINE_PARENT_INIT"


def _export_for_children(dest: str, spool_dir: str | Path | None, durability: str) -> None:
    """``multiprocessing`` spawn children start a fresh interpreter: leave them this process's destination
    (never one holding a password: those children need ``METERLINE_DESTINATION``) so their first event goes
    where the parent's go."""
    import urllib.parse

    try:
        if urllib.parse.urlsplit(dest).password:
            os.environ.pop(_CHILD_ENV, None)
            return
    except ValueError:
        return
    doc = {"pid": os.getpid(), "destination": dest, "durability": durability}
    if spool_dir is not None:
        doc["spool_dir"] = str(spool_dir)
    os.environ[_CHILD_ENV] = json.dumps(doc)


def _inherited() -> dict[str, str]:
    raw = os.environ.get(_CHILD_ENV)
    if not raw:
        return {}
    try:
        doc = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(doc, dict) or doc.get("pid") != os.getppid() or not _in_multiprocessing_child():
        return {}  # only a multiprocessing child of the process that called init() inherits its destination
    return {k: v for k, v in doc.items() if k in ("destination", "spool_dir", "durability") and isinstance(v, str)}


def _in_multiprocessing_child() -> bool:
    import sys

    mp = sys.modules.get("multiprocessing")
    if mp is None:
        return False
    # a spawn child imports the parent's main module before its bootstrap sets parent_process()
    return mp.parent_process() is not None or bool(getattr(mp.current_process(), "_inheriting", False))


def _describe_state_dir(state: Path, dest: str) -> None:
    """A ``destination.txt`` naming the destination (without credentials) for an operator; best effort."""
    try:
        label = state / "destination.txt"
        if not label.exists():
            state.mkdir(parents=True, exist_ok=True)
            label.write_text(destination_label(dest) + "\n", encoding="utf-8")
    except OSError:
        pass  # the spool counts its own errors when it is used


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
        if key == "attributes":
            # keep what the usage reader noted (meterline.web_searches, meterline.service_tier): the user's win
            kept = {k: v for k, v in event.attributes.items() if k not in value}
            value = dict(list({**value, **kept}.items())[:MAX_ATTRIBUTES])
        setattr(event, key, list(value) if key == "tags" else value)


def _otel_ids() -> tuple[str, str] | None:
    """The active OpenTelemetry span's ids (caller's thread), when the app imported OpenTelemetry."""
    if not _otel_loaded():
        return None
    from meterline.sdk.otel import current_ids

    return current_ids()


def _complete(
    event: UsageEvent, scope: Mapping[str, Any], call_md: Mapping[str, Any], otel_ids: tuple[str, str] | None
) -> None:
    """What every event gets before the recorder takes it: metadata, the span's ids, the SDK version."""
    apply_metadata(event, scope, call_md)
    if otel_ids is not None:
        from meterline.sdk.otel import stamp_ids

        stamp_ids(event, otel_ids)
    event.sdk_version = __version__


def emit(event: UsageEvent, scope: Mapping[str, Any], call_metadata: Mapping[str, Any] | None = None) -> None:
    """Attach metadata and hand the event to the recorder. Used by every integration."""
    try:
        _complete(event, scope, call_metadata or {}, _otel_ids())
        get_recorder().submit(event)
    except Exception as exc:  # noqa: BLE001 - meterline must never raise into the caller or kill its worker
        _errors.report("emit", exc)


class _Pending(Deferred):
    """``make(*args)`` builds the event on the recorder's thread; the metadata snapshot goes on it there."""

    __slots__ = ("args", "call_md", "make", "otel_ids", "scope")

    def __init__(
        self,
        make: Callable[..., UsageEvent | None],
        args: tuple[Any, ...],
        scope: Mapping[str, Any],
        call_md: Mapping[str, Any] | None,
        otel_ids: tuple[str, str] | None,
    ) -> None:
        self.make = make
        self.args = args
        self.scope = scope
        self.call_md = call_md
        self.otel_ids = otel_ids

    def build(self) -> UsageEvent | None:
        event = self.make(*self.args)
        if event is not None:
            _complete(event, self.scope, self.call_md or {}, self.otel_ids)
        return event


def emit_later(
    make: Callable[..., UsageEvent | None],
    args: tuple[Any, ...],
    scope: Mapping[str, Any],
    call_metadata: Mapping[str, Any] | None = None,
) -> None:
    """Like :func:`emit`, but ``make(*args)`` builds the event on the recorder's thread: the caller's thread
    only queues references (the call's timings, the reply's objects, the metadata snapshot taken at call
    start). ``make`` must read nothing that the caller may still change; it may return None (no event).
    The active OpenTelemetry span is the caller's: its ids are read here (when the app imported it)."""
    try:
        get_recorder().submit(_Pending(make, args, scope, call_metadata, _otel_ids()))
    except Exception as exc:  # noqa: BLE001 - meterline must never raise into the caller or kill its worker
        _errors.report("emit", exc)


def capture(messages: Any, output_text: str | None) -> tuple[Any, str | None]:
    """Content to keep with capture_content on. Only references here (caller's thread): the redaction
    hook and presets run on the recorder's thread (:func:`meterline.sdk.content.prepare`). A message list is
    copied so that the caller appending to it later does not change what is stored."""
    if isinstance(messages, list):
        messages = list(messages)
    return messages, output_text


def _otel_loaded() -> bool:
    # the OpenTelemetry API is only consulted when the app imported it (never imported by meterline)
    return "opentelemetry.trace" in sys.modules


def record(*, usage_metadata: Mapping[str, Any] | None = None, **fields: Any) -> str:
    """Record a usage event by hand (any provider meterline does not instrument). Returns its id.

    Takes the event's field names (``provider``, ``model``, ``input_tokens``, ``output_tokens``, …;
    costs as ``Decimal`` or strings, never floats) and metadata fields (``subscriber_id=…`` or Revenium
    spellings). Missing costs are priced like any other call. Raises ``EventValidationError`` or
    ``MetadataError`` naming a bad field.
    """
    from meterline.core.event import FIELD_NAMES

    event_fields = {k: v for k, v in fields.items() if k in FIELD_NAMES and k not in _md.METADATA_FIELDS}
    meta_fields = {k: v for k, v in fields.items() if k not in event_fields}
    call_md = _md.merge(_md.normalise(meta_fields), _md.normalise(usage_metadata or {}))
    event_fields.setdefault("start_time", datetime.now(timezone.utc))
    event_fields.setdefault("integration", "manual")
    event = UsageEvent.from_wire(event_fields)
    _complete(event, current_metadata(), call_md, _otel_ids())
    get_recorder().submit(event)
    return event.id
