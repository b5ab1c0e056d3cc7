"""One metered provider call: what the Anthropic SDK and Bedrock integrations share.

A :class:`CallMeter` is created on the caller's thread when a call starts (it snapshots the metadata
scope then), collects usage from a reply or from stream events, and emits exactly ONE event however
the call ends: ``success``, ``error`` or ``cancelled`` (stream abandoned, closed or garbage collected).
``finish_*`` may race (the consumer's thread against a GC finaliser), so the first one wins under a lock.
Nothing here raises into the caller: internal errors go to :func:`meterline.core.errors.report`.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from meterline.core import errors as _errors
from meterline.core import usage as _usage
from meterline.core.constants import ANTHROPIC_STOP_REASONS
from meterline.core.event import MAX_ERROR_MESSAGE, UsageEvent
from meterline.core.metadata import normalise
from meterline.core.usage import get_field as get
from meterline.sdk.scopes import current_metadata

_NO_TOKENS = _usage.TokenUsage()  # frozen: shared (building one is ~1.5 µs, on the caller's thread)
Reader = Callable[["CallMeter", Any], None]

STOP_REASONS = ANTHROPIC_STOP_REASONS  # Anthropic stop reasons (also Bedrock Converse's stopReason)
_TOOL_BLOCKS = frozenset({"tool_use", "server_tool_use", "mcp_tool_use"})


def call_metadata(raw: Any) -> Mapping[str, Any]:
    """A call's ``usage_metadata=``, normalised leniently (a bad field is logged, not raised)."""
    if not raw:
        return {}
    if not isinstance(raw, Mapping):
        _errors.report("usage_metadata", TypeError(f"usage_metadata must be a mapping, got {type(raw).__name__}"))
        return {}
    return normalise(raw, strict=False)


def request_headers(client: Any, options: Any) -> dict[str, Any] | None:
    """The headers a Stainless SDK call sends (client defaults, then the call's own), only when
    capture_headers is on; credential headers are masked later, on the recorder's thread."""
    if not _api_module().settings.capture_headers:
        return None
    out: dict[str, Any] = {}
    for attr in ("default_headers", "auth_headers"):  # auth: masked, but shows which credential header went
        try:
            found = getattr(client, attr, None)
        except Exception:  # noqa: BLE001 - a client without the property: the call's own headers only
            found = None
        if isinstance(found, Mapping):
            out.update({k: v for k, v in found.items() if isinstance(v, str)})
    own = getattr(options, "headers", None)
    if isinstance(own, Mapping):
        out.update({k: v for k, v in own.items() if isinstance(v, str)})
    return out


def public_url(url: Any) -> str | None:
    """A client's base URL without user info, query or fragment (no credential is ever stored), or None."""
    try:
        parts = urllib.parse.urlsplit(str(url))
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host or not parts.scheme:
        return None
    netloc = f"[{host}]" if ":" in host else host
    netloc = f"{netloc}:{port}" if port else netloc
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))[:1024]


class CallMeter:
    """Usage and outcome of one call; :meth:`finish` emits its single event."""

    __slots__ = (
        "_done",
        "_lock",
        "_mono",
        "api_base",
        "call_md",
        "input_messages",
        "integration",
        "later",
        "model",
        "operation",
        "out_chars",
        "prompt_chars",
        "provider",
        "raw_request",
        "request_headers",
        "response_model",
        "scope",
        "start",
        "stop_reason",
        "stream",
        "text_parts",
        "tokens",
        "tool_calls",
        "tool_use",
        "ttft_ms",
    )

    def __init__(
        self,
        *,
        provider: str,
        model: str,
        integration: str,
        stream: bool,
        call_md: Mapping[str, Any] | None = None,
        operation: str = "chat",
    ) -> None:
        self.start = datetime.now(timezone.utc)
        self._mono = time.monotonic()
        self.provider = provider
        self.model = model or "unknown"
        self.integration = integration
        self.stream = stream
        self.operation = operation
        self.scope = current_metadata()
        self.call_md = call_md or {}
        self.response_model: str | None = None
        self.stop_reason: str | None = None
        self.tool_use = False
        self.ttft_ms: float | None = None
        self.tokens = _NO_TOKENS
        self.later: list[tuple[Reader, Any]] | None = None  # reads left to the recorder's thread
        self.text_parts: list[str] | None = None
        self.input_messages: Any = None
        self.tool_calls: list[dict[str, Any]] | None = None  # with capture_content: the tool calls asked for
        self.request_headers: Any = None
        self.raw_request: Any = None
        self.api_base: Any = None  # the client's base URL object (made a string on the recorder's thread)
        self.prompt_chars = 0  # for the estimate of a stream abandoned before the provider reported usage
        self.out_chars = 0
        self._lock = threading.Lock()
        self._done = False

    # -- collecting -----------------------------------------------------------------------------
    def mark_first_token(self) -> None:
        if self.ttft_ms is None:
            self.ttft_ms = round((time.monotonic() - self._mono) * 1000.0, 3)

    def set_stop(self, raw: Any) -> None:
        if isinstance(raw, str) and raw:
            self.stop_reason = STOP_REASONS.get(raw, self.stop_reason)
            if raw == "tool_use":
                self.tool_use = True

    def note_content(self, blocks: Any) -> None:
        """Reply content blocks (Anthropic shape): tool use, and text when content capture is on."""
        for block in blocks or ():
            kind = get(block, "type")
            if kind in _TOOL_BLOCKS:
                self.tool_use = True
                if self.tool_calls is not None:
                    self.tool_calls.append(
                        {"id": get(block, "id"), "name": get(block, "name"), "arguments": get(block, "input")}
                    )
            elif kind == "text" and self.text_parts is not None:
                self.text_parts.append(str(get(block, "text") or ""))

    def anthropic_message(self, message: Any) -> None:
        """A complete Anthropic ``Message`` (SDK object or Bedrock InvokeModel JSON)."""
        model = get(message, "model")
        if isinstance(model, str) and model:
            self.response_model = model
        self.tokens = _usage.from_anthropic(get(message, "usage"))
        self.set_stop(get(message, "stop_reason"))
        self.note_content(get(message, "content"))

    def anthropic_event(self, event: Any, defer: bool = True) -> bool:
        """One Anthropic stream event; True when it ends the message (``message_stop``). ``defer``: the usage
        of ``message_start``/``message_delta`` is read on the recorder's thread (SDK event objects, which
        nothing changes after the SDK hands them out)."""
        kind = get(event, "type")
        if kind == "message_start":
            message = get(event, "message")
            if defer:
                self.read_later(CallMeter._message_start, message)
            else:
                self._message_start(message)
        elif kind == "content_block_delta":
            self.mark_first_token()
            if self.text_parts is not None:
                delta = get(event, "delta")
                kind = get(delta, "type")
                if kind == "text_delta":
                    self.text_parts.append(str(get(delta, "text") or ""))
                elif kind == "input_json_delta" and self.tool_calls:
                    self.tool_calls[-1]["arguments"] += str(get(delta, "partial_json") or "")
        elif kind == "content_block_start":
            block = get(event, "content_block")
            if get(block, "type") in _TOOL_BLOCKS:
                self.tool_use = True
                if self.tool_calls is not None:
                    self.tool_calls.append({"id": get(block, "id"), "name": get(block, "name"), "arguments": ""})
        elif kind == "message_delta":
            self.set_stop(get(get(event, "delta"), "stop_reason"))
            if defer:
                self.read_later(CallMeter._merge_delta_usage, get(event, "usage"))
            else:
                self._merge_delta_usage(get(event, "usage"))
        elif kind == "message_stop":
            return True
        return False

    def _message_start(self, message: Any) -> None:
        model = get(message, "model")
        if isinstance(model, str) and model:
            self.response_model = model
        self.tokens = _usage.from_anthropic(get(message, "usage"))

    def read_later(self, read: Reader, what: Any) -> None:
        """``read(self, what)`` runs on the recorder's thread before the event is built, in call order."""
        if self.later is None:
            self.later = []
        self.later.append((read, what))

    def resolve(self) -> None:
        """Run the reads left for later, in order; the recorder's thread does this before building the event.
        A read that fails is reported and skipped: the event keeps what is known."""
        reads, self.later = self.later or [], None
        for read, what in reads:
            try:
                read(self, what)
            except Exception as exc:  # noqa: BLE001 - a reply we cannot read: still one event, with what is known
                _errors.report("integrations.read", exc, reraise=False)

    def _merge_delta_usage(self, delta: Any) -> None:
        # message_delta's usage is cumulative; output_tokens always, input/cache counts only when present.
        if delta is None:
            return
        t = self.tokens
        fields = {
            "input_tokens": get(delta, "input_tokens"),
            "cache_read_tokens": get(delta, "cache_read_input_tokens"),
            "cache_write_tokens": get(delta, "cache_creation_input_tokens"),
            "output_tokens": get(delta, "output_tokens"),
        }
        values = {k: int(v) for k, v in fields.items() if isinstance(v, int) and not isinstance(v, bool)}
        if not values:
            return
        write = values.get("cache_write_tokens", t.cache_write_tokens)
        web = get(get(delta, "server_tool_use"), "web_search_requests")
        self.tokens = dataclasses.replace(
            t,
            input_tokens=values.get("input_tokens", t.input_tokens),
            cache_read_tokens=values.get("cache_read_tokens", t.cache_read_tokens),
            cache_write_tokens=write,
            cache_write_1h_tokens=min(t.cache_write_1h_tokens, write),
            output_tokens=values.get("output_tokens", t.output_tokens),
            web_searches=t.web_searches if not isinstance(web, int) or isinstance(web, bool) else max(web, 0),
        )

    # -- finishing (exactly once) -----------------------------------------------------------------
    def _claim(self) -> bool:
        with self._lock:
            if self._done:
                return False
            self._done = True
            return True

    @property
    def done(self) -> bool:
        return self._done

    def success(self, read: Reader | None = None, reply: Any = None) -> None:
        """The call succeeded. ``read(self, reply)`` takes the reply's usage, model and stop reason on the
        recorder's thread, not the caller's: for SDK reply objects, which the caller gets back and does not
        change (a dict the caller may edit, such as boto3's parsed reply, is read before calling this)."""
        if read is not None and not self._done:
            self.read_later(read, reply)
        self._finish("success", None)

    def error(self, exc: BaseException | None, error_type: str | None = None, message: str | None = None) -> None:
        kind = error_type or (type(exc).__name__ if exc is not None else "error")
        text = message if message is not None else (str(exc) if exc is not None else kind)
        self._finish("error", (kind, text))

    def cancel(self) -> None:
        self._finish("cancelled", None)

    def _finish(self, status: str, error: tuple[str, str] | None) -> None:
        """Caller's thread: claim the call, take its duration; the event is built on the recorder's thread
        (``_api.emit_later``) from this meter, which nothing changes once it is claimed."""
        if not self._claim():
            return
        try:
            elapsed = time.monotonic() - self._mono
            api = _api_module()
            api.emit_later(
                self._event, (status, error, elapsed, api.settings.capture_content), self.scope, self.call_md
            )
        except Exception as exc:  # noqa: BLE001 - never raise into the caller (or a GC finaliser)
            _errors.report("integrations.finish", exc, reraise=False)

    def _event(
        self,
        status: str,
        error: tuple[str, str] | None,
        elapsed: float,
        capture: bool,
    ) -> UsageEvent:
        _api = _api_module()
        self.resolve()
        event = UsageEvent(
            start_time=self.start,
            end_time=self.start + timedelta(seconds=elapsed),
            duration_ms=round(elapsed * 1000.0, 3),
            provider=self.provider,
            model=self.model,
            response_model=self.response_model,
            operation=self.operation,
            operation_subtype="tool_use" if self.tool_use else None,
            stream=self.stream,
            status=status,
            integration=self.integration,
            time_to_first_token_ms=self.ttft_ms if self.stream else None,
        )
        if status == "success":
            event.stop_reason = self.stop_reason
        elif status == "cancelled":
            event.stop_reason = "cancelled"
        else:
            event.stop_reason = "error"
            assert error is not None
            event.error_type = error[0][:200]
            event.error_message = error[1][:MAX_ERROR_MESSAGE]
        tokens = self.tokens
        if status == "cancelled" and self.stream and tokens.total_tokens == 0 and (self.prompt_chars or self.out_chars):
            # OpenAI-style streams report usage only at their end: the provider billed what was sent anyway
            tokens = _usage.estimate(self.prompt_chars, self.out_chars)
            event.usage_source = "estimated"
        _usage.apply(event, tokens)
        if capture:
            text = "".join(self.text_parts) if self.text_parts else None
            event.input_messages, event.output_text = _api.capture(self.input_messages, text)
            event.output_tool_calls = self.tool_calls or None
        event.request_headers = self.request_headers
        event.raw_request = self.raw_request
        if self.api_base is not None:
            event.api_base = public_url(self.api_base)
        return event

    def want_content(self, messages: Any, headers: Any = None, body: Any = None) -> None:
        """Keep the request's messages and collect reply text and tool calls, when content capture is on;
        the request's headers and body with capture_headers / capture_raw_request. References and shallow
        copies only: redaction runs on the recorder's thread."""
        s = _api_module().settings
        if s.capture_content:
            self.input_messages = list(messages) if isinstance(messages, list) else messages
            self.text_parts = []
            self.tool_calls = []
        if s.capture_headers and headers:
            self.request_headers = dict(headers)
        if s.capture_raw_request and body is not None:
            self.raw_request = dict(body) if isinstance(body, Mapping) else body


_api_ref: Any = None


def _api_module() -> Any:
    """``meterline.sdk.api`` (imported late: it imports the integrations' package at start-up); a ``from``
    import on every call costs ~0.3 µs on the caller's thread."""
    global _api_ref
    if _api_ref is None:
        from meterline.sdk import api as _api

        _api_ref = _api
    return _api_ref
