"""Manual record(), metadata precedence end to end, the usage queries, and the report/export commands."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

import meterline
from meterline.cli import main
from meterline.core.event import EventValidationError
from meterline.store import QueryError, UsageQuery

M = Decimal(1_000_000)
MINI_IN, MINI_OUT = Decimal("0.15"), Decimal("0.6")  # gpt-4o-mini per MTok


def test_record_precedence_call_over_inner_over_outer_over_env(meter_db, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METERLINE_ENVIRONMENT", "env-value")
    monkeypatch.setenv("METERLINE_REGION", "eu-central-1")
    outer = meterline.metadata(agent="outer", environment="outer-env", product_id="p-outer")
    with outer, meterline.metadata(agent="inner"):
        meterline.record(
            provider="openai",
            model="gpt-4o-mini",
            input_tokens=1000,
            output_tokens=100,
            usage_metadata={"agent": "call"},
        )
        meterline.record(provider="openai", model="gpt-4o-mini", input_tokens=1, product_id="p-call")
    meterline.record(provider="openai", model="gpt-4o-mini")
    a, b, c = sorted(meter_db.events(), key=lambda e: e.input_tokens, reverse=True)
    assert (a.agent, a.environment, a.product_id, a.region) == ("call", "outer-env", "p-outer", "eu-central-1")
    assert (b.agent, b.product_id) == ("inner", "p-call")
    assert (c.agent, c.environment) == (None, "env-value")
    assert a.total_cost == 1000 * MINI_IN / M + 100 * MINI_OUT / M
    assert a.integration == "manual" and a.sdk_version == meterline.__version__


def test_record_rejects_bad_input_and_keeps_what_was_accepted(meter_db) -> None:
    meterline.record(provider="openai", model="gpt-4o-mini", input_tokens=5)
    with pytest.raises(EventValidationError, match="input_cost: costs are decimal strings"):
        meterline.record(provider="openai", model="gpt-4o-mini", input_cost=0.5)
    with pytest.raises(EventValidationError, match="provider: required"):
        meterline.record(model="gpt-4o-mini")
    with pytest.raises(meterline.MetadataError, match="'retry_number'"):
        meterline.record(provider="openai", model="gpt-4o-mini", retry_number="soon")
    meterline.record(provider="openai", model="gpt-4o-mini", input_tokens=6, total_cost=Decimal("0.25"))
    events = meter_db.events()
    assert sorted(e.input_tokens for e in events) == [5, 6]
    assert [e.total_cost for e in events if e.input_tokens == 6] == [Decimal("0.25")]
    assert meterline.stats()["written"] == 2


def _seed(meter_db) -> None:
    base = datetime(2026, 3, 28, 22, 30, tzinfo=timezone.utc)  # crosses midnight in Paris and the DST switch
    for i in range(6):
        meterline.record(
            provider="openai",
            model="gpt-4o-mini",
            input_tokens=1000,
            output_tokens=10,
            subscriber_id="acme" if i % 2 else "globex",
            start_time=base + timedelta(hours=i),
            status="error" if i == 5 else "success",
        )
    meterline.record(provider="openai", model="private-model", input_tokens=50, subscriber_id="acme", start_time=base)


def test_usage_groups_and_exact_sums(meter_db) -> None:
    _seed(meter_db)
    store = meter_db.store()
    rows = {r["subscriber_id"]: r for r in store.usage(UsageQuery(group_by=["subscriber_id"]))}
    acme = rows["acme"]
    assert (acme["requests"], acme["errors"], acme["unpriced"], acme["input_tokens"]) == (4, 1, 1, 3050)
    assert acme["total_cost"] == 3 * (1000 * MINI_IN + 10 * MINI_OUT) / M
    days = store.usage(UsageQuery(bucket="day", tz="Europe/Paris"))
    assert [(r["bucket"].isoformat(), r["requests"]) for r in days] == [
        ("2026-03-28T00:00:00+01:00", 2),
        ("2026-03-29T00:00:00+01:00", 5),
    ]
    utc_days = store.usage(UsageQuery(bucket="day"))
    assert [r["requests"] for r in utc_days] == [3, 4]
    months = store.usage(UsageQuery(bucket="month", filters={"model": "gpt-4o-mini"}))
    assert [(r["bucket"].date().isoformat(), r["requests"]) for r in months] == [("2026-03-01", 6)]
    with pytest.raises(QueryError, match="group_by: unknown dimension 'customer'"):
        store.usage(UsageQuery(group_by=["customer"]))
    store.close()


def test_event_pages_have_no_gaps_or_duplicates(meter_db) -> None:
    for i in range(25):
        meterline.record(
            provider="openai", model="gpt-4o-mini", input_tokens=i, start_time=datetime(2026, 1, 1, tzinfo=timezone.utc)
        )  # same time: id breaks ties
    store = meter_db.store()
    seen, cursor = [], None
    while True:
        page, cursor = store.events(limit=7, cursor=cursor)
        seen += [e.id for e in page]
        if cursor is None:
            break
    assert len(seen) == 25 == len(set(seen))
    store.close()


def test_report_and_export_commands(meter_db, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    _seed(meter_db)
    meterline.flush()
    db = meter_db.destination
    assert main(["report", "--database", db, "-g", "subscriber_id", "--format", "json"]) == 0
    rows = {r["subscriber_id"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["globex"]["total_cost"] == str(3 * (1000 * MINI_IN + 10 * MINI_OUT) / M)
    assert rows["acme"]["requests"] == 4

    assert main(["report", "--database", db, "-g", "subscriber_id"]) == 0
    text = capsys.readouterr().out
    assert "TOTAL" in text and "1 request(s) are unpriced" in text
    assert main(["report", "--database", db, "-g", "model", "--format", "csv", "--filter", "subscriber_id=acme"]) == 0
    parsed = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {r["model"]: r["requests"] for r in parsed} == {"gpt-4o-mini": "3", "private-model": "1"}

    assert main(["export", "--database", db]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 7
    first = json.loads(lines[0])
    assert first["schema_version"] == 1 and first["provider"] == "openai"
    assert main(["export", "--database", db, "--format", "csv", "-o", str(tmp_path / "e.csv")]) == 0
    with open(tmp_path / "e.csv", encoding="utf-8") as f:
        assert len(list(csv.DictReader(f))) == 7

    assert main(["report", "--database", db, "-g", "nope"]) == 2
    assert "group_by: unknown dimension 'nope'" in capsys.readouterr().err
    assert main(["report", "--database", f"sqlite:///{tmp_path}/missing.db"]) == 2
    assert "no meterline database at" in capsys.readouterr().err
    assert main(["report", "--database", db, "--since", "soon"]) == 2
    assert "--since: expected an ISO time" in capsys.readouterr().err
