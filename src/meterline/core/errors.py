"""Internal error policy: a meterline bug never reaches the caller, but it is logged and counted.

With ``METERLINE_RAISE_INTERNAL=1`` errors raised on the caller's thread are re-raised, so a broken
integration fails its test instead of hiding. Only meterline's own test suite sets it (tests/conftest.py): a
user's test suite runs meterline as production does, and never sees an internal error raised into its code
(running under pytest used to be enough to switch it on).
"""

from __future__ import annotations

import json
import logging
import os
import threading

logger = logging.getLogger("meterline")

_lock = threading.Lock()
_count = 0
_last: BaseException | None = None


def internal_errors() -> int:
    return _count


def last_internal_error() -> BaseException | None:
    return _last


def reset_internal_errors() -> None:
    global _count, _last
    with _lock:
        _count, _last = 0, None


def raise_internal() -> bool:
    """The explicit switch ``METERLINE_RAISE_INTERNAL`` (1/true/yes), off by default and under any pytest."""
    return os.environ.get("METERLINE_RAISE_INTERNAL", "").strip().lower() in ("1", "true", "yes")


def report(where: str, exc: BaseException, *, reraise: bool = True) -> None:
    """Log and count an internal error. Re-raises with the switch on when ``reraise`` (caller's thread)."""
    global _count, _last
    with _lock:
        _count += 1
        _last = exc
        first = _count <= 20
    if first:  # a flood of the same bug must not flood the user's logs
        logger.error("meterline internal error in %s", where, exc_info=exc)
    if reraise and raise_internal():
        raise exc


def error_detail(data: bytes) -> str:
    """The message of a collector's error answer (FastAPI's ``{"detail": …}``), else the start of the body."""
    try:
        doc = json.loads(data)
        if isinstance(doc, dict) and "detail" in doc:
            detail = doc["detail"]
            return detail if isinstance(detail, str) else json.dumps(detail)
    except ValueError:
        pass
    return data[:200].decode(errors="replace")
