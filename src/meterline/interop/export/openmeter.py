"""OpenMeter export: CloudEvents (``id`` = event id, ``subject`` = the charge-by dimension, ``source``
"meterline") posted as ``application/cloudevents-batch+json`` to ``{url}/api/v1/events``; OpenMeter
de-duplicates on (source, id), so a re-send is counted once."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from meterline.core.event import UsageEvent, format_time
from meterline.interop.export.base import ChargeBy, ExportError, Sent, Target, post, usage_properties

SOURCE = "meterline"


class OpenMeterTarget(Target):
    format = "openmeter"
    batch_size = 100

    def __init__(
        self, url: str | None, api_key: str | None, charge_by: ChargeBy, *, event_type: str = "llm_tokens"
    ) -> None:
        super().__init__(url, api_key, charge_by)
        self.event_type = event_type

    @property
    def endpoint(self) -> str:
        return (self.url or "https://openmeter.cloud") + "/api/v1/events"

    def encode(self, event: UsageEvent) -> dict[str, Any] | str:
        subject = self.charge_by.value(event)
        if subject is None:
            return self.missing_dimension()
        return {
            "specversion": "1.0",
            "id": event.id,
            "source": SOURCE,
            "type": self.event_type,
            "subject": subject,
            "time": format_time(event.start_time),
            "datacontenttype": "application/json",
            "data": usage_properties(event),
        }

    def send(self, items: Sequence[tuple[str, dict[str, Any]]]) -> Sent:
        headers = {"Content-Type": "application/cloudevents-batch+json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        status, body = post(self.endpoint, json.dumps([i for _, i in items]).encode(), headers)
        if 200 <= status < 300:
            return Sent(sent=[eid for eid, _ in items])
        if status == 400:
            return Sent(refused={eid: f"OpenMeter: {body[:200]!r}" for eid, _ in items})
        raise ExportError(f"OpenMeter answered HTTP {status} to {self.endpoint}: {body[:300]!r}")
