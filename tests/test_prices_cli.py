"""``meterline prices check``: what a user sees when asking why a cost is what it is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meterline.cli import main


def _check(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["prices", "check", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_native_provider_price_with_its_source(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _check(capsys, "groq/openai/gpt-oss-120b", "--at", "2026-11-29T20:00:00Z")
    assert code == 0
    assert "provider     groq" in out
    assert "price list   genai-prices@" in out and "provider groq, model openai/gpt-oss-120b" in out
    assert "  input              0.15\n" in out and "  output             0.6\n" in out
    assert "fallback" not in out


def test_time_of_day_window_and_fallback_are_shown(capsys: pytest.CaptureFixture[str]) -> None:
    # before 2026-04-24 (from then on a shipped correction prices deepseek-chat as deepseek-v4-flash)
    code, out, _ = _check(capsys, "deepseek-chat", "--provider", "deepseek", "--at", "2026-03-29T08:00:00Z")
    assert code == 0
    assert "valid        from 2026-03-29T00:30:00+00:00 until 2026-03-29T16:30:00+00:00" in out
    assert "  input              0.27\n" in out
    code, out, _ = _check(capsys, "gpt-4o", "--provider", "azure", "--format", "json")
    data = json.loads(out)
    assert (data["price_list"]["fallback"], data["pricing_source"].endswith(";fallback:openai")) == ("openai", True)


def test_override_file_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    table = tmp_path / "prices.toml"
    table.write_text('[[model]]\nmodel = "acme-*"\ninput_mtok = "0.5"\noutput_mtok = "1"\nrequests_kcount = "2"\n')
    code, out, _ = _check(capsys, "acme-large", "--provider", "openai", "--prices", str(table))
    assert code == 0
    assert f"price list   override: entry 'acme-*' from {table}" in out
    assert "  requests           2 per 1,000" in out


def test_unknown_model_and_bad_input(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = _check(capsys, "no-such-model", "--provider", "openai")
    assert code == 1 and "no price (events are recorded 'unpriced', null costs)" in out
    code, _, err = _check(capsys, "gpt-4o", "--at", "yesterday")
    assert code == 2 and "--at: not an ISO 8601 time: 'yesterday'" in err
    bad = tmp_path / "bad.json"
    bad.write_text('{"model": [{"model": "x", "input_mtok": "-1"}]}')
    code, _, err = _check(capsys, "x", "--prices", str(bad))
    assert code == 2 and "input_mtok: must be a non-negative number, got '-1'" in err
