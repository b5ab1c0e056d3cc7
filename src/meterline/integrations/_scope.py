"""Helpers the agent-framework integrations share: entering a metadata scope without a ``with`` block
(from a framework callback) and patching after the framework is imported."""

from __future__ import annotations

import contextvars
import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType, ModuleType
from typing import Any

from meterline.core.metadata import merge, normalise
from meterline.sdk.scopes import scope_var as _scope

Token = contextvars.Token[Mapping[str, Any]]
# trace fields an agent framework fills only when the app did not set them itself
TRACE_FIELDS = ("trace_id", "trace_name", "trace_type", "parent_transaction_id")


def push(fields: Mapping[str, Any]) -> Token:
    """Enter a scope with ``fields`` (trace fields only where the enclosing scopes set none)."""
    current = _scope.get()
    clean = {k: v for k, v in fields.items() if v is not None and not (k in TRACE_FIELDS and current.get(k))}
    merged = merge(current, normalise(clean, strict=False)) if clean else current
    return _scope.set(MappingProxyType(merged) if isinstance(merged, dict) else merged)


def pop(token: Token, previous: Mapping[str, Any] | None = None) -> None:
    try:
        _scope.reset(token)
    except ValueError:  # ended in another context (a framework callback on another task): restore by value
        if previous is not None:
            _scope.set(previous)


class _Finder(importlib.abc.MetaPathFinder):
    """Runs ``then(module)`` right after ``name`` is imported (the library is never imported by meterline)."""

    def __init__(self, name: str, then: Callable[[ModuleType], None]) -> None:
        self.name = name
        self.then = then

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> Any:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        original = loader.exec_module
        then = self.then

        def exec_module(module: ModuleType) -> None:
            original(module)
            then(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


_lock = threading.Lock()


def when_imported(name: str, then: Callable[[ModuleType], None]) -> Callable[[], None]:
    """``then(module)`` now if ``name`` is imported, else right after its import. Returns a cancel function."""
    with _lock:
        module = sys.modules.get(name)
        if module is not None:
            then(module)
            return lambda: None
        finder = _Finder(name, then)
        sys.meta_path.insert(0, finder)

    def cancel() -> None:
        with _lock:
            if finder in sys.meta_path:
                sys.meta_path.remove(finder)

    return cancel
