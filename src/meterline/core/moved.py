"""Module names of before the one-home-per-domain layout (0.1 → wave 3) keep working.

``import meterline.event`` or ``from meterline.sinks.http import HttpSink`` in a user's code, a proxy config or a
pickled reference resolves to the module's new home: the very same module object (not a copy), so a
``monkeypatch`` of ``meterline.recorder.X`` patches what the SDK runs. A finder on ``sys.meta_path`` answers
only for the names below and their submodules; nothing is imported until such a name is.

Nothing inside meterline uses these names (tests/test_layering.py checks that).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType

# old module (or package: its submodules follow) -> its home now
MOVED: dict[str, str] = {
    "meterline._api": "meterline.sdk.api",
    "meterline._errors": "meterline.core.errors",
    "meterline.alerts": "meterline.budgets.alerts",
    "meterline.config": "meterline.core.config",
    "meterline.constants": "meterline.core.constants",
    "meterline.content": "meterline.sdk.content",
    "meterline.context": "meterline.sdk.scopes",
    "meterline.deadletter": "meterline.sdk.delivery.deadletter",
    "meterline.delivery": "meterline.sdk.delivery.deliverer",
    "meterline.durable": "meterline.sdk.delivery.durable",
    "meterline.spool": "meterline.sdk.delivery.spool",
    "meterline.event": "meterline.core.event",
    "meterline.fields": "meterline.core.metadata",
    "meterline.usage": "meterline.core.usage",
    "meterline.lifecycle": "meterline.sdk.lifecycle",
    "meterline.otel": "meterline.sdk.otel",
    "meterline.patching": "meterline.sdk.patching",
    "meterline.recorder": "meterline.sdk.recorder",
    "meterline.redaction": "meterline.sdk.redaction",
    "meterline.sinks": "meterline.sdk.sinks",
    "meterline.compat": "meterline.interop.ingest",
    "meterline.exports": "meterline.interop.export",
    "meterline.store.export_ledger": "meterline.interop.export.ledger",
    "meterline.store.budgets": "meterline.budgets.store",
    "meterline.store.billing": "meterline.billing.store",
    "meterline.store.billing_invoices": "meterline.billing.invoice_store",
    "meterline.store.dashboard": "meterline.store.listings",
    "meterline.billing.dashboard": "meterline.billing.overview",
}


def new_name(old: str) -> str | None:
    """The module ``old`` is now, or None when it did not move."""
    for prefix in sorted(MOVED, key=len, reverse=True):
        if old == prefix or old.startswith(prefix + "."):
            return MOVED[prefix] + old[len(prefix) :]
    return None


class _Alias(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target
        self.spec: importlib.machinery.ModuleSpec | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(self.target)
        self.spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        """Already executed under its new name; the import system stamped the old name's spec on it, and the
        module keeps its own (``importlib.reload`` and ``__spec__.name`` still say the new name)."""
        module.__spec__ = self.spec


class MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        new = new_name(fullname) if fullname.startswith("meterline.") else None
        if new is None:
            return None
        module = importlib.import_module(new)
        return importlib.machinery.ModuleSpec(fullname, _Alias(new), is_package=hasattr(module, "__path__"))


def install() -> None:
    """Idempotent: one finder however often ``meterline`` is imported or reloaded."""
    # first in line: a submodule of a moved package (``meterline.sinks.http``) would otherwise be found by the
    # path finder in the package's new folder and loaded a second time, as a copy under the old name
    if not any(isinstance(f, MovedFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, MovedFinder())
