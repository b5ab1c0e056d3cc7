"""Fallback and partial prices are visible end to end: on the stored event and in `meterline report`."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

import meterline
from meterline.cli import main


def test_report_counts_fallback_and_partial_prices(meter_db, capsys: pytest.CaptureFixture[str]) -> None:
    meterline.record(provider="openai", model="gpt-4o-mini", input_tokens=1000, output_tokens=10)
    for _ in range(2):
        meterline.record(provider="azure", model="gpt-4o", input_tokens=1000, output_tokens=10)
    meterline.record(provider="perplexity", model="sonar-deep-research", input_tokens=100, output_tokens=100)
    meterline.record(
        provider="perplexity",
        model="sonar-deep-research",
        input_tokens=100,
        output_tokens=100,
        attributes={"meterline.web_searches": 3},
    )
    assert meterline.flush()
    db = meter_db.destination
    assert main(["export", "--database", db]) == 0

    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    sources = sorted(e["pricing_source"].split("@", 1)[1].split(";", 1)[-1] for e in events)
    assert sources.count("fallback:openai") == 2 and sources.count("partial:web_searches") == 1
    searched = next(e for e in events if e["attributes"].get("meterline.web_searches") == 3)
    assert Decimal(searched["total_cost"]) == (100 * 2 + 100 * 8) / Decimal(1_000_000) + 3 * Decimal(5) / 1000

    assert main(["report", "--database", db]) == 0
    text = capsys.readouterr().out
    assert "2 request(s) are priced with another provider's price (openai: 2)" in text
    assert "1 request(s) have a partial cost (web_searches: 1)" in text
    assert main(["report", "--database", db, "--filter", "provider=openai"]) == 0
    text = capsys.readouterr().out
    assert "another provider" not in text and "partial" not in text
