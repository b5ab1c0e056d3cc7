"""Zero-code set-up: ``import meterline.auto`` configures from the environment and instruments every
supported library that is installed (``METERLINE_DESTINATION``, ``METERLINE_API_KEY``, …)."""

from __future__ import annotations

import meterline

meterline.init()
meterline.instrument()
