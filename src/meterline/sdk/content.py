"""Captured content: what an event may carry besides usage, and its preparation on the recorder thread.

Integrations only keep references on the caller's thread (the request's messages, the reply text, tool
calls, headers, the request body) when capture is on. :func:`prepare` runs on the recorder's thread for
every event (in durable mode, in the durable log's commit, before the event's first byte reaches the disk),
before it is stored, spooled, sent or exported: it turns SDK objects into JSON values, runs
the user's ``redact`` hook, then the redaction presets and custom patterns, masks credential headers and
request keys, and caps the content at ``max_bytes`` per event (strings shortened, marked with
``meterline.content_truncated`` in ``attributes``). Error messages are redacted too: provider errors
sometimes quote a key.

Stores keep content in their own table (``event_content``, see :mod:`meterline.store.content`) keyed by
event id, so the usage tables and their rollups stay lean and content can be pruned on its own schedule.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from meterline.core import errors as _errors
from meterline.core.event import CONTENT_FIELDS, UsageEvent, content_json
from meterline.sdk.redaction import Hook, Redactor, mask_headers

logger = logging.getLogger("meterline")

DEFAULT_MAX_BYTES = 64 * 1024
TRUNCATED_ATTRIBUTE = "meterline.content_truncated"
_MIN_STRING = 64


@dataclasses.dataclass
class ContentPolicy:
    capture_content: bool = False
    capture_headers: bool = False
    capture_raw_request: bool = False
    redactor: Redactor = dataclasses.field(default_factory=Redactor)
    hook: Hook | None = None
    max_bytes: int = DEFAULT_MAX_BYTES

    @property
    def capturing(self) -> bool:
        return self.capture_content or self.capture_headers or self.capture_raw_request


policy = ContentPolicy()


def configure(new: ContentPolicy) -> None:
    global policy
    policy = new


def has_content(event: UsageEvent) -> bool:
    return (
        event.input_messages is not None
        or event.output_text is not None
        or event.output_tool_calls is not None
        or event.request_headers is not None
        or event.raw_request is not None
    )


def jsonable(obj: Any, _depth: int = 0) -> Any:
    """SDK objects (pydantic models, LiteLLM ``Message``s, dataclasses) as plain JSON values."""
    if obj is None or isinstance(obj, (str, bool, int, float)):
        return obj
    if _depth > 64:
        return "…"
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v, _depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v, _depth + 1) for v in obj]
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return f"<{len(obj)} bytes>"
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        try:
            return jsonable(dump(mode="json", exclude_none=True), _depth + 1)
        except Exception:  # noqa: BLE001 - an odd SDK object: fall back to its attributes
            pass
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return jsonable(dataclasses.asdict(obj), _depth + 1)
    fields = getattr(obj, "__dict__", None)
    if isinstance(fields, dict):
        return {k: jsonable(v, _depth + 1) for k, v in fields.items() if not k.startswith("_")}
    return str(obj)


def prepare(event: UsageEvent, pol: ContentPolicy | None = None) -> None:
    """Redact and cap the event's content in place (recorder thread). Never raises: on an internal error
    the content is dropped rather than risk storing it unredacted."""
    p = pol or policy
    try:
        if event.error_message and p.redactor.active:
            event.error_message = p.redactor.text(event.error_message)
        if not has_content(event):
            return
        _redact(event, p)
        _cap(event, p.max_bytes)
    except Exception as exc:  # noqa: BLE001 - never store content we could not redact
        for name in CONTENT_FIELDS:
            setattr(event, name, None)
        _errors.report("content.prepare", exc, reraise=False)


def redact_line(line: str, pol: ContentPolicy | None = None) -> str:
    """A raw spool or durable-log line (one that no longer reads as an event, about to be dead-lettered) with
    the redaction presets applied: such a line may come from a version that logged content unredacted."""
    p = pol or policy
    try:
        return p.redactor.text(line) if p.redactor.active else line
    except Exception as exc:  # noqa: BLE001 - never keep what we could not redact
        _errors.report("content.redact_line", exc, reraise=False)
        return "[REDACTED: line could not be redacted]"


def _redact(event: UsageEvent, p: ContentPolicy) -> None:
    r = p.redactor
    messages = jsonable(event.input_messages)
    text = event.output_text if isinstance(event.output_text, str) or event.output_text is None else None
    if p.hook is not None and (messages is not None or text is not None):
        messages, text = p.hook(messages, text)
        messages = jsonable(messages)
    if r.active:
        messages = r.value(messages)
        text = r.text(text) if isinstance(text, str) else text
    event.input_messages = messages
    event.output_text = text if isinstance(text, str) or text is None else str(text)
    if event.output_tool_calls is not None:
        calls = jsonable(event.output_tool_calls)
        event.output_tool_calls = r.value(calls) if r.active else calls
    if event.request_headers is not None:
        headers = jsonable(event.request_headers)
        if isinstance(headers, Mapping):
            event.request_headers = r.headers(headers) if r.active else mask_headers(headers)
        else:
            event.request_headers = None
    if event.raw_request is not None:
        raw = jsonable(event.raw_request)
        event.raw_request = r.value(raw) if r.active else _mask_keys(raw)


def _mask_keys(value: Any) -> Any:
    return Redactor(presets=()).value(value)


def _size(event: UsageEvent) -> int:
    text = content_json(event)
    return len(text.encode("utf-8")) if text else 0


def _shorten(value: Any, limit: int) -> Any:
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + "…[truncated]"
    if isinstance(value, list):
        return [_shorten(v, limit) for v in value]
    if isinstance(value, dict):
        return {k: _shorten(v, limit) for k, v in value.items()}
    return value


def _cap(event: UsageEvent, max_bytes: int) -> None:
    if max_bytes <= 0 or _size(event) <= max_bytes:
        return
    limit = max_bytes
    while limit > _MIN_STRING and _size(event) > max_bytes:
        limit //= 2
        for name in CONTENT_FIELDS:
            value = getattr(event, name)
            if value is not None:
                setattr(event, name, _shorten(value, limit))
    # still too big (thousands of short messages): drop the bulkiest parts, the reply text last
    for name in ("raw_request", "request_headers", "input_messages", "output_tool_calls", "output_text"):
        if _size(event) <= max_bytes:
            break
        setattr(event, name, None)
    event.attributes = {**event.attributes, TRUNCATED_ATTRIBUTE: True}
