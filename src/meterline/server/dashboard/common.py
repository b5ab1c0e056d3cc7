"""What every dashboard page shares: the template environment, time ranges, number formats, rendering."""

from __future__ import annotations

import dataclasses
import time
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from meterline.core.event import DIMENSIONS, format_cost
from meterline.core.timeutil import parse_zone
from meterline.server.dashboard import auth
from meterline.store.query import QueryError

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
RANGES = {"1d": 1, "7d": 7, "30d": 30, "90d": 90}
DEFAULT_RANGE = "30d"
PAGE_SIZE = 50
# Content-Security-Policy: scripts only from this origin (no inline script), nothing framed, no plug-ins
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # a share link's token never leaks through Referer
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


@dataclasses.dataclass(frozen=True)
class TimeRange:
    """Whole local days: [start, end) in ``tz``, and the period just before it of the same length."""

    key: str  # 1d | 7d | 30d | 90d | custom
    start: datetime
    end: datetime
    tz: str
    first_day: date
    last_day: date

    @property
    def previous(self) -> tuple[datetime, datetime]:
        return self.start - (self.end - self.start), self.start

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    def params(self) -> dict[str, str]:
        out = {"range": self.key, "tz": self.tz}
        if self.key == "custom":
            out |= {"from": self.first_day.isoformat(), "to": self.last_day.isoformat()}
        return out


def zone(tz: str) -> ZoneInfo:
    found = parse_zone(tz)
    if found is None:
        raise QueryError(f"tz: unknown time zone {tz[:100]!r}")
    return found


def time_range(request: Request, *, default: str = DEFAULT_RANGE, now: datetime | None = None) -> TimeRange:
    qp = request.query_params
    tz = (qp.get("tz") or "UTC").strip()
    z = zone(tz)
    today = (now or datetime.now(timezone.utc)).astimezone(z).date()
    key = qp.get("range") or default
    if key == "custom" or (qp.get("from") and key not in RANGES):
        key = "custom"
        try:
            first = date.fromisoformat(qp.get("from") or today.isoformat())
            last = date.fromisoformat(qp.get("to") or today.isoformat())
        except ValueError:
            raise QueryError("from/to: dates must be YYYY-MM-DD") from None
        if last < first:
            raise QueryError("to: must not be before from")
        if (last - first).days > 3660:
            raise QueryError("from/to: at most ten years")
    elif key in RANGES:
        last = today
        first = today - timedelta(days=RANGES[key] - 1)
    else:
        raise QueryError(f"range: one of {', '.join(RANGES)} or custom; got {key!r}")
    start = datetime.combine(first, datetime.min.time(), z)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), z)
    return TimeRange(key, start, end, tz, first, last)


def filters_from(request: Request) -> dict[str, list[str]]:
    """Dimension filters from the query string; empty values (an unused form field) are ignored."""
    out: dict[str, list[str]] = {}
    for name in request.query_params:
        if name in DIMENSIONS:
            values = [v for v in request.query_params.getlist(name) if v != ""]
            if values:
                out[name] = values
    return out


# -- number formats --------------------------------------------------------------------------------
def money(value: Decimal | None, places: int = 2) -> str:
    if value is None:
        return "—"
    if value != 0 and abs(value) < Decimal("0.01"):
        places = 6  # small amounts stay visible
    q = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return f"${q:,.{places}f}"


def exact(value: Decimal | None) -> str:
    return "" if value is None else format_cost(value)


def number(value: int | float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,}" if isinstance(value, int) else f"{value:,.1f}"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def change(current: Decimal | int | float, previous: Decimal | int | float) -> str:
    """ "+12.0%" against the previous period ("new" when it was zero)."""
    if not previous:
        return "new" if current else "±0%"
    delta = (float(current) - float(previous)) / float(previous) * 100
    return f"{delta:+.1f}%"


def local_time(value: datetime | None, tz: str = "UTC") -> str:
    if value is None:
        return "—"
    return value.astimezone(zone(tz)).strftime("%Y-%m-%d %H:%M:%S")


def query_string(params: dict[str, Any], **changes: Any) -> str:
    merged = {**params, **changes}
    pairs: list[tuple[str, str]] = []
    for k, v in merged.items():
        if v is None or v == "" or v == []:
            continue
        for item in v if isinstance(v, (list, tuple)) else [v]:
            pairs.append((k, str(item)))
    return urlencode(pairs)


templates.env.filters.update(money=money, exact=exact, number=number, percent=percent, local_time=local_time)
templates.env.globals.update(query_string=query_string, change=change, dimensions=DIMENSIONS)


def render(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    session = auth.session_of(request)
    started = getattr(request.state, "dashboard_started", None)
    ctx = {
        "session": session,
        "csrf": auth.csrf_token(auth.secret_of(request), session.nonce) if session else "",
        "auth_enabled": request.app.state.settings.auth,
        **context,
    }
    response = templates.TemplateResponse(request, name, ctx, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    if started is not None:
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
    return response


def start_timer(request: Request) -> None:
    """Pages call this first, so ``Server-Timing`` reports the time spent answering them."""
    request.state.dashboard_started = time.perf_counter()
