"""What every export target shares: the charge-by dimension, value mappings, HTTP with rate limits."""

from __future__ import annotations

import csv
import dataclasses
import datetime
import email.utils
import http.client
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from meterline.core.event import FIELD_NAMES, UsageEvent, format_cost


class ExportError(ValueError):
    """A configuration error (bad option, unreadable mapping, target refusing our key): named, not retried."""


class RetryLater(Exception):
    """The target is rate limiting (429) or unavailable (5xx, network): try the same batch again later.

    ``seconds`` is the target's own hint (``Retry-After``), None when it gave none; ``done`` is what a target
    that sends a batch in several requests (Stripe: one per event) had delivered before it had to stop: the
    runner records those and sends only the rest again."""

    def __init__(self, seconds: float | None, reason: str, done: Sent | None = None) -> None:
        super().__init__(reason)
        self.seconds = seconds
        self.reason = reason
        self.done = done


@dataclasses.dataclass(frozen=True)
class ChargeBy:
    """Which event dimension names the customer/subscription at the target (``--charge-by``), optionally
    translated through a mapping (``--map``: dimension value → the target's id)."""

    dimension: str = "subscriber_id"
    mapping: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        if self.dimension not in FIELD_NAMES and not self.dimension.startswith("attributes."):
            raise ExportError(
                f"--charge-by: {self.dimension!r} is not an event field; use a dimension such as subscriber_id, "
                "organization_id, subscription_id, team_id, user_id, end_user_id, or attributes.<name>"
            )

    def raw(self, event: UsageEvent) -> str | None:
        if self.dimension.startswith("attributes."):
            value: Any = event.attributes.get(self.dimension[len("attributes.") :])
        else:
            value = getattr(event, self.dimension)
        return None if value is None or value == "" else str(value)

    def value(self, event: UsageEvent) -> str | None:
        raw = self.raw(event)
        if raw is None or self.mapping is None:
            return raw
        return self.mapping.get(raw)


def load_mapping(path: str | Path) -> dict[str, str]:
    """A JSON object, or a CSV of two columns (dimension value, target id; a header row is allowed)."""
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ExportError(f"--map {p}: {exc}") from None
    if p.suffix == ".json" or text.lstrip().startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise ExportError(f"--map {p}: not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise ExportError(f"--map {p}: expected a JSON object of value -> id")
        return {str(k): str(v) for k, v in doc.items()}
    out: dict[str, str] = {}
    for n, row in enumerate(csv.reader(text.splitlines()), 1):
        if not row or (n == 1 and row[0].strip().lower() in ("value", "key", "dimension", "customer")):
            continue
        if len(row) < 2:
            raise ExportError(f"--map {p}: line {n}: expected two columns (value, id)")
        out[row[0].strip()] = row[1].strip()
    return out


TOKEN_CLASSES = (
    ("input", "input_tokens", "input_cost"),
    ("cache_read", "cache_read_tokens", "cache_read_cost"),
    ("cache_write", "cache_write_tokens", "cache_write_cost"),
    ("output", "output_tokens", "output_cost"),
)


def usage_properties(event: UsageEvent) -> dict[str, Any]:
    """Tokens per class and cost (decimal strings) of an event, as properties for a billing system."""
    props: dict[str, Any] = {
        "model": event.model,
        "provider": event.provider,
        "operation": event.operation,
        "input_tokens": event.input_tokens,
        "cache_read_tokens": event.cache_read_tokens,
        "cache_write_tokens": event.cache_write_tokens,
        "output_tokens": event.output_tokens,
        "reasoning_tokens": event.reasoning_tokens,
        "total_tokens": event.total_tokens,
    }
    for name in ("input_cost", "cache_read_cost", "cache_write_cost", "output_cost", "total_cost"):
        value = getattr(event, name)
        if value is not None:
            props[name] = format_cost(value)
    props["currency"] = event.currency
    props["pricing_source"] = event.pricing_source or "unpriced"
    return props


@dataclasses.dataclass
class Sent:
    """What became of each event of a batch: sent, refused by the target (with its reason), or to send again
    (the target took none of a batch that held a bad event: the good ones go in a new request)."""

    sent: list[str] = dataclasses.field(default_factory=list)
    refused: dict[str, str] = dataclasses.field(default_factory=dict)
    again: list[tuple[str, dict[str, Any]]] = dataclasses.field(default_factory=list)


class Target:
    """An export target: how to turn an event into the target's item (or a skip reason), and send items."""

    format: str = ""
    batch_size: int = 100

    def __init__(self, url: str | None, api_key: str | None, charge_by: ChargeBy) -> None:
        self.url = url.rstrip("/") if url else None
        self.api_key = api_key
        self.charge_by = charge_by

    @property
    def name(self) -> str:
        return f"{self.format}:{self.url or '-'}:{self.charge_by.dimension}"

    def encode(self, event: UsageEvent) -> dict[str, Any] | str:
        """The target's item for ``event``, or a one-line reason to skip it."""
        raise NotImplementedError

    def send(self, items: Sequence[tuple[str, dict[str, Any]]]) -> Sent:
        """Deliver (event id, item) pairs; raises RetryLater or ExportError."""
        raise NotImplementedError

    def missing_dimension(self) -> str:
        how = " (after --map)" if self.charge_by.mapping is not None else ""
        return f"no {self.charge_by.dimension}{how}: the --charge-by dimension"


def post(url: str, body: bytes, headers: Mapping[str, str], timeout: float = 30.0) -> tuple[int, bytes]:
    """POST; (status, body) for 2xx/4xx answers. 429 and 5xx/network errors raise RetryLater (with the
    target's Retry-After or X-RateLimit-Reset when it sends one); 401/403 raise ExportError."""
    req = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        text = exc.read()
        if exc.code == 429 or exc.code >= 500:
            raise RetryLater(retry_after(exc.headers), f"HTTP {exc.code} from {url}") from None
        if exc.code in (401, 403):
            raise ExportError(f"{url} refused the API key (HTTP {exc.code}): {text[:200]!r}") from None
        return int(exc.code), text
    except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException) as exc:
        raise RetryLater(None, f"{url}: {exc}") from None


_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")  # RFC 9110 delay-seconds (1*DIGIT), decimals tolerated


def retry_after(headers: Any, now: float | None = None) -> float | None:
    """Seconds to wait from ``Retry-After`` or, without a usable one, ``X-RateLimit-Reset``; None when neither
    says anything usable (the caller then backs off on its own). Never raises: this is the one place every
    exporter (Lago, OpenMeter, Stripe) reads these headers.

    ``Retry-After`` is, per RFC 9110 (section 10.2.3), delay-seconds or an HTTP-date in any of its three forms
    (IMF-fixdate ``Sun, 06 Nov 1994 08:49:37 GMT``, RFC 850 ``Sunday, 06-Nov-94 08:49:37 GMT``, asctime
    ``Sun Nov  6 08:49:37 1994``; always GMT); a date already past means 0. Anything else (``soon``, a negative
    number, ``inf``) counts as absent. ``X-RateLimit-Reset`` is seconds left, or epoch seconds when > 1e9."""
    if headers is None:
        return None
    now = time.time() if now is None else now
    value = str(headers.get("Retry-After") or "").strip()
    if _SECONDS.fullmatch(value):
        return float(value)
    if value:
        when = http_date(value)
        if when is not None:
            return max(when - now, 0.0)
    reset = str(headers.get("X-RateLimit-Reset") or "").strip()
    if _SECONDS.fullmatch(reset):
        n = float(reset)
        return max(n - now, 0.0) if n > 1e9 else n  # epoch seconds or seconds left
    return None


def http_date(value: str) -> float | None:
    """Epoch seconds of an RFC 9110 HTTP-date (any of its three forms; a date without a zone is GMT), or None."""
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:  # asctime form, or "-0000": HTTP dates are always GMT
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    try:
        return parsed.timestamp()
    except (OverflowError, OSError, ValueError):
        return None


class Pacer:
    """Spaces calls at least ``1 / rate`` seconds apart (``rate`` None or 0: no pacing), so a target's
    requests-per-second limit is never reached by us alone."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate or 0.0
        self._interval = 1.0 / rate if rate else 0.0
        self._next = 0.0

    def wait(self) -> None:
        if not self._interval:
            return
        now = time.monotonic()
        if now < self._next:
            time.sleep(self._next - now)
            now = time.monotonic()
        self._next = now + self._interval
