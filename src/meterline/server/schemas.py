"""Wire schemas of the collector API (pydantic), separate from the storage tables.

Events themselves are validated by ``UsageEvent.from_wire`` (one place for the rules, shared with the
SDK), so the ingest body is read as plain JSON; the models below document it in the OpenAPI page.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class EventBatch(BaseModel):
    events: list[dict[str, Any]] = Field(description="schema-v1 events (see DESIGN.md); costs as decimal strings")


class Rejection(BaseModel):
    index: int = Field(description="position of the event in the batch")
    id: str | None = Field(default=None, description="the event's id, when it had one")
    field: str = Field(description="the field that is wrong")
    reason: str


class IngestResult(BaseModel):
    accepted: int = Field(description="events stored by this request")
    duplicates: int = Field(description="events whose id was already stored (acknowledged, not stored again)")
    rejected: list[Rejection] = Field(default_factory=list, description="invalid events, not stored")


class UsageResponse(BaseModel):
    rows: list[dict[str, Any]] = Field(description="one row per group: dimensions, bucket, metrics")
    group_by: list[str]
    bucket: str | None = None
    tz: str = "UTC"


class EventsPage(BaseModel):
    events: list[dict[str, Any]]
    next_cursor: str | None = Field(default=None, description="pass as ?cursor= for the next page; null at the end")


class TraceResponse(BaseModel):
    trace_id: str
    events: list[dict[str, Any]]
    totals: dict[str, Any]


class KeyCreate(BaseModel):
    scope: str = Field(description="ingest | read | admin")
    name: str | None = None
    style: str = Field("meterline", description="meterline (ml_…) | revenium (hak_…, for revenium-python-sdk)")


class KeyInfo(BaseModel):
    id: str
    name: str | None
    scope: str
    prefix: str
    created_at: float
    revoked_at: float | None
    active: bool


class KeyCreated(KeyInfo):
    key: str = Field(description="the API key, shown only this once")


class Health(BaseModel):
    status: str
    detail: str | None = None
