"""Shared by the agent-framework tests: they run in their own virtualenvs (.ci/run builds them), skip here
with a reason when the framework is absent, and fail under CI=true."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


def require(module: str, venv: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        reason = f"{module} is not installed ({exc}); it runs in its own virtualenv: {venv}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason + " (CI=true: the agent-framework tests must run)")
        pytest.skip(reason)
