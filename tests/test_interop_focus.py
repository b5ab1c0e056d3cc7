"""FOCUS 1.2 export against the FOCUS 1.2 column rules (tests/focus_validator.py), on a realistic mixed set of
events: priced and unpriced, cached tokens read and written, reasoning, an embedding, a gateway call through a
deployment, tags and attributes, two billing months. Issue "Hardening" (interop part): every row had
ResourceName and ResourceType while ResourceId was null, which FOCUS 1.2 forbids."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from focus_validator import validate
from meterline.core.event import UsageEvent
from meterline.interop.export.focus import write_csv
from meterline.pricing import get_pricer

T = datetime(2026, 10, 31, 23, 59, 30, tzinfo=timezone.utc)  # the last minute of a month


def _event(provider: str, model: str, start: datetime = T, **fields: object) -> UsageEvent:
    e = UsageEvent(start_time=start, provider=provider, model=model, **fields)  # type: ignore[arg-type]
    e.finalize_totals()
    get_pricer().price(e)
    return e


def mixed_events() -> list[UsageEvent]:
    return [
        _event(
            "openai", "gpt-4o-mini", input_tokens=1200, cache_read_tokens=800, output_tokens=300, subscriber_id="c1"
        ),
        _event(
            "anthropic",
            "claude-sonnet-4-20250514",
            input_tokens=50,
            cache_read_tokens=9000,
            cache_write_tokens=1200,
            output_tokens=700,
            organization_id="acme",
            region="eu-west-1",
            tags=["beta", "batch"],
            attributes={"feature": "summaries", "tier": 2},
        ),
        _event("openai", "o3-mini", input_tokens=500, output_tokens=2000, reasoning_tokens=1500, team_id="t-9"),
        _event("openai", "text-embedding-3-small", operation="embedding", input_tokens=4096),
        _event(  # through the LiteLLM proxy: a deployment is the resource
            "azure",
            "gpt-4o",
            input_tokens=333,
            output_tokens=77,
            integration="litellm_proxy",
            deployment_id="azure-eastus-gpt4o-1",
            model_group="gpt-4o",
            api_key_alias="team-a-key",
            team_id="team-a",
        ),
        _event(
            "bedrock",
            "us.anthropic.claude-3-5-haiku-20241022-v1:0",
            start=datetime(2026, 11, 1, 0, 0, 5, tzinfo=timezone.utc),
            input_tokens=1000,
            output_tokens=200,
            region="us-east-1",
            credential_alias="prod-aws",
        ),
        _event("acme", "in-house-1", input_tokens=10, output_tokens=5, subscriber_id="c2"),  # unpriced
    ]


def export(events: list[UsageEvent]) -> tuple[str, list[dict[str, str]]]:
    out = io.StringIO()
    write_csv(events, out)
    text = out.getvalue()
    return text, list(csv.DictReader(io.StringIO(text)))


def test_a_mixed_export_passes_the_focus_12_rules() -> None:
    events = mixed_events()
    assert events[-1].pricing_source == "unpriced" and all(e.total_cost is not None for e in events[:-1])
    text, rows = export(events)
    assert validate(text) == []
    assert len(rows) == 3 + 4 + 2 + 1 + 2 + 2 + 2  # one row per token class with tokens
    by_event: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_event.setdefault(r["x_EventId"], []).append(r)
    for e in events[:-1]:  # the rows of a priced event add up to its cost
        assert sum(Decimal(r["BilledCost"]) for r in by_event[e.id]) == e.total_cost


def test_resource_name_and_type_are_null_without_a_resource_id() -> None:
    _, rows = export(mixed_events())
    gateway = [r for r in rows if r["x_DeploymentId"]]
    assert {(r["ResourceId"], r["ResourceName"], r["ResourceType"]) for r in gateway} == {
        ("azure-eastus-gpt4o-1", "gpt-4o", "Model Deployment")
    }
    others = [r for r in rows if not r["x_DeploymentId"]]
    assert len(others) == len(rows) - 2
    for r in others:  # was ResourceName = the model, ResourceType "Model", ResourceId null (or a key alias)
        assert (r["ResourceId"], r["ResourceName"], r["ResourceType"]) == ("", "", "")
    aliases = {(r["x_ApiKeyAlias"], r["x_CredentialAlias"]) for r in rows} - {("", "")}
    assert aliases == {("team-a-key", ""), ("", "prod-aws")}  # still there, in their own columns


def test_unpriced_rows_say_so_and_keep_the_cost_rules() -> None:
    _, rows = export(mixed_events())
    unpriced = [r for r in rows if r["x_PricingSource"] == "unpriced"]
    assert len(unpriced) == 2
    for r in unpriced:
        assert r["BilledCost"] == r["ListCost"] == r["ListUnitPrice"] == r["ContractedUnitPrice"] == "0"
        assert r["ChargeDescription"].endswith("(unpriced: cost unknown, shown as 0)")
    assert not any("unpriced" in r["ChargeDescription"] for r in rows if r["x_PricingSource"] != "unpriced")


def test_tags_periods_and_units() -> None:
    _, rows = export(mixed_events())
    tagged = [r for r in rows if r["Tags"]]
    expected = {"batch": True, "beta": True, "feature": "summaries", "tier": "2"}  # valueless tags are true
    assert {r["Tags"] for r in tagged} == {json.dumps(expected)}
    assert {r["PricingUnit"] for r in rows} == {"1000000 Tokens"} and {r["ConsumedUnit"] for r in rows} == {"Tokens"}
    november = [r for r in rows if r["x_Provider"] == "bedrock"]
    assert {(r["BillingPeriodStart"], r["BillingPeriodEnd"]) for r in november} == {
        ("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z")
    }
    assert {(r["ChargePeriodStart"], r["ChargePeriodEnd"]) for r in november} == {
        ("2026-11-01T00:00:00Z", "2026-11-01T01:00:00Z")
    }


def _mutate(text: str, column: str, value: str, row: int = 0) -> str:
    rows = list(csv.DictReader(io.StringIO(text)))
    rows[row][column] = value
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("ResourceName", "gpt-4o-mini", "ResourceName: MUST be null when ResourceId is null"),  # the reported bug
        ("ResourceType", "Model", "ResourceType: MUST be null when ResourceId is null"),
        ("ChargeCategory", "Use", "ChargeCategory: 'Use' is not one of"),
        ("ChargeClass", "Regular", "ChargeClass: 'Regular' is not one of"),
        ("ChargeFrequency", "", "ChargeFrequency: MUST NOT be null"),
        ("PricingCategory", "List", "PricingCategory: 'List' is not one of"),
        ("ServiceSubcategory", "Object Storage", "is not a subcategory of 'AI and Machine Learning'"),
        ("BilledCost", "1.5E+3", "BilledCost: '1.5E+3' is not in NumericFormat"),
        ("ListUnitPrice", "", "ListUnitPrice: MUST NOT be null when ChargeCategory is Usage"),
        ("ListUnitPrice", "0.2", "ListCost: "),  # unit price x quantity no longer the cost
        ("ContractedCost", "99", "ContractedCost: 99 is not ContractedUnitPrice x PricingQuantity"),
        ("EffectiveCost", "0", "EffectiveCost: differs from BilledCost"),
        ("ChargePeriodStart", "2026-10-31 23:00:00", "is not a UTC 'YYYY-MM-DDTHH:mm:ssZ' date/time"),
        ("ChargePeriodEnd", "2026-10-31T22:00:00Z", "ChargePeriodStart: MUST be before ChargePeriodEnd"),
        ("BillingCurrency", "usd", "BillingCurrency: 'usd' is not an ISO 4217"),
        ("PricingUnit", "1M Tokens", "PricingUnit: '1M Tokens' is not in UnitFormat"),
        ("PricingUnit", "", "PricingUnit: MUST NOT be null when PricingQuantity is not null"),
        ("ConsumedQuantity", "", "ConsumedQuantity: MUST NOT be null on a Usage row"),
        ("Tags", '{"beta": ""}', "a valueless tag MUST be true"),
        ("Tags", "[1, 2]", "Tags: not a JSON object"),
        ("RegionName", "Ireland", "RegionName: MUST be null when RegionId is null"),
        ("SubAccountName", "", "SubAccountName: MUST NOT be null when SubAccountId is not null"),
        ("x_SubscriberId", "N/A", "x_SubscriberId: 'N/A' stands for a null"),
    ],
)
def test_the_validator_catches_each_rule(column: str, value: str, expected: str) -> None:
    text, _ = export(mixed_events()[:1])  # gpt-4o-mini: no ResourceId, no region, subscriber c1, no SubAccount
    if column == "SubAccountName":
        text, _ = export(mixed_events()[2:3])  # o3-mini: team t-9
    assert validate(text) == []
    problems = validate(_mutate(text, column, value))
    assert any(expected in p for p in problems), problems


def test_the_validator_checks_the_header() -> None:
    text, _ = export(mixed_events()[:1])
    header, rest = text.split("\n", 1)
    assert "header: ServiceName: mandatory column missing" in validate(header.replace("ServiceName", "Service") + "\n")
    assert any("Custom: neither a FOCUS 1.2 column" in p for p in validate(text.replace("x_Model,", "Custom,", 1)))
    without_details = _drop_column(text, "SkuPriceDetails")
    assert "header: SkuPriceDetails: required with SkuId" in validate(without_details)
    assert rest


def _drop_column(text: str, column: str) -> str:
    rows = list(csv.DictReader(io.StringIO(text)))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[c for c in rows[0] if c != column], lineterminator="\n")
    writer.writeheader()
    writer.writerows([{k: v for k, v in r.items() if k != column} for r in rows])
    return out.getvalue()
