"""The integration contract: lazy instrumentation (a post-import hook, never importing a library the app has
not imported), the version-range warning, a missing hook point disabling its integration, a failed install
rolled back, and the one patch ledger (exact inverse, idempotent). Runs in the CI version matrix too."""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import openai
import pytest

import meterline
from meterline import integrations
from meterline.integrations import INTEGRATIONS, installed_version
from meterline.integrations import openai as ml_openai
from meterline.sdk.patching import PatchLedger
from meterline.store import SQLiteStore

MSGS = [{"role": "user", "content": "What is the weather in Paris today?"}]  # 9 tokens at the fake


def _chat(fake: Any) -> Any:
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0)
    return client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)  # type: ignore[arg-type]


def _request_patched() -> bool:
    return hasattr(openai._base_client.SyncAPIClient.request, "__wrapped__")


@pytest.fixture
def contract(meter_db: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    meterline.uninstrument("openai")
    monkeypatch.setattr(integrations, "_warned", set())
    yield meter_db
    meterline.uninstrument("openai")


LAZY = textwrap.dedent(
    """
    import sys
    import meterline
    meterline.init()
    armed = meterline.instrument()
    libraries = ("litellm", "openai", "anthropic", "botocore", "crewai", "langchain_core")
    sdks = {"anthropic", "bedrock", "litellm", "openai"}
    print("armed", sorted(sdks & set(armed)), "imported", [m for m in libraries if m in sys.modules])
    import openai  # the app's own import: instrumented right after it
    from meterline.integrations import openai as ml_openai
    print("openai instrumented", ml_openai.is_instrumented(), "litellm imported", "litellm" in sys.modules)
    c = openai.OpenAI(base_url=sys.argv[1], api_key="k", max_retries=0)
    c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                              usage_metadata={"subscriber_id": "lazy"})
    meterline.shutdown()
    """
)


def test_instrument_imports_no_library_and_instruments_openai_when_the_app_imports_it(
    tmp_path: Path, fake_provider: Any
) -> None:
    db = tmp_path / "lazy.db"
    env = {**os.environ, "METERLINE_DESTINATION": f"sqlite:///{db}", "METERLINE_HOME": str(tmp_path)}
    env.pop("PYTEST_CURRENT_TEST", None)
    env.pop("METERLINE_RAISE_INTERNAL", None)
    out = subprocess.run(
        [sys.executable, "-c", LAZY, fake_provider.openai_base_url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "armed ['anthropic', 'bedrock', 'litellm', 'openai'] imported []",
        "openai instrumented True litellm imported False",
    ]
    store = SQLiteStore(db)
    try:
        events = list(store.iter_events())
    finally:
        store.close()
    assert [(e.integration, e.subscriber_id, e.input_tokens) for e in events] == [("openai", "lazy", 1)]


def test_a_version_outside_the_tested_range_logs_one_warning_and_stays_on(
    contract: Any, fake_provider: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    spec = dataclasses.replace(INTEGRATIONS["openai"], tested=("0.1.0", "0.2.0"))
    monkeypatch.setitem(INTEGRATIONS, "openai", spec)
    version = installed_version(spec)
    with caplog.at_level(logging.WARNING, logger="meterline"):
        assert meterline.instrument("openai") == ["openai"]
        meterline.uninstrument("openai")
        assert meterline.instrument("openai") == ["openai"]  # once per process, not once per instrument()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"meterline: openai {version} is outside the versions the openai integration is tested on "
        "(openai 0.1.0 to 0.2.0) and their major (below 1.0.0); it stays on: check its events, and please report "
        "any difference"
    ]
    _chat(fake_provider)
    assert [e.integration for e in contract.events()] == ["openai"]


def _pins(end: str) -> dict[str, str]:
    text = (Path(__file__).resolve().parent.parent / ".ci" / f"versions-{end}.txt").read_text()
    return dict(line.split("==") for line in text.splitlines() if "==" in line and not line.startswith("#"))


def test_the_declared_tested_ranges_are_the_ci_matrix_pins() -> None:
    """What meterline says it is tested on is what the CI matrix installs (not whatever pip installs today)."""
    floor, latest = _pins("floor"), _pins("latest")
    for name in ("openai", "litellm", "anthropic", "bedrock"):
        spec = INTEGRATIONS[name]
        assert spec.tested == (floor[spec.distribution], latest[spec.distribution]), name


def test_a_newer_minor_is_compatible_and_quiet_and_a_new_major_is_not() -> None:
    spec = dataclasses.replace(INTEGRATIONS["openai"], tested=("2.20.0", "3.57.0"))
    assert spec.compatible_below == "4.0.0"
    assert [integrations.in_compatible_range(spec, v) for v in ("2.19.9", "2.20.0", "3.57.0", "3.63.0", "4.0.0")] == [
        False,
        True,
        True,
        True,
        False,
    ]
    assert not integrations.in_tested_range(spec, "3.63.0")


def test_the_installed_release_has_every_hook_point_when_it_is_compatible() -> None:
    """Any installed release of a compatible major is one the integration must hook (a release that removed a
    hook point is a real break; the version number alone is not)."""
    for name in ("openai", "litellm", "anthropic", "bedrock"):
        spec = INTEGRATIONS[name]
        version = installed_version(spec)
        if version is not None and integrations.in_compatible_range(spec, version):
            importlib.import_module(spec.library)
            assert integrations.missing_hook_points(spec) == [], f"{name} {version}"


def test_a_missing_hook_point_disables_the_integration_with_one_error_line(
    contract: Any, fake_provider: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    spec = INTEGRATIONS["openai"]
    broken = dataclasses.replace(spec, hook_points=(*spec.hook_points, "openai._base_client:SyncAPIClient.send_v9"))
    monkeypatch.setitem(INTEGRATIONS, "openai", broken)
    original = openai._base_client.SyncAPIClient.__dict__["request"]
    with caplog.at_level(logging.WARNING, logger="meterline"):
        assert meterline.instrument("openai") == []
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].startswith("meterline: openai integration disabled: openai ")
    assert "lacks openai._base_client:SyncAPIClient.send_v9" in errors[0]
    assert openai._base_client.SyncAPIClient.__dict__["request"] is original  # the library is untouched
    assert "openai" in integrations.disabled() and not ml_openai.is_instrumented()
    assert _chat(fake_provider).usage.prompt_tokens == 9  # the app's call works, unmetered
    assert contract.events() == []


def test_a_failing_install_is_rolled_back_and_never_reaches_the_app(
    contract: Any, fake_provider: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from meterline.integrations import _stainless

    def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("resource layout changed")

    monkeypatch.setattr(_stainless.Patches, "patch_resources", broken)
    with caplog.at_level(logging.ERROR, logger="meterline"):
        assert meterline.instrument("openai") == []
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [
        "meterline: openai integration disabled: instrumenting failed: RuntimeError('resource layout changed')"
    ]
    assert not _request_patched() and not ml_openai.is_instrumented()  # the request hook was undone too
    _chat(fake_provider)
    assert contract.events() == []


def test_explicit_name_of_a_library_not_installed_is_a_warning_not_a_crash(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(INTEGRATIONS, "openai", dataclasses.replace(INTEGRATIONS["openai"], library="no_such_sdk"))
    with caplog.at_level(logging.WARNING, logger="meterline"):
        assert meterline.instrument("openai") == []
    assert [r.getMessage() for r in caplog.records] == [
        "meterline: no_such_sdk is not installed: the openai integration is off"
    ]
    with pytest.raises(ValueError, match="unknown integration 'openai_v2'"):
        meterline.instrument("openai_v2")


class _Base:
    def inherited(self) -> str:
        return "base"


class _Target(_Base):
    def own(self) -> str:
        return "own"


def test_the_patch_ledger_restores_exactly_and_is_idempotent() -> None:
    ledger = PatchLedger()
    before = dict(vars(_Target))
    with ledger.installing("t") as fresh:
        assert fresh
        ledger.patch("t", _Target, "own", lambda f: lambda self: "patched " + f(self))
        ledger.patch("t", _Target, "inherited", lambda f: lambda self: "patched " + f(self))
    with ledger.installing("t") as fresh:
        assert not fresh  # already installed: nothing patched twice
    assert (_Target().own(), _Target().inherited()) == ("patched own", "patched base")
    assert ledger.restore("t") is True
    assert dict(vars(_Target)) == before  # the inherited attribute is deleted again, not copied down
    assert (_Target().own(), _Target().inherited()) == ("own", "base")
    assert ledger.restore("t") is False


def test_a_failing_install_block_leaves_nothing_patched() -> None:
    ledger = PatchLedger()
    before = dict(vars(_Target))
    with pytest.raises(RuntimeError), ledger.installing("t"):
        ledger.patch("t", _Target, "own", lambda f: lambda self: "patched")
        raise RuntimeError("second hook point missing")
    assert dict(vars(_Target)) == before and not ledger.installed("t")
