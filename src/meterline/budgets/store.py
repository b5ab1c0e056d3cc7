"""Budgets: definitions, spend per period from stored events, and alert claims (SQLite and PostgreSQL).

A budget caps the spend of one scope (organization, team, api_key, subscriber or product) per period
(daily, weekly, monthly or total, UTC; weeks start on Monday). ``limit_usd`` is a Decimal; thresholds are
percentages of it (default 50/80/100). ``hard`` budgets are enforced by the gateway (HTTP 429); soft ones
only alert. An alert is *claimed* in ``budget_alerts`` (unique per budget, period and threshold) before its
webhook is sent, so a restart or a second collector replica never sends it again.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from meterline.core.timeutil import to_micros
from meterline.store import query as queries
from meterline.store import rollup as rollups
from meterline.store.base import ReportStore
from meterline.store.base import SQLStore as SQLStore  # its home is store.base; importable here as before
from meterline.store.extensions import register_tables
from meterline.store.schema import PICO, join_split, split_sum_sql
from meterline.store.sql import sql

TABLE = "budgets"
ALERTS = "budget_alerts"
SCOPES = {
    "organization": ("organization_id",),
    "team": ("team_id",),
    "api_key": ("api_key_hash", "api_key_alias"),  # the key's hash or its alias
    "subscriber": ("subscriber_id",),
    "product": ("product_id",),
}
PERIODS = ("daily", "weekly", "monthly", "total")
DEFAULT_THRESHOLDS = (50, 80, 100)
MAX_LIMIT_USD = Decimal(10) ** 12  # a budget limit; its pico-dollars still fit the counters' arithmetic
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class BudgetError(ValueError):
    """A budget field has a bad value; ``field`` names it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class Budget:
    id: str
    name: str
    scope: str
    scope_value: str
    period: str
    limit_usd: Decimal
    thresholds: tuple[int, ...] = DEFAULT_THRESHOLDS
    hard: bool = True
    webhook_url: str | None = None
    created_at: float = 0.0

    @property
    def limit_pico(self) -> int:
        return int(self.limit_usd * PICO)

    def period_start(self, now: datetime | None = None) -> datetime:
        return period_start(self.period, now or datetime.now(timezone.utc))

    def matches(self, identity: Mapping[str, Any]) -> bool:
        """Whether a call with this identity (event field -> value) counts against the budget."""
        return any(identity.get(field) == self.scope_value for field in SCOPES[self.scope])

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "scope": self.scope,
            "scope_value": self.scope_value,
            "period": self.period,
            "limit_usd": str(self.limit_usd),
            "thresholds": list(self.thresholds),
            "hard": self.hard,
            "webhook_url": self.webhook_url,
            "created_at": self.created_at,
        }


def _text_ok(text: str) -> bool:
    """Text every store can hold: no NUL, no lone surrogate."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def period_start(period: str, now: datetime) -> datetime:
    now = now.astimezone(timezone.utc)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "daily":
        return day
    if period == "weekly":
        return day - timedelta(days=day.weekday())
    if period == "monthly":
        return day.replace(day=1)
    if period == "total":
        return _EPOCH
    raise BudgetError("period", f"must be one of {', '.join(PERIODS)}; got {period!r}")


def validate(data: Mapping[str, Any]) -> Budget:
    """A new budget from user input; raises :class:`BudgetError` naming the bad field."""
    name = data.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise BudgetError("name", "required: 1-128 letters, digits, _ . : - (starting with a letter or digit)")
    scope = data.get("scope")
    if scope not in SCOPES:
        raise BudgetError("scope", f"must be one of {', '.join(SCOPES)}; got {scope!r}")
    value = data.get("scope_value")
    if not isinstance(value, str) or not value or len(value) > 1024 or not _text_ok(value):
        raise BudgetError("scope_value", f"required: the {scope} this budget applies to (text without NUL)")
    period = data.get("period", "monthly")
    if period not in PERIODS:
        raise BudgetError("period", f"must be one of {', '.join(PERIODS)}; got {period!r}")
    raw_limit = data.get("limit_usd")
    if isinstance(raw_limit, (float, bool)) or raw_limit is None:
        raise BudgetError("limit_usd", 'required, a decimal string such as "100.00" (not a float)')
    try:
        limit = Decimal(str(raw_limit)[:64])
    except (InvalidOperation, ValueError):
        raise BudgetError("limit_usd", f"not a decimal number: {str(raw_limit)[:64]!r}") from None
    if not limit.is_finite() or limit <= 0:
        raise BudgetError("limit_usd", "must be a positive amount")
    if limit > MAX_LIMIT_USD:
        raise BudgetError("limit_usd", f"at most {MAX_LIMIT_USD} USD")
    if limit != limit.quantize(Decimal("1e-12")):
        raise BudgetError("limit_usd", "at most 12 decimal places")
    raw_t = data.get("thresholds", DEFAULT_THRESHOLDS)
    if isinstance(raw_t, str):
        raw_t = [t for t in raw_t.replace(" ", "").split(",") if t]
    try:
        if len(raw_t) > 20:
            raise ValueError("too many")
        thresholds = tuple(sorted({int(t) for t in raw_t}))
    except (TypeError, ValueError, OverflowError):
        raise BudgetError("thresholds", f"a list of whole percentages such as [50, 80, 100]; got {raw_t!r}") from None
    if any(t <= 0 or t > 1000 for t in thresholds):
        raise BudgetError("thresholds", "percentages must be between 1 and 1000")
    hard = data.get("hard", True)
    if not isinstance(hard, bool):
        raise BudgetError("hard", "must be true or false")
    webhook = data.get("webhook_url")
    if webhook is not None and (
        not isinstance(webhook, str)
        or not webhook.startswith(("http://", "https://"))
        or len(webhook) > 2048
        or not _text_ok(webhook)
    ):
        raise BudgetError("webhook_url", "must be an http(s) URL of at most 2048 characters")
    return Budget(
        id=str(uuid.uuid4()),
        name=name,
        scope=str(scope),
        scope_value=value,
        period=str(period),
        limit_usd=limit,
        thresholds=thresholds,
        hard=hard,
        webhook_url=webhook,
        created_at=time.time(),
    )


def _tables(dialect: str) -> list[str]:
    real = "DOUBLE PRECISION" if dialect == "postgresql" else "REAL"
    big = "BIGINT" if dialect == "postgresql" else "INTEGER"
    return [
        f"CREATE TABLE IF NOT EXISTS {TABLE} (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, scope TEXT NOT NULL, "
        f"scope_value TEXT NOT NULL, period TEXT NOT NULL, limit_usd TEXT NOT NULL, thresholds TEXT NOT NULL, "
        f"hard {big} NOT NULL, webhook_url TEXT, created_at {real} NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS {ALERTS} (budget_id TEXT NOT NULL, period_start {big} NOT NULL, "
        f"threshold {big} NOT NULL, spend_usd TEXT NOT NULL, fired_at {real} NOT NULL, "
        "PRIMARY KEY (budget_id, period_start, threshold))",
    ]


register_tables("budgets", _tables)

_COLS = "id, name, scope, scope_value, period, limit_usd, thresholds, hard, webhook_url, created_at"


def _row(r: Sequence[Any]) -> Budget:
    return Budget(
        id=r[0],
        name=r[1],
        scope=r[2],
        scope_value=r[3],
        period=r[4],
        limit_usd=Decimal(r[5]),
        thresholds=tuple(json.loads(r[6])),
        hard=bool(r[7]),
        webhook_url=r[8],
        created_at=float(r[9]),
    )


def create_budget(store: SQLStore, data: Mapping[str, Any]) -> Budget:
    b = validate(data)
    if get_budget(store, b.name) is not None:
        raise BudgetError("name", f"a budget named {b.name!r} already exists")
    store.execute(
        sql(store.dialect, f"INSERT INTO {TABLE} ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
        (b.id, b.name, b.scope, b.scope_value, b.period, str(b.limit_usd), json.dumps(list(b.thresholds)),
         int(b.hard), b.webhook_url, b.created_at),
    )  # fmt: skip
    return b


def list_budgets(store: SQLStore) -> list[Budget]:
    return [_row(r) for r in store.fetch(f"SELECT {_COLS} FROM {TABLE} ORDER BY name")]


def get_budget(store: SQLStore, id_or_name: str) -> Budget | None:
    rows = store.fetch(sql(store.dialect, f"SELECT {_COLS} FROM {TABLE} WHERE id = ? OR name = ?"), (id_or_name,) * 2)
    return _row(rows[0]) if rows else None


def delete_budget(store: SQLStore, id_or_name: str) -> bool:
    b = get_budget(store, id_or_name)
    if b is None:
        return False
    store.execute(sql(store.dialect, f"DELETE FROM {ALERTS} WHERE budget_id = ?"), (b.id,))
    store.execute(sql(store.dialect, f"DELETE FROM {TABLE} WHERE id = ?"), (b.id,))
    return True


def spend(store: SQLStore, budget: Budget, now: datetime | None = None) -> Decimal:
    """USD spent in the budget's current period, from stored events (exact: costs are integer pico-USD)."""
    fields = SCOPES[budget.scope]
    match = " OR ".join(f"{f} = ?" for f in fields)
    rows = store.fetch(
        sql(store.dialect, f"SELECT {split_sum_sql('total_cost')} FROM events WHERE ({match}) AND start_time >= ?"),
        (*([budget.scope_value] * len(fields)), to_micros(budget.period_start(now))),
    )
    return Decimal(join_split(rows[0][0], rows[0][1]) or 0) / PICO


def claim_alert(store: SQLStore, budget: Budget, period: datetime, threshold: int, spend_usd: Decimal) -> bool:
    """Record that ``threshold`` fired for this budget and period; False when it already had (anywhere)."""
    changed = store.execute(
        sql(
            store.dialect,
            f"INSERT INTO {ALERTS} (budget_id, period_start, threshold, spend_usd, fired_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
        ),
        (budget.id, to_micros(period), threshold, str(spend_usd), time.time()),
    )
    return changed == 1


def fired_alerts(store: SQLStore, budget: Budget, period: datetime) -> list[int]:
    rows = store.fetch(
        sql(store.dialect, f"SELECT threshold FROM {ALERTS} WHERE budget_id = ? AND period_start = ? ORDER BY 1"),
        (budget.id, to_micros(period)),
    )
    return [int(r[0]) for r in rows]


def status(store: SQLStore, budget: Budget, now: datetime | None = None) -> dict[str, Any]:
    """A budget with its spend in the current period (the collector's and ``meterline budgets list``'s view)."""
    from meterline.core.event import format_cost

    now = now or datetime.now(timezone.utc)
    start = budget.period_start(now)
    spent = spend(store, budget, now)
    return {
        **budget.to_dict(),
        "period_start": start.isoformat().replace("+00:00", "Z"),
        "spend_usd": format_cost(spent),
        "remaining_usd": format_cost(max(budget.limit_usd - spent, budget.limit_usd * 0)),
        "percent_used": float(spent * 100 / budget.limit_usd),
        "exceeded": spent >= budget.limit_usd,
        "alerts_fired": fired_alerts(store, budget, start),
    }


_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


# -- the dashboard's figure ------------------------------------------------------------------------------------
def dashboard_spend(store: ReportStore, budget: Budget, now: datetime) -> Decimal:
    """The same number as :func:`spend`, through ``store.usage`` (so the daily rollup
    answers when the budget's field is rolled up: periods start at UTC midnight), else from events. An
    ``api_key`` budget whose value is not a sha256 hex digest counts the events with that key alias (the rollup
    has aliases, not hashes); one on a hash scans the period's events."""
    fields = SCOPES[budget.scope]
    if budget.scope == "api_key" and not _SHA256_HEX.match(budget.scope_value):
        fields = ("api_key_alias",)  # key hashes are sha256 hex: any other value names the key's alias
    if len(fields) == 1 and fields[0] in rollups.ROLLUP_DIMS:
        q = queries.UsageQuery(filters={fields[0]: [budget.scope_value]}, start=budget.period_start(now))
        rows = store.usage(q)
        return Decimal(rows[0]["total_cost"]) if rows else Decimal(0)
    return spend(store, budget, now)
