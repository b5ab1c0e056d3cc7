"""FOCUS 1.2 (FinOps Open Cost and Usage Specification) CSV: one row per event and token class.

Every mandatory FOCUS 1.2 column is written; ``ConsumedQuantity`` is in tokens, ``PricingQuantity`` in
millions of tokens (``PricingUnit`` "1000000 Tokens": FOCUS's unit format wants a whole-number quantity,
not "1M"; so ``ListUnitPrice`` is the familiar per-million rate),
``SkuMeter`` names the token class, and every meterline dimension has an ``x_`` column.
Costs are the provider's list prices as priced by meterline (Billed = Effective = List = Contracted: no
negotiated discounts are known here). Unpriced events keep cost 0 with ``x_PricingSource`` "unpriced".
Times are UTC ``YYYY-MM-DDTHH:mm:ssZ``; the charge period is the hour of the call (end exclusive) and
the billing period its calendar month.

Resource columns. FOCUS 1.2 defines ``ResourceId`` as the identifier of the resource the charge applies to,
and requires ``ResourceName`` and ``ResourceType`` to be null when ``ResourceId`` is null. The only such
resource an event knows is the deployment that served the call (``deployment_id``: a LiteLLM proxy
deployment, an Azure OpenAI or Bedrock deployment): then ``ResourceId`` is it, ``ResourceName`` the model
group (else the model) and ``ResourceType`` "Model Deployment". A direct SDK call has no such resource, so
all three are null; the model is in ``SkuId``/``ChargeDescription`` and ``x_Model``. A key or credential alias
names who called, not a resource that is charged, so it is not used as a ``ResourceId`` (it is in
``x_ApiKeyAlias``/``x_CredentialAlias``).

Unpriced usage. FOCUS requires non-null costs, and non-null ``ListUnitPrice``/``ContractedUnitPrice`` on
usage rows; an unpriced row has them all 0 so that ``ListCost = ListUnitPrice * PricingQuantity`` holds, and
says so where a FinOps tool shows it: ``ChargeDescription`` ends in "(unpriced: cost unknown, shown as 0)"
and ``x_PricingSource`` is "unpriced". Tags without a value (the event's ``tags`` list) are ``true``, as
FOCUS's Tags column requires.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import IO, Any

from meterline.core.event import DIMENSIONS, UsageEvent, format_cost
from meterline.interop.export.base import TOKEN_CLASSES

MANDATORY = (
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
)
CONDITIONAL = (
    "ChargeFrequency",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedUnitPrice",
    "ListUnitPrice",
    "PricingCategory",
    "PricingCurrency",
    "RegionId",
    "RegionName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "ServiceSubcategory",
    "SkuId",
    "SkuMeter",
    "SkuPriceDetails",
    "SkuPriceId",
    "SubAccountId",
    "SubAccountName",
    "Tags",
)


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


X_COLUMNS = ("x_EventId", "x_ReasoningTokens", *(f"x_{_camel(d)}" for d in DIMENSIONS))
COLUMNS = (*MANDATORY, *CONDITIONAL, *X_COLUMNS)

_PROVIDERS = {
    "openai": ("OpenAI", "OpenAI API"),
    "anthropic": ("Anthropic", "Claude API"),
    "bedrock": ("Amazon Web Services", "Amazon Bedrock"),
    "azure": ("Microsoft", "Azure OpenAI Service"),
    "azure_ai": ("Microsoft", "Azure AI Foundry"),
    "vertex_ai": ("Google Cloud", "Vertex AI"),
    "gemini": ("Google", "Gemini API"),
    "mistral": ("Mistral AI", "Mistral AI API"),
    "groq": ("Groq", "GroqCloud"),
    "xai": ("xAI", "xAI API"),
    "deepseek": ("DeepSeek", "DeepSeek API"),
    "cohere": ("Cohere", "Cohere API"),
}
_PUBLISHERS = (
    ("claude", "Anthropic"),
    ("gpt", "OpenAI"),
    ("o1", "OpenAI"),
    ("o3", "OpenAI"),
    ("o4", "OpenAI"),
    ("text-embedding", "OpenAI"),
    ("gemini", "Google"),
    ("llama", "Meta"),
    ("mistral", "Mistral AI"),
    ("command", "Cohere"),
    ("nova", "Amazon"),
    ("titan", "Amazon"),
    ("deepseek", "DeepSeek"),
    ("grok", "xAI"),
)
_METERS = {"input": "Input Tokens", "cache_read": "Cache Read Tokens", "cache_write": "Cache Write Tokens"}
_MTOK = Decimal(1_000_000)


def _t(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _month(dt: datetime) -> tuple[datetime, datetime]:
    start = dt.astimezone(timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end


def publisher(model: str, provider_name: str) -> str:
    bare = model.lower().rsplit("/", 1)[-1]  # "bedrock/us.anthropic.claude-…" -> "us.anthropic.claude-…"
    for prefix, name in _PUBLISHERS:
        if bare.startswith(prefix) or f".{prefix}" in bare or bare.startswith(name.lower()):
            return name
    return provider_name


def rows(
    event: UsageEvent, *, billing_account: str = "meterline", invoice_issuer: str | None = None
) -> list[dict[str, Any]]:
    """The FOCUS rows of one event: one per token class with tokens."""
    provider_name, service = _PROVIDERS.get(event.provider, (event.provider, f"{event.provider} API"))
    hour = event.start_time.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
    bill_start, bill_end = _month(hour)
    priced = event.total_cost is not None
    dims = {f"x_{_camel(d)}": _cell(getattr(event, d)) for d in DIMENSIONS}
    tags: dict[str, str | bool] = {k: str(v) for k, v in event.attributes.items()}
    tags.update(dict.fromkeys(event.tags, True))
    resource = event.deployment_id or ""
    unpriced_note = "" if priced else " (unpriced: cost unknown, shown as 0)"
    out = []
    for cls, tok_field, cost_field in TOKEN_CLASSES:
        tokens = getattr(event, tok_field)
        if not tokens:
            continue
        cost = getattr(event, cost_field) if priced else None
        cost = cost if cost is not None else Decimal(0)
        quantity = Decimal(tokens) / _MTOK
        unit_price = format_cost((cost / quantity).quantize(Decimal("1e-10"))) if priced else "0"
        meter = _METERS.get(cls, "Output Tokens")
        sku = f"{event.provider}/{event.model}/{cls}"
        out.append(
            {
                "BilledCost": format_cost(cost),
                "BillingAccountId": billing_account,
                "BillingAccountName": billing_account,
                "BillingCurrency": event.currency,
                "BillingPeriodEnd": _t(bill_end),
                "BillingPeriodStart": _t(bill_start),
                "ChargeCategory": "Usage",
                "ChargeClass": "",
                "ChargeDescription": f"{event.model} {meter.lower()}{unpriced_note}",
                "ChargePeriodEnd": _t(hour + timedelta(hours=1)),
                "ChargePeriodStart": _t(hour),
                "ContractedCost": format_cost(cost),
                "EffectiveCost": format_cost(cost),
                "InvoiceIssuerName": invoice_issuer or provider_name,
                "ListCost": format_cost(cost),
                "PricingQuantity": format_cost(quantity),
                "PricingUnit": "1000000 Tokens",
                "ProviderName": provider_name,
                "PublisherName": publisher(event.model, provider_name),
                "ServiceCategory": "AI and Machine Learning",
                "ServiceName": service,
                "ChargeFrequency": "Usage-Based",
                "ConsumedQuantity": str(tokens),
                "ConsumedUnit": "Tokens",
                "ContractedUnitPrice": unit_price,
                "ListUnitPrice": unit_price,
                "PricingCategory": "Standard",
                "PricingCurrency": event.currency,
                "RegionId": event.region or "",
                "RegionName": event.region or "",
                "ResourceId": resource,
                "ResourceName": (event.model_group or event.model) if resource else "",
                "ResourceType": "Model Deployment" if resource else "",
                "ServiceSubcategory": "Generative AI",
                "SkuId": sku,
                "SkuMeter": meter,
                "SkuPriceDetails": "",  # present with SkuId/SkuPriceId, as FOCUS 1.2 asks; null is allowed
                "SkuPriceId": f"{event.pricing_source or 'unpriced'}:{sku}",
                "SubAccountId": event.organization_id or event.team_id or "",
                "SubAccountName": event.organization_id or event.team_id or "",
                "Tags": json.dumps(tags, sort_keys=True) if tags else "",
                "x_EventId": event.id,
                "x_ReasoningTokens": str(event.reasoning_tokens) if cls == "output" else "",
                **dims,
            }
        )
    return out


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def write_csv(
    events: Iterable[UsageEvent], out: IO[str], *, billing_account: str = "meterline", invoice_issuer: str | None = None
) -> tuple[int, int]:
    """Write the FOCUS CSV; (rows written, unpriced events)."""
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    n = unpriced = 0
    for event in events:
        unpriced += event.total_cost is None
        for row in rows(event, billing_account=billing_account, invoice_issuer=invoice_issuer):
            writer.writerow(row)
            n += 1
    return n, unpriced
