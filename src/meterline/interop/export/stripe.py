"""Stripe billing meter events: ``POST {url}/v1/billing/meter_events`` (form-encoded, as the ``stripe``
package sends it) with ``event_name``, ``payload[stripe_customer_id]`` (the charge-by value through
``--map``), ``payload[value]``, ``identifier`` = event id (Stripe's idempotency key) and ``timestamp``.

Stripe accepts timestamps at most 35 days back and 5 minutes ahead: other events are skipped and
reported. ``value`` is a whole number: a token count (``total_tokens`` by default) or ``cost_micros``.

Rate limits. The v1 endpoint takes one event per request. Stripe documents 1,000 meter-event calls per
second per account in live mode (and one concurrent call per customer and meter: this exporter sends one
request at a time); in a sandbox (test-mode keys) meter events count toward the basic sandbox limit of
25 requests per second, shared with every other API call of the account. (The v2 meter event stream takes
far more, 10,000 events/s, but needs short-lived session tokens: not used here.) So requests are paced, by
default, at **900/s with a live key** (``sk_live_…``/``rk_live_…``: 90 % of the limit) and **20/s with any
other key** (test keys, or a local stand-in: 80 % of the sandbox limit, leaving room for the account's
other calls). ``METERLINE_STRIPE_RATE`` (requests per second; ``0``: no pacing) or ``StripeTarget(rate=…)``
changes it.

A 429, a 5xx or a network error stops the batch where it is: the events Stripe already accepted go to the
export ledger as sent (they are never posted again) and only the rest is retried, after the target's
``Retry-After`` when it sends one (a minimum, capped by the exporter's ``max_wait``), else after a clamped
exponential backoff that starts over once a request gets through (``runner.Exporter``). So one 429 in a
batch of 100 costs exactly one extra request.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from meterline.core.event import UsageEvent
from meterline.interop.export.base import ChargeBy, ExportError, Pacer, RetryLater, Sent, Target, post

WINDOW = timedelta(days=35)
AHEAD = timedelta(minutes=5)
VALUES = (
    "total_tokens",
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_micros",
)
RATE_ENV = "METERLINE_STRIPE_RATE"
LIVE_RATE = 900.0  # requests/s with a live key: Stripe allows 1,000 meter-event calls/s in live mode
SANDBOX_RATE = 20.0  # requests/s otherwise: a sandbox's basic limit is 25 requests/s for all its calls


def default_rate(api_key: str | None) -> float:
    """Requests per second to pace at: ``METERLINE_STRIPE_RATE`` when set, else by the key's mode."""
    text = os.environ.get(RATE_ENV, "").strip()
    if text:
        try:
            rate = float(text)
        except ValueError:
            rate = -1.0
        if not 0 <= rate < float("inf"):
            raise ExportError(f"{RATE_ENV}: expected requests per second (a number >= 0, 0 = no pacing); got {text!r}")
        return rate
    return LIVE_RATE if (api_key or "").startswith(("sk_live_", "rk_live_")) else SANDBOX_RATE


def form_encode(params: dict[str, Any]) -> str:
    """Stripe's form encoding: nested dicts as ``key[sub]=value``."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        if isinstance(value, dict):
            pairs += [(f"{key}[{k}]", str(v)) for k, v in value.items()]
        else:
            pairs.append((key, str(value)))
    return urllib.parse.urlencode(pairs)


class StripeTarget(Target):
    format = "stripe"
    batch_size = 100

    def __init__(
        self,
        url: str | None,
        api_key: str | None,
        charge_by: ChargeBy,
        *,
        event_name: str = "llm_tokens",
        value: str = "total_tokens",
        now: Any = None,
        rate: float | None = None,
    ) -> None:
        super().__init__(url, api_key, charge_by)
        if value not in VALUES:
            raise ExportError(f"--value: must be one of {', '.join(VALUES)}; got {value!r}")
        if charge_by.mapping is None:
            raise ExportError("stripe needs --map FILE: which stripe_customer_id each --charge-by value is")
        self.event_name = event_name
        self.value_of = value
        self._now = now or (lambda: datetime.now(timezone.utc))
        if rate is not None and not 0 <= rate < float("inf"):
            raise ExportError(f"rate: expected requests per second (>= 0, 0 = no pacing); got {rate!r}")
        self.pacer = Pacer(default_rate(api_key) if rate is None else rate)

    @property
    def endpoint(self) -> str:
        return (self.url or "https://api.stripe.com") + "/v1/billing/meter_events"

    def encode(self, event: UsageEvent) -> dict[str, Any] | str:
        customer = self.charge_by.value(event)
        if customer is None:
            if self.charge_by.raw(event) is None:
                return self.missing_dimension()
            return f"no stripe_customer_id in --map for its {self.charge_by.dimension}"
        now = self._now()
        if event.start_time < now - WINDOW:
            return "older than Stripe's 35-day meter event window"
        if event.start_time > now + AHEAD:
            return "more than 5 minutes in the future (Stripe refuses it)"
        if self.value_of == "cost_micros":
            if event.total_cost is None:
                return "unpriced (no cost to send as cost_micros)"
            value = int((event.total_cost * Decimal(1_000_000)).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        else:
            value = int(getattr(event, self.value_of))
        return {
            "event_name": self.event_name,
            "payload": {"stripe_customer_id": customer, "value": str(value)},
            "identifier": event.id,
            "timestamp": int(event.start_time.timestamp()),
        }

    def send(self, items: Sequence[tuple[str, dict[str, Any]]]) -> Sent:
        out = Sent()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        for eid, item in items:  # Stripe's v1 meter events API takes one event per request
            self.pacer.wait()
            try:
                status, body = post(self.endpoint, form_encode(item).encode(), headers)
            except RetryLater as exc:
                exc.done = out  # what Stripe took before this one: recorded as sent, never posted again
                raise
            if 200 <= status < 300:
                out.sent.append(eid)
                continue
            message = _stripe_message(body)
            if "identifier" in message.lower() and ("exist" in message.lower() or "duplicate" in message.lower()):
                out.sent.append(eid)  # Stripe has it from an earlier send
            elif status == 400:
                out.refused[eid] = f"Stripe: {message[:200]}"
            else:
                raise ExportError(f"Stripe answered HTTP {status}: {message[:300]}")
        return out


def _stripe_message(body: bytes) -> str:
    try:
        err = json.loads(body).get("error") or {}
        return f"{err.get('code') or err.get('type') or ''}: {err.get('message') or ''}".strip(": ")
    except (ValueError, AttributeError):
        return body[:300].decode(errors="replace")
