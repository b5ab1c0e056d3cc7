"""Process-wide hooks that keep every live recorder's events across the ways a process ends or splits.

- ``atexit``: a normal interpreter exit shuts each recorder down (flush, spool replay) within its deadline.
- ``os.register_at_fork``: a forked child starts with an empty queue and a new thread (the parent keeps the
  events it had accepted, so nothing is sent twice).
- ``multiprocessing``: its children (fork and spawn, ``Pool`` workers) leave through ``os._exit``, so
  ``atexit`` never runs there. A ``multiprocessing.util.Finalize`` does, at the child's normal end; it is
  registered in each child once its finalizer registry has been reset (``register_after_fork``) or when
  the child first records.
"""

from __future__ import annotations

import atexit
import os
import sys
import weakref
from collections.abc import Callable
from typing import Any, Protocol


class Recorderish(Protocol):
    exit_timeout: float
    _pid: int

    def shutdown(self, timeout: float | None = ...) -> bool: ...

    def _after_fork_in_child(self) -> None: ...


_live: weakref.WeakSet[Any] = weakref.WeakSet()
_child_finalizer_pid: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


def track(recorder: Recorderish) -> Callable[[], None]:
    """Register the exit and fork hooks for ``recorder``; returns the atexit hook (for :func:`untrack`)."""
    ref = weakref.ref(recorder)

    def _at_exit() -> None:
        r = ref()
        if r is not None:
            r.shutdown(r.exit_timeout)

    atexit.register(_at_exit)
    _live.add(recorder)
    register_child_exit(recorder)
    if "multiprocessing" in sys.modules:  # runs in every multiprocessing child once its finalizers are reset
        from multiprocessing import util

        util.register_after_fork(recorder, _mp_after_fork)
    return _at_exit


def untrack(recorder: Recorderish, hook: Callable[[], None]) -> None:
    atexit.unregister(hook)
    _live.discard(recorder)


def register_child_exit(recorder: Recorderish) -> None:
    """In a multiprocessing child, flush ``recorder`` in the child's finalizers (once per process)."""
    mp = sys.modules.get("multiprocessing")
    if mp is None or _child_finalizer_pid.get(recorder) == os.getpid():
        return
    if mp.parent_process() is None:
        return
    from multiprocessing import util

    util.Finalize(None, _finalize_child, args=(weakref.ref(recorder),), exitpriority=100)
    _child_finalizer_pid[recorder] = os.getpid()


def _mp_after_fork(recorder: Recorderish) -> None:
    _child_finalizer_pid.pop(recorder, None)
    register_child_exit(recorder)


def _finalize_child(ref: weakref.ReferenceType[Recorderish]) -> None:
    r = ref()
    if r is not None and r._pid == os.getpid():
        r.shutdown(r.exit_timeout)


def _after_fork() -> None:
    for r in list(_live):
        r._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
