"""Public entry point of the fake provider: ``FakeProvider`` and ``python -m meterline.testing.fake_provider``.

The server lives in :mod:`meterline.testing._server` (see its docstring for usage defaults and headers);
keeping it there lets ``python -m`` run this module without it being imported twice.
"""

from __future__ import annotations

import sys

from meterline.testing._server import FakeProvider, main

__all__ = ["FakeProvider", "main"]

if __name__ == "__main__":
    sys.exit(main())
