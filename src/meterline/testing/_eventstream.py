"""AWS event-stream binary framing (what Bedrock's *-stream endpoints send; botocore decodes it).

Message: prelude (total length u32, headers length u32, CRC32 of those 8 bytes), headers, payload,
CRC32 of everything before it. Header: name length u8, name, value type u8 (7 = string), length u16, value.
"""

from __future__ import annotations

import struct
import zlib


def _headers(headers: dict[str, str]) -> bytes:
    out = b""
    for name, value in headers.items():
        n, v = name.encode(), value.encode()
        out += struct.pack(">B", len(n)) + n + b"\x07" + struct.pack(">H", len(v)) + v
    return out


def encode(headers: dict[str, str], payload: bytes) -> bytes:
    head = _headers(headers)
    total = 12 + len(head) + len(payload) + 4
    prelude = struct.pack(">II", total, len(head))
    prelude += struct.pack(">I", zlib.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + head + payload
    return message + struct.pack(">I", zlib.crc32(message) & 0xFFFFFFFF)


def event(event_type: str, payload: bytes) -> bytes:
    return encode({":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}, payload)


def exception(exception_type: str, payload: bytes) -> bytes:
    return encode(
        {":exception-type": exception_type, ":content-type": "application/json", ":message-type": "exception"},
        payload,
    )
