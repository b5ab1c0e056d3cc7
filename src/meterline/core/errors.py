"""Internal error policy: a meterline bug never reaches the caller, but it is logged and counted.

Under pytest (``PYTEST_CURRENT_TEST`` is set) errors raised on the caller's thread are re-raised, so a
broken integration fails its test instead of hiding; ``METERLINE_RAISE_INTERNAL=0`` turns that off
(tests that check the never-break-the-caller promise do so).
"""

from __future__ import annotations

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
    flag = os.environ.get("METERLINE_RAISE_INTERNAL")
    if flag is not None:
        return flag.strip().lower() in ("1", "true", "yes")
    return "PYTEST_CURRENT_TEST" in os.environ


def report(where: str, exc: BaseException, *, reraise: bool = True) -> None:
    """Log and count an internal error. Re-raises under pytest when ``reraise`` (caller's thread)."""
    global _count, _last
    with _lock:
        _count += 1
        _last = exc
        first = _count <= 20
    if first:  # a flood of the same bug must not flood the user's logs
        logger.error("meterline internal error in %s", where, exc_info=exc)
    if reraise and raise_internal():
        raise exc
