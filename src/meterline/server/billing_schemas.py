"""Wire schemas of the billing API (request bodies); the tables are in meterline.billing.store."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class CustomerIn(BaseModel):
    id: str = Field(description="the value of the customer dimension in events (subscriber_id by default)")
    name: str = ""
    email: str | None = None
    timezone: str = Field("UTC", description="IANA zone: invoice periods are months in this zone")
    metadata: dict[str, Any] = Field(default_factory=dict)
    overrides: list[dict[str, Any]] = Field(default_factory=list, description="customer-specific rate rules")


class CustomerPatch(BaseModel):
    name: str | None = None
    email: str | None = None
    timezone: str | None = None
    metadata: dict[str, Any] | None = None
    overrides: list[dict[str, Any]] | None = None


class PlanIn(BaseModel):
    id: str
    name: str | None = None
    effective_from: str = Field("1970-01-01", description="YYYY-MM-DD, in the customer's time zone")
    rules: list[dict[str, Any]] = Field(description="rate rules: prices per token class, or markup_percent")
    minimum_usd: str = Field("0", description="minimum monthly commitment, a decimal string")


class SubscriptionIn(BaseModel):
    plan: str
    start: str = Field(description="YYYY-MM-DD, in the customer's time zone")


class GrantIn(BaseModel):
    amount_usd: str = Field(description='a decimal string, e.g. "100.00"')
    expires_at: str | None = Field(None, description="ISO time; never when null")
    note: str = ""


class CreditNoteIn(BaseModel):
    amount_usd: str
    reason: str


class BillingSettingsIn(BaseModel):
    customer_dimension: str | None = Field(None, description="the event field whose value is the customer id")
    auto_create_customers: bool | None = Field(None, description="finalize creates customers seen in events")
