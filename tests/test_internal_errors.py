"""Internal errors re-raise only behind meterline's own switch: a user's test suite runs meterline as
production does (under pytest, ``PYTEST_CURRENT_TEST`` alone used to turn re-raising on)."""

from __future__ import annotations

import os

import pytest

from meterline.core import errors as _errors


@pytest.mark.allow_internal_errors
def test_a_users_pytest_run_never_sees_an_internal_error_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "PYTEST_CURRENT_TEST" in os.environ  # what a user's suite has too
    monkeypatch.delenv("METERLINE_RAISE_INTERNAL")
    _errors.report("integration", RuntimeError("a meterline bug"))  # returns: the caller's call goes on
    assert _errors.internal_errors() == 1
    assert str(_errors.last_internal_error()) == "a meterline bug"


@pytest.mark.allow_internal_errors
@pytest.mark.parametrize(("value", "raises"), [("1", True), ("true", True), ("yes", True), ("0", False), ("", False)])
def test_the_switch_alone_decides(monkeypatch: pytest.MonkeyPatch, value: str, raises: bool) -> None:
    monkeypatch.setenv("METERLINE_RAISE_INTERNAL", value)
    if raises:
        with pytest.raises(RuntimeError, match="bug"):
            _errors.report("integration", RuntimeError("bug"))
    else:
        _errors.report("integration", RuntimeError("bug"))
    _errors.report("worker thread", RuntimeError("bug"), reraise=False)  # never raises off the caller's thread
    assert _errors.internal_errors() == 2
