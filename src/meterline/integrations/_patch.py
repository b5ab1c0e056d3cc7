"""Class-level method patching that ``uninstrument()`` undoes exactly.

Patching the class (not a client instance) covers clients created before and after instrumenting.
The original attribute is taken from the class's own ``__dict__`` so that restoring puts back exactly
what was there (or removes the attribute when it was inherited), and a second ``apply`` is a no-op.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Sequence
from typing import Any

_MISSING = object()


class Patches:
    """A set of (module, class, attribute) patches applied and removed together."""

    def __init__(self) -> None:
        self._saved: list[tuple[type, str, Any]] = []
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return bool(self._saved)

    def apply(self, targets: Sequence[tuple[str, str, str, Callable[[Any], Any]]]) -> bool:
        """Patch each ``(module, class_name, attribute, make_wrapper)``; ``make_wrapper(original)`` returns
        the replacement. Targets whose module or class is missing in this library version are skipped.
        Returns False when already applied."""
        with self._lock:
            if self._saved:
                return False
            for module_name, class_name, attr, make_wrapper in targets:
                try:
                    module = importlib.import_module(module_name)
                except ImportError:
                    continue
                cls = getattr(module, class_name, None)
                if not isinstance(cls, type) or not hasattr(cls, attr):
                    continue
                own = cls.__dict__.get(attr, _MISSING)
                original = getattr(cls, attr)
                wrapper = make_wrapper(original)
                wrapper.__meterline_original__ = original
                setattr(cls, attr, wrapper)
                self._saved.append((cls, attr, own))
            return True

    def remove(self) -> bool:
        """Restore every patched attribute exactly. False when nothing was applied."""
        with self._lock:
            if not self._saved:
                return False
            for cls, attr, own in reversed(self._saved):
                if own is _MISSING:
                    delattr(cls, attr)
                else:
                    setattr(cls, attr, own)
            self._saved.clear()
            return True
