"""Run a callback right after the app imports a module (a post-import hook), without importing it ourselves.

A finder at the front of ``sys.meta_path`` answers only for watched module names: it asks the rest of the
import system for the real spec and wraps that spec's loader's ``exec_module`` (on the loader instance, which
the import system creates for this one import), so the callbacks run once the module has executed completely.
Nothing else about the import changes. The finder removes itself once nothing is watched.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import logging
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

logger = logging.getLogger("meterline")

_lock = threading.RLock()
_watched: dict[str, list[Callable[[], object]]] = {}
_resolving = threading.local()


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _watched:
            return None
        busy: set[str] = getattr(_resolving, "names", set())
        if fullname in busy:
            return None  # our own look-up below: let the other finders answer
        busy.add(fullname)
        _resolving.names = busy
        try:
            spec = importlib.util.find_spec(fullname)
        except Exception:  # noqa: BLE001 - let the real import report whatever is wrong
            return None
        finally:
            busy.discard(fullname)
        loader: Any = spec.loader if spec is not None else None
        if spec is None or loader is None or not hasattr(loader, "exec_module"):
            return None
        original = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            original(module)
            _fire(fullname)

        loader.exec_module = exec_module
        return spec


_FINDER = _Finder()


def _fire(name: str) -> None:
    with _lock:
        callbacks = _watched.pop(name, [])
        if not _watched and _FINDER in sys.meta_path:
            sys.meta_path.remove(_FINDER)
    for callback in callbacks:
        try:
            callback()
        except Exception:
            logger.exception("meterline: instrumenting %s after its import failed", name)


def when_imported(name: str, callback: Callable[[], object]) -> None:
    """Call ``callback()`` once ``name`` is imported (now, if it already is); a submodule once its parent is."""
    with _lock:
        if name not in sys.modules:
            _watched.setdefault(name, []).append(callback)
            if _FINDER not in sys.meta_path:
                sys.meta_path.insert(0, _FINDER)
            return
    callback()


def unwatch(name: str) -> None:
    with _lock:
        _watched.pop(name, None)
        if not _watched and _FINDER in sys.meta_path:
            sys.meta_path.remove(_FINDER)


def watched() -> list[str]:
    with _lock:
        return sorted(_watched)
