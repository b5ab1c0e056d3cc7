"""A small FOCUS 1.2 validator for the tests: the column rules that can be checked on one CSV file.

Written from the specification itself (FinOps-Open-Cost-and-Usage-Spec/FOCUS_Spec at tag v1.2:
``specification/columns/*.md`` and ``specification/attributes/*.md``); each check names the rule it encodes.
What it cannot check (that a ResourceId is provider-assigned, that a SkuPriceId resolves in a price list, invoice
sums) is left out. Checks marked "consistency" are not MUSTs of the spec but what FOCUS's definitions imply for
this data (usage at list price, no commitment discounts). An empty CSV cell is a null.

``validate(text)`` returns a list of problems, ``"row N: Column: what"`` (row 1 is the first data row); [] is valid.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

MANDATORY = [
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ContractedCost",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "ServiceCategory",
    "ServiceName",
]
RECOMMENDED = ["AvailabilityZone", "ChargeFrequency", "InvoiceId", "ServiceSubcategory"]
CONDITIONAL = [
    "BillingAccountType",
    "CapacityReservationId",
    "CapacityReservationStatus",
    "CommitmentDiscountCategory",
    "CommitmentDiscountId",
    "CommitmentDiscountName",
    "CommitmentDiscountQuantity",
    "CommitmentDiscountStatus",
    "CommitmentDiscountType",
    "CommitmentDiscountUnit",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedUnitPrice",
    "ListUnitPrice",
    "PricingCategory",
    "PricingCurrency",
    "PricingCurrencyContractedUnitPrice",
    "PricingCurrencyEffectiveCost",
    "PricingCurrencyListUnitPrice",
    "RegionId",
    "RegionName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "SkuId",
    "SkuMeter",
    "SkuPriceDetails",
    "SkuPriceId",
    "SubAccountId",
    "SubAccountName",
    "SubAccountType",
    "Tags",
]
COLUMNS = {*MANDATORY, *RECOMMENDED, *CONDITIONAL}  # the 57 columns of FOCUS 1.2

# columns with "Allows nulls: False" (or "MUST NOT be null" in their requirements)
NOT_NULL = [
    "BilledCost",
    "BillingAccountId",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ContractedCost",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "PricingCurrency",
    "ProviderName",
    "PublisherName",
    "ServiceCategory",
    "ServiceName",
    "ServiceSubcategory",
]
DECIMALS = [
    "BilledCost",
    "EffectiveCost",
    "ListCost",
    "ContractedCost",
    "ListUnitPrice",
    "ContractedUnitPrice",
    "PricingQuantity",
    "ConsumedQuantity",
    "CommitmentDiscountQuantity",
    "PricingCurrencyContractedUnitPrice",
    "PricingCurrencyEffectiveCost",
    "PricingCurrencyListUnitPrice",
]
NON_NEGATIVE = [
    "ListUnitPrice",
    "ContractedUnitPrice",
    "PricingCurrencyListUnitPrice",
    "PricingCurrencyContractedUnitPrice",
]
DATETIMES = ["BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd"]
CURRENCIES = ["BillingCurrency", "PricingCurrency"]
KEY_VALUE = ["Tags", "SkuPriceDetails"]
UNITS = ["PricingUnit", "ConsumedUnit"]
ALLOWED = {
    "ChargeCategory": {"Usage", "Purchase", "Tax", "Credit", "Adjustment"},
    "ChargeClass": {"Correction"},
    "ChargeFrequency": {"One-Time", "Recurring", "Usage-Based"},
    "PricingCategory": {"Standard", "Dynamic", "Committed", "Other"},
}
SUBCATEGORIES = {  # ServiceCategory -> its ServiceSubcategory values (servicesubcategory.md)
    "AI and Machine Learning": "AI Platforms|Bots|Generative AI|Machine Learning|Natural Language Processing",
    "Analytics": "Analytics Platforms|Business Intelligence|Data Processing|Search|Streaming Analytics",
    "Business Applications": "Productivity and Collaboration",
    "Compute": "Containers|End User Computing|Quantum Compute|Serverless Compute|Virtual Machines",
    "Databases": "Caching|Data Warehouses|Ledger Databases|NoSQL Databases|Relational Databases|Time Series Databases",
    "Developer Tools": "Developer Platforms|Continuous Integration and Deployment|Development Environments|"
    "Source Code Management|Quality Assurance",
    "Identity": "Identity and Access Management",
    "Integration": "API Management|Messaging|Workflow Orchestration",
    "Internet of Things": "IoT Analytics|IoT Platforms",
    "Management and Governance": "Architecture|Compliance|Cost Management|Data Governance|Disaster Recovery|"
    "Endpoint Management|Observability|Support",
    "Media": "Content Creation|Gaming|Media Streaming|Mixed Reality",
    "Migration": "Data Migration|Resource Migration",
    "Mobile": "",
    "Multicloud": "Multicloud Integration",
    "Networking": "Application Networking|Content Delivery|Network Connectivity|Network Infrastructure|"
    "Network Routing|Network Security",
    "Security": "Secret Management|Security Posture Management|Threat Detection and Response",
    "Storage": "Backup Storage|Block Storage|File Storage|Object Storage|Storage Platforms",
    "Web": "Application Platforms",
    "Other": "",
}
SERVICE_SUBCATEGORIES = {cat: {*filter(None, subs.split("|")), f"Other ({cat})"} for cat, subs in SUBCATEGORIES.items()}
# columns whose presence rules are the same condition: one present means all are required
FAMILIES = [
    ("SkuId", "SkuPriceId", "SkuMeter", "SkuPriceDetails"),
    ("RegionId", "RegionName"),
    ("SubAccountId", "SubAccountName"),
    ("ResourceId", "ResourceName"),
    ("ConsumedQuantity", "ConsumedUnit"),
]
# ISO 4217 codes of the currencies an LLM bill is realistically in (others are reported, to be looked at)
ISO_4217 = set(
    [
        "USD",
        "EUR",
        "GBP",
        "JPY",
        "CNY",
        "CHF",
        "CAD",
        "AUD",
        "NZD",
        "SEK",
        "NOK",
        "DKK",
        "PLN",
        "CZK",
        "HUF",
        "INR",
        "SGD",
        "HKD",
        "KRW",
        "TWD",
        "BRL",
        "MXN",
        "ZAR",
        "ILS",
        "AED",
        "SAR",
        "TRY",
        "IDR",
        "THB",
        "MYR",
        "PHP",
        "VND",
        "CLP",
        "COP",
        "PEN",
        "ARS",
        "NGN",
        "KES",
        "EGP",
        "UAH",
        "RON",
        "BGN",
        "ISK",
    ]
)

NUMERIC = re.compile(r"-?[0-9]+(\.[0-9]+)?(E-?[0-9]+)?")  # NumericFormat: no "+", no ",", "mEn" with "E"
DATETIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")  # DateTimeFormat
_TIME = "(?:Year|Month|Day|Hour|Minute|Second)"
_UNIT = r"(?:[A-Z][a-z]+|[KMGTPE]i?[bB]|[bB])"  # a capitalised count noun, or a data size abbreviation
UNIT_FORMS = [  # UnitFormat (SHOULD): the five forms it lists
    re.compile(rf"{_UNIT}"),
    re.compile(rf"{_UNIT}-{_TIME}s"),
    re.compile(rf"{_UNIT}/{_TIME}"),
    re.compile(rf"[1-9][0-9]* {_UNIT}"),
    re.compile(rf"{_UNIT}/[1-9][0-9]* {_TIME}s"),
]
PLACEHOLDERS = {"null", "none", "n/a", "na", "not applicable", "-", "nan"}  # NullHandling: a null is a null


def validate(text: str) -> list[str]:
    reader = csv.DictReader(io.StringIO(text))
    header = list(reader.fieldnames or [])
    problems = _columns(header)
    for n, row in enumerate(reader, 1):
        problems += [f"row {n}: {p}" for p in _row({k: (v if v != "" else None) for k, v in row.items()}, header)]
    return problems


def _columns(header: list[str]) -> list[str]:
    out = [f"header: {c}: mandatory column missing" for c in MANDATORY if c not in header]
    out += [f"header: {c}: duplicated" for c in sorted({c for c in header if header.count(c) > 1})]
    out += [
        f"header: {c}: neither a FOCUS 1.2 column nor x_-prefixed"
        for c in header
        if c not in COLUMNS and not c.startswith("x_")
    ]
    custom = [i for i, c in enumerate(header) if c.startswith("x_")]
    if custom and any(c in COLUMNS for c in header[custom[0] :]):
        out.append("header: FOCUS columns SHOULD come before every custom x_ column (ColumnHandling)")
    for family in FAMILIES:
        present = [c for c in family if c in header]
        if present and len(present) < len(family):
            out.append(f"header: {', '.join(sorted(set(family) - set(present)))}: required with {present[0]}")
    return out


def _row(r: dict[str, str | None], header: list[str]) -> list[str]:
    out: list[str] = []
    has = header.__contains__
    out += [f"{c}: MUST NOT be null" for c in NOT_NULL if has(c) and r.get(c) is None]
    for c, value in r.items():
        if value is not None and value.strip().lower() in PLACEHOLDERS | {""}:
            out.append(f"{c}: {value!r} stands for a null (NullHandling: use null)")
    out += _formats(r, has)
    category, correction = r.get("ChargeCategory"), r.get("ChargeClass") == "Correction"
    priced_kind = category in ("Usage", "Purchase") and not correction
    for c in ("ListUnitPrice", "ContractedUnitPrice", "PricingQuantity", "PricingCategory", "SkuId", "SkuPriceId"):
        if has(c) and priced_kind and r.get(c) is None:
            out.append(f"{c}: MUST NOT be null when ChargeCategory is {category} and ChargeClass is not Correction")
        if has(c) and category == "Tax" and r.get(c) is not None:
            out.append(f"{c}: MUST be null when ChargeCategory is Tax")
    out += _nullability(r, has)
    if r.get("ChargeFrequency") == "Usage-Based" and category == "Purchase":
        out.append("ChargeFrequency: MUST NOT be Usage-Based when ChargeCategory is Purchase")
    sub, cat = r.get("ServiceSubcategory"), r.get("ServiceCategory")
    if sub is not None and cat in SERVICE_SUBCATEGORIES and sub not in SERVICE_SUBCATEGORIES[cat]:
        out.append(f"ServiceSubcategory: {sub!r} is not a subcategory of {cat!r}")
    out += _periods(r)
    out += _costs(r, has, correction)
    return out


def _formats(r: dict[str, str | None], has: Any) -> list[str]:
    out = []
    for c in DECIMALS:
        v = r.get(c)
        if v is not None and not NUMERIC.fullmatch(v):
            out.append(f"{c}: {v!r} is not in NumericFormat")
        elif v is not None and c in NON_NEGATIVE and Decimal(v) < 0:
            out.append(f"{c}: MUST be non-negative")
    for c in DATETIMES:
        v = r.get(c)
        if v is not None and (not DATETIME.fullmatch(v) or _time(v) is None):
            out.append(f"{c}: {v!r} is not a UTC 'YYYY-MM-DDTHH:mm:ssZ' date/time")
    for c in CURRENCIES:
        v = r.get(c)
        if v is not None and v not in ISO_4217:
            out.append(f"{c}: {v!r} is not an ISO 4217 national currency code")
    for c in KEY_VALUE:
        v = r.get(c)
        if v is not None:
            out += [f"{c}: {p}" for p in _key_value(v, tags=c == "Tags")]
    for c in UNITS:
        v = r.get(c)
        if v is not None and not any(form.fullmatch(v) for form in UNIT_FORMS):
            out.append(f"{c}: {v!r} is not in UnitFormat (e.g. 'Tokens', '1000000 Tokens', 'GB-Hours')")
    for c, allowed in ALLOWED.items():
        v = r.get(c)
        if v is not None and v not in allowed:
            out.append(f"{c}: {v!r} is not one of {sorted(allowed)}")
    if r.get("ServiceCategory") is not None and r["ServiceCategory"] not in SUBCATEGORIES:
        out.append(f"ServiceCategory: {r['ServiceCategory']!r} is not an allowed value")
    return out


def _key_value(text: str, *, tags: bool) -> list[str]:
    """KeyValueFormat: a serialized JSON object with unique keys and primitive values (Tags: a valueless tag is
    ``true``, so an empty-string value is reported)."""
    keys: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        keys.extend(k for k, _ in items)
        return dict(items)

    try:
        doc = json.loads(text, object_pairs_hook=pairs)
    except ValueError:
        return ["not a serialized JSON object"]
    if not isinstance(doc, dict):
        return ["not a JSON object"]
    out = [f"key {k!r} is not unique" for k in sorted({k for k in keys if keys.count(k) > 1})]
    out += [f"{k!r}: value is an object or an array" for k, v in doc.items() if isinstance(v, (dict, list))]
    if tags:
        out += [f"{k!r}: a valueless tag MUST be true, not ''" for k, v in doc.items() if v == ""]
    return out


def _nullability(r: dict[str, str | None], has: Any) -> list[str]:
    out = []
    pairs = [  # (column, the column it follows): null exactly when that one is null
        ("PricingUnit", "PricingQuantity"),
        ("ConsumedUnit", "ConsumedQuantity"),
        ("RegionName", "RegionId"),
        ("SubAccountName", "SubAccountId"),
        ("SubAccountType", "SubAccountId"),
        ("ResourceType", "ResourceId"),
    ]
    for column, leader in pairs:
        if has(column) and has(leader) and (r.get(column) is None) != (r.get(leader) is None):
            state = "null" if r.get(leader) is None else "not null"
            out.append(f"{column}: MUST {'be' if state == 'null' else 'NOT be'} null when {leader} is {state}")
    if has("ResourceName") and r.get("ResourceId") is None and r.get("ResourceName") is not None:
        out.append("ResourceName: MUST be null when ResourceId is null")
    if has("SkuMeter") and r.get("SkuId") is None and r.get("SkuMeter") is not None:
        out.append("SkuMeter: MUST be null when SkuId is null")
    if has("SkuPriceDetails") and r.get("SkuPriceId") is None and r.get("SkuPriceDetails") is not None:
        out.append("SkuPriceDetails: MUST be null when SkuPriceId is null")
    if has("ConsumedQuantity"):
        usage = r.get("ChargeCategory") == "Usage" and r.get("CommitmentDiscountStatus") != "Unused"
        if not usage and r.get("ConsumedQuantity") is not None:
            out.append("ConsumedQuantity: MUST be null when ChargeCategory is not Usage")
        if usage and r.get("ChargeClass") != "Correction" and r.get("ConsumedQuantity") is None:
            out.append("ConsumedQuantity: MUST NOT be null on a Usage row")
    if r.get("ChargeDescription") is None:
        out.append("ChargeDescription: SHOULD NOT be null")
    return out


def _periods(r: dict[str, str | None]) -> list[str]:
    out = []
    times = {c: _time(r.get(c)) for c in DATETIMES}
    for start, end in (("ChargePeriodStart", "ChargePeriodEnd"), ("BillingPeriodStart", "BillingPeriodEnd")):
        if times[start] and times[end] and not times[start] < times[end]:  # type: ignore[operator]
            out.append(f"{start}: MUST be before {end} (inclusive start, exclusive end)")
    cs, ce, bs, be = (times[c] for c in DATETIMES[2:] + DATETIMES[:2])
    if cs and ce and bs and be and not (bs <= cs and ce <= be):
        out.append("ChargePeriodStart: the charge period is outside its billing period (consistency)")
    return out


def _costs(r: dict[str, str | None], has: Any, correction: bool) -> list[str]:
    """Unit price x PricingQuantity = cost (ListUnitPrice, ContractedUnitPrice: MUST, unless a correction), to
    the unit price's rounding: a price given to 10 decimals is off by at most 0.5E-10 per pricing unit."""
    d = {c: _dec(r.get(c)) for c in (*DECIMALS,)}
    out = []
    quantity = d["PricingQuantity"]
    for price, cost in (("ListUnitPrice", "ListCost"), ("ContractedUnitPrice", "ContractedCost")):
        p, c = d[price], d[cost]
        if correction or p is None or quantity is None or c is None:
            continue
        if abs(p * quantity - c) > abs(quantity) * Decimal("0.5E-10"):
            out.append(f"{cost}: {c} is not {price} x PricingQuantity = {p * quantity}")
    billed, effective = d["BilledCost"], d["EffectiveCost"]
    category = r.get("ChargeCategory")
    if category == "Credit" and billed is not None:  # a charge unrelated to other charges
        if effective is not None and effective != billed:
            out.append("EffectiveCost: MUST match BilledCost on a charge unrelated to others (Credit)")
        for price, cost in (("ListUnitPrice", "ListCost"), ("ContractedUnitPrice", "ContractedCost")):
            if d[price] is None and d[cost] is not None and d[cost] != billed:
                out.append(f"{cost}: MUST match BilledCost on a Credit without {price}")
    if not has("CommitmentDiscountId") or r.get("CommitmentDiscountId") is None:
        if category == "Usage" and billed is not None and effective is not None and billed != effective:
            out.append("EffectiveCost: differs from BilledCost with no commitment discount to amortize (consistency)")
        lst, con = d["ListCost"], d["ContractedCost"]
        if lst is not None and con is not None and lst >= 0 and con > lst:
            out.append("ContractedCost: above ListCost (consistency: negotiated prices only lower a list price)")
        lp, cp = d["ListUnitPrice"], d["ContractedUnitPrice"]
        if lp is not None and cp is not None and cp > lp:
            out.append("ContractedUnitPrice: above ListUnitPrice (consistency)")
    return out


def _dec(value: str | None) -> Decimal | None:
    if value is None or not NUMERIC.fullmatch(value):
        return None
    try:
        return Decimal(value)
    except InvalidOperation:
        return None


def _time(value: str | None) -> datetime | None:
    if value is None or not DATETIME.fullmatch(value):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return None
