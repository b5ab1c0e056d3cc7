"""How ``meterline serve`` reads requests off a connection: uvicorn's h11 protocol with a guard in front.

Uvicorn alone keeps a connection open for ever while it waits for a request's first byte or for the end of
its headers (its keep-alive timeout only runs between requests), and answers a request head larger than h11's
buffer with a 400 followed by a close with the rest of the request unread in the socket: the kernel then
resets the connection and the client usually reads ``Connection reset by peer`` instead of the answer.
:class:`GuardedH11Protocol` adds, per connection:

- a header timeout: a complete request head must arrive within ``header_timeout_seconds`` of the connection
  opening or of the previous response, else the connection is closed (with ``408 Request Timeout`` when part
  of a head had arrived, silently when nothing had). Idle keep-alive connections are closed sooner, after
  ``keep_alive_seconds`` (uvicorn's ``timeout_keep_alive``).
- head limits, checked on the bytes as they arrive, before h11 parses them: a request line (method, URL,
  version) longer than ``max_request_line_bytes`` is answered ``414 URI Too Long``; a head (request line and
  headers) larger than ``max_header_bytes`` ``431 Request Header Fields Too Large``. h11's own buffer limit is
  set to ``max_header_bytes`` behind it (its refusal is uvicorn's 400).
- a lingering close after every such refusal (and uvicorn's 400 for a malformed request): the answer is
  written, the sending side shut (FIN), and whatever the client still sends is read and dropped until it
  closes, for at most ``LINGER_SECONDS`` and ``LINGER_BYTES``; then the socket is closed. The client reads the
  status line, not a reset (a client that keeps sending past ``LINGER_BYTES`` may still see one).

uvicorn builds protocol instances itself (in each worker process), so the limits are module state set by
:func:`uvicorn_options` (the parent) or :func:`configure` (a worker, from the merged settings).
"""

from __future__ import annotations

import asyncio
import dataclasses
import http
import json
import logging
import re
from typing import TYPE_CHECKING, Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

if TYPE_CHECKING:
    from meterline.server.settings import Settings

logger = logging.getLogger("meterline.server")

PROTOCOL = "meterline.server.connections:GuardedH11Protocol"  # uvicorn's ``http=`` (an import string)
LINGER_SECONDS = 2.0
LINGER_BYTES = 1 << 20
_HEAD_END = re.compile(rb"\n\r?\n")  # h11 accepts bare LF line ends, so does the guard


@dataclasses.dataclass(frozen=True)
class Limits:
    header_timeout: float = 10.0
    max_request_line: int = 16_384
    max_head: int = 65_536


_limits = Limits()


def configure(settings: Settings) -> Limits:
    """Set the limits every new connection of this process gets (from the collector's settings)."""
    global _limits
    _limits = Limits(settings.header_timeout_seconds, settings.max_request_line_bytes, settings.max_header_bytes)
    return _limits


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """``uvicorn.run`` keyword arguments: the guarded protocol and the timeouts and limits of ``settings``."""
    configure(settings)
    return {
        "http": PROTOCOL,
        "timeout_keep_alive": settings.keep_alive_seconds,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
    }


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header timeout, head size limits and lingering closes (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = _limits
        self._head = bytearray()  # the bytes of the head being received, up to max_head + 1
        self._head_timer: asyncio.TimerHandle | None = None
        self._linger_timer: asyncio.TimerHandle | None = None
        self._refused = False  # an error answer went out: what arrives now is read and dropped
        self._dropped = 0

    # -- connection life ---------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request's head has header_timeout from now

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _in_request(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._refused or self.transport.is_closing() or self._in_request():
            return
        if self.conn.their_state is not h11.IDLE:
            return  # a head was parsed (a pipelined request waits for its turn)
        if self._head:
            logger.warning("meterline collector: request head incomplete after %ss: 408", self.limits.header_timeout)
            self._refuse(408, f"the request head did not arrive within {self.limits.header_timeout:g} s")
        else:
            self.transport.close()

    # -- reading -------------------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self._refused:
            self._dropped += len(data)
            if self._dropped > LINGER_BYTES:
                self.transport.close()
            return
        if self.conn.their_state is h11.IDLE and not self._in_request():
            refusal = self._check_head(data)
            if refusal is not None:
                self._refuse(*refusal)
                return
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the head is parsed: the next one starts afresh
            self._head.clear()
            self._disarm()

    def _check_head(self, data: bytes) -> tuple[int, str] | None:
        limits = self.limits
        self._head += data[: limits.max_head + 1 - len(self._head)]
        head = self._head
        line_end = head.find(b"\n")
        line = line_end if line_end >= 0 else len(head)
        if line > limits.max_request_line:
            logger.warning("meterline collector: request line over %d bytes: 414", limits.max_request_line)
            return 414, (
                f"the request line (method, URL and version) is longer than max_request_line_bytes "
                f"({limits.max_request_line} bytes); send long filters in fewer or shorter parameters"
            )
        end = _HEAD_END.search(head)
        if (end.end() if end else len(head)) > limits.max_head:
            logger.warning("meterline collector: request head over %d bytes: 431", limits.max_head)
            return 431, f"the request line and headers are larger than max_header_bytes ({limits.max_head} bytes)"
        return None

    # -- refusing ------------------------------------------------------------------------------------------
    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request h11 cannot parse, as a JSON 400 with a lingering close."""
        self._refuse(400, msg)

    def _refuse(self, status: int, message: str) -> None:
        self._refused = True
        self._disarm()
        body = json.dumps({"detail": message}).encode()
        head = (
            f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head.encode("ascii") + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()  # FIN once the answer is flushed; reading goes on
        self._linger_timer = self.loop.call_later(LINGER_SECONDS, self.transport.close)


__all__ = ["LINGER_BYTES", "LINGER_SECONDS", "PROTOCOL", "GuardedH11Protocol", "Limits", "configure", "uvicorn_options"]
