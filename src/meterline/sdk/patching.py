"""The one patch ledger: every attribute meterline replaces in a third-party library, per integration (the
SDK integrations and the gateway's proxy shutdown wrapper alike).

``patch`` records ``(owner, name, what owner.__dict__ held before or MISSING, replacement)``; ``restore`` undoes
one integration's entries in reverse order, putting back exactly what was there (or deleting an attribute that
was only inherited). Install and uninstall are exact inverses and both idempotent: an integration with entries
is installed; ``restore`` of one without entries is a no-op returning False. ``installing`` rolls back a
half-done install when one of its patches fails, so a library is never left half-patched.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

logger = logging.getLogger("meterline")

MISSING: Any = object()

Entry = tuple[Any, str, Any, Any]  # owner, attribute name, own value before (or MISSING), replacement


class PatchLedger:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._entries: dict[str, list[Entry]] = {}

    def installed(self, integration: str) -> bool:
        return bool(self._entries.get(integration))

    def entries(self, integration: str) -> list[Entry]:
        with self.lock:
            return list(self._entries.get(integration, ()))

    def patch(self, integration: str, owner: Any, name: str, make: Callable[[Any], Any]) -> Any:
        """Replace ``owner.name`` with ``make(current value)`` (current: looked up, so inherited too; None when
        absent) and record how to undo it. Returns the replacement."""
        with self.lock:
            own = vars(owner).get(name, MISSING)
            replacement = make(getattr(owner, name, None))
            setattr(owner, name, replacement)
            self._entries.setdefault(integration, []).append((owner, name, own, replacement))
            return replacement

    def restore(self, integration: str) -> bool:
        """Undo every patch of ``integration``, newest first; False when it had none."""
        with self.lock:
            entries = self._entries.pop(integration, None)
            if not entries:
                return False
            for owner, name, own, replacement in reversed(entries):
                if vars(owner).get(name, MISSING) is not replacement:
                    # someone patched over us: putting ours back would drop theirs; leave theirs in place
                    logger.warning("meterline: %s: %r.%s was re-patched by someone else; left as is", integration,
                                   owner, name)
                    continue
                if own is MISSING:
                    delattr(owner, name)
                else:
                    setattr(owner, name, own)
            return True

    @contextlib.contextmanager
    def installing(self, integration: str) -> Iterator[bool]:
        """``with LEDGER.installing(name) as fresh: if fresh: ...patch...``: holds the lock, yields False when
        already installed (idempotent), and rolls back a partial install if the block raises."""
        with self.lock:
            if self.installed(integration):
                yield False
                return
            try:
                yield True
            except BaseException:
                self.restore(integration)
                raise


LEDGER = PatchLedger()
