"""Lago export: ``POST {url}/api/v1/events/batch`` with up to 100 events per request.

Better than LiteLLM's lago callback on each of its known problems: ``transaction_id`` is the event id (a
re-send is de-duplicated by Lago), the charge-by dimension is configurable and an event without it is
skipped and counted instead of raising, the timestamp is the call's own time, events go in batches,
and cache/reasoning tokens and every cost component are in ``properties``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from meterline.core.event import UsageEvent, format_cost
from meterline.interop.export.base import ChargeBy, ExportError, Sent, Target, post, usage_properties

MAX_BATCH = 100


class LagoTarget(Target):
    format = "lago"
    batch_size = MAX_BATCH

    def __init__(self, url: str | None, api_key: str | None, charge_by: ChargeBy, *, code: str = "llm_usage") -> None:
        super().__init__(url, api_key, charge_by)
        self.code = code

    @property
    def endpoint(self) -> str:
        base = self.url or "https://api.getlago.com"
        return base + ("/events/batch" if base.endswith("/api/v1") else "/api/v1/events/batch")

    def encode(self, event: UsageEvent) -> dict[str, Any] | str:
        target_id = self.charge_by.value(event)
        if target_id is None:
            return self.missing_dimension()
        item: dict[str, Any] = {
            "transaction_id": event.id,
            "external_subscription_id": target_id,
            "code": self.code,
            "timestamp": f"{event.start_time.timestamp():.6f}",
            "properties": usage_properties(event),
        }
        if event.total_cost is not None:  # for Lago's "dynamic" charge model (pass-through cost)
            item["precise_total_amount_cents"] = format_cost(event.total_cost * Decimal(100))
        return item

    def send(self, items: Sequence[tuple[str, dict[str, Any]]]) -> Sent:
        if len(items) > MAX_BATCH:
            raise ExportError(f"Lago takes at most {MAX_BATCH} events per batch")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        status, body = post(self.endpoint, json.dumps({"events": [i for _, i in items]}).encode(), headers)
        if 200 <= status < 300:
            return Sent(sent=[eid for eid, _ in items])
        if status != 422:
            raise ExportError(f"Lago answered HTTP {status} to {self.endpoint}: {body[:300]!r}")
        return self._partial(items, body)

    def _partial(self, items: Sequence[tuple[str, dict[str, Any]]], body: bytes) -> Sent:
        """A 422 names bad events by index; Lago stores none of the batch, so the good ones go again."""
        try:
            details = json.loads(body).get("error_details") or {}
        except (ValueError, AttributeError):
            details = {}
        by_index = {int(k): v for k, v in details.items() if str(k).isdigit()}
        if not by_index:
            raise ExportError(f"Lago refused the batch: {body[:300]!r}")
        out = Sent()
        again: list[tuple[str, dict[str, Any]]] = []
        for index, (eid, item) in enumerate(items):
            errors = by_index.get(index)
            if errors is None:
                again.append((eid, item))
            elif "value_already_exist" in json.dumps(errors):
                out.sent.append(eid)  # stored by an earlier send
            else:
                out.refused[eid] = f"Lago: {json.dumps(errors)[:200]}"
        out.again = again
        return out
