"""Budgets: validation, spend from stored events, alerts once per threshold and period (SQLite and
PostgreSQL, through the collector API), and the gateway enforcer's reserve/settle under concurrency
(in-process counters and Redis shared by two enforcers)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from collector_support import ThreadCollector, request, wire_event
from conftest import TEST_REDIS_PREFIX, TEST_REDIS_URL
from gateway_util import WebhookReceiver
from meterline.budgets import store as budget_store
from meterline.core.event import UsageEvent
from meterline.gateway.counters import Counters, LocalCounters, RedisCounters
from meterline.gateway.enforcer import BudgetExceeded, Enforcer
from meterline.store import keys as key_store
from meterline.store.backend import open_stores


@pytest.fixture
def database(any_database: str) -> str:
    """Every event store, ClickHouse included: what this module checks, all of them must do."""
    return any_database


MTOK = Decimal(10) ** 6
IN, OUT = Decimal("0.15") / MTOK, Decimal("0.60") / MTOK  # gpt-4o-mini


@pytest.fixture
def store(database: str) -> Iterator[Any]:
    writer, reader = open_stores(database, pool_size=2)
    yield writer
    writer.close()
    if reader is not writer:
        reader.close()


def _budget(**kw: Any) -> dict[str, Any]:
    return {"name": "team-a", "scope": "team", "scope_value": "team-a", "period": "monthly", "limit_usd": "1.00"} | kw


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": ""}, "name"),
        ({"scope": "planet"}, "scope"),
        ({"scope_value": ""}, "scope_value"),
        ({"period": "hourly"}, "period"),
        ({"limit_usd": 0.5}, "limit_usd"),
        ({"limit_usd": "-1"}, "limit_usd"),
        ({"limit_usd": "ten"}, "limit_usd"),
        ({"thresholds": [50, "x"]}, "thresholds"),
        ({"hard": "yes"}, "hard"),
        ({"webhook_url": "ftp://x"}, "webhook_url"),
    ],
)
def test_bad_budget_fields_are_named(change: dict[str, Any], field: str) -> None:
    with pytest.raises(budget_store.BudgetError) as err:
        budget_store.validate(_budget(**change))
    assert err.value.field == field


def test_periods_start_in_utc() -> None:
    now = datetime(2026, 11, 19, 15, 30, tzinfo=timezone.utc)  # a Thursday
    assert budget_store.period_start("daily", now) == datetime(2026, 11, 19, tzinfo=timezone.utc)
    assert budget_store.period_start("weekly", now) == datetime(2026, 11, 16, tzinfo=timezone.utc)
    assert budget_store.period_start("monthly", now) == datetime(2026, 11, 1, tzinfo=timezone.utc)
    assert budget_store.period_start("total", now).year == 1970


def _event(team: str, cost: str, when: datetime, **kw: Any) -> UsageEvent:
    return UsageEvent(
        provider="openai", model="gpt-4o-mini", start_time=when, team_id=team, total_cost=Decimal(cost), **kw
    )


def test_spend_counts_only_the_scope_and_period_and_alerts_are_claimed_once(database: str, store: Any) -> None:
    now = datetime.now(timezone.utc)
    last_month = budget_store.period_start("monthly", now) - timedelta(days=2)
    store.insert(
        [
            _event("team-a", "0.000123456789", now),
            _event("team-a", "0.1", now),
            _event("team-b", "5", now),
            _event("team-a", "7", last_month),
        ]
    )
    team = budget_store.create_budget(store, _budget(limit_usd="0.5"))
    key = budget_store.create_budget(store, _budget(name="key", scope="api_key", scope_value="app-a", period="total"))
    store.insert([_event("team-a", "0.2", now, api_key_alias="app-a")])
    assert budget_store.spend(store, team) == Decimal("0.300123456789")
    assert budget_store.spend(store, key) == Decimal("0.2")
    with pytest.raises(budget_store.BudgetError, match="already exists"):
        budget_store.create_budget(store, _budget())

    period = team.period_start()
    assert budget_store.claim_alert(store, team, period, 50, Decimal("0.3"))
    assert not budget_store.claim_alert(store, team, period, 50, Decimal("0.3"))
    other, other_reader = open_stores(database, pool_size=1)  # a second replica on the same database
    try:
        assert not budget_store.claim_alert(other, team, period, 50, Decimal("0.3"))
        assert budget_store.claim_alert(other, team, period, 80, Decimal("0.4"))
    finally:
        other.close()
        if other_reader is not other:
            other_reader.close()
    assert budget_store.fired_alerts(store, team, period) == [50, 80]
    assert [b.name for b in budget_store.list_budgets(store)] == ["key", "team-a"]
    assert budget_store.delete_budget(store, "team-a") and not budget_store.delete_budget(store, "team-a")
    assert [b.name for b in budget_store.list_budgets(store)] == ["key"]


def test_collector_api_fires_each_threshold_once_per_period(database: str) -> None:
    cost = IN * 1000 + OUT * 100  # one wire_event
    with WebhookReceiver() as hook:
        with ThreadCollector(database=database) as c:
            admin, _ = key_store.create_key(c.app.state.writer, "admin", "a")
            ingest, _ = key_store.create_key(c.app.state.writer, "ingest", "i")
            status, body = request(c.url + "/v1/budgets", "POST", _budget(period="hourly"), key=admin)
            assert status == 400 and "period" in body["detail"]
            status, body = request(c.url + "/v1/budgets", "POST", _budget(), key=ingest)
            assert status == 403
            limit = cost * 4
            status, body = request(
                c.url + "/v1/budgets", "POST", _budget(limit_usd=str(limit), webhook_url=hook.url), key=admin
            )
            assert status == 201, body

            def send(n: int) -> None:
                now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                events = [wire_event(team_id="team-a", start_time=now) for _ in range(n)]
                status, _ = request(c.url + "/v1/events", "POST", {"events": events}, key=ingest)
                assert status == 200

            send(1)  # 25 %
            send(1)  # 50 %
            assert hook.thresholds(1) == [50]
            send(2)  # 100 %: 80 and 100 at once
            assert hook.thresholds(3) == [50, 80, 100]
            status, st = request(c.url + "/v1/budgets/team-a", key=admin)
            assert status == 200
            assert Decimal(st["spend_usd"]) == cost * 4 and st["exceeded"] is True
            assert st["alerts_fired"] == [50, 80, 100]
        with ThreadCollector(database=database) as c2:  # restart: nothing is sent again
            ingest2, _ = key_store.create_key(c2.app.state.writer, "ingest", "i2")
            now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            status, _ = request(
                c2.url + "/v1/events", "POST", {"events": [wire_event(team_id="team-a", start_time=now)]}, key=ingest2
            )
            assert status == 200
            time.sleep(1.0)
        assert hook.thresholds(3) == [50, 80, 100]
        alert = hook.received[0]
        assert alert["budget"]["name"] == "team-a" and Decimal(alert["limit_usd"]) == cost * 4
        assert Decimal(alert["spend_usd"]) == cost * 2


# -- the gateway enforcer ----------------------------------------------------------------------------
def _redis_counters() -> RedisCounters:
    pytest.importorskip("redis")
    import redis

    try:
        redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis at 127.0.0.1:6379 is unavailable: {exc}")
    return RedisCounters(TEST_REDIS_URL, prefix=f"{TEST_REDIS_PREFIX}{uuid.uuid4().hex}")


def _priced_call(tokens: int) -> UsageEvent:
    return UsageEvent(
        provider="openai", model="gpt-4o-mini", start_time=datetime.now(timezone.utc), input_tokens=tokens
    )


@pytest.mark.parametrize("kind", ["local", "redis"])
def test_enforcer_never_admits_past_a_hard_limit_under_concurrency(kind: str, tmp_path: Path) -> None:
    store, reader = open_stores(f"sqlite:///{tmp_path / 'e.db'}")
    reader.close()
    budget = budget_store.create_budget(
        store, _budget(limit_usd="1.00", thresholds=[50, 80, 100], webhook_url="http://x/h")
    )
    sent: list[tuple[str, int]] = []
    counters: Counters = LocalCounters() if kind == "local" else _redis_counters()

    async def scenario() -> tuple[list[bool], int]:
        enforcer = Enforcer(
            store,
            counters,
            default_reserve_usd=Decimal("0.30"),
            send=lambda u, p: sent.append((u, p["threshold_percent"])),
        )
        ident = {"team_id": "team-a"}

        async def one(i: int) -> bool:
            try:
                await enforcer.admit(f"c{i}", ident, {"model": "x"})
            except BudgetExceeded:
                return False
            await asyncio.sleep(0.01)  # in flight together
            await enforcer.settle(f"c{i}", _priced_call(2_000_000))  # $0.30 each
            return True

        admitted = await asyncio.gather(*(one(i) for i in range(8)))
        # an unrelated team is not limited
        await enforcer.admit("other", {"team_id": "team-b"}, {"model": "x"})
        await enforcer.release("other")
        rejected_msg = ""
        try:
            await enforcer.admit("late", ident, {"model": "x"})
        except BudgetExceeded as exc:
            rejected_msg = str(exc)
        assert "'team-a' exceeded" in rejected_msg and "1.2 of 1 USD" in rejected_msg
        spent = await counters.get(f"budget:{budget.id}:{_micros(budget)}:spent")
        held = await counters.get(f"budget:{budget.id}:{_micros(budget)}:held")
        assert held == 0
        await asyncio.sleep(0.5)  # alert threads
        await counters.close()
        return admitted, spent

    admitted, spent = asyncio.run(scenario())
    # admitted while spend + estimates of calls in flight < $1: at most 4 of $0.30
    assert admitted.count(True) == 4
    assert spent == 4 * 300_000_000_000
    assert sorted(t for _, t in sent) == [50, 80, 100]
    assert budget_store.fired_alerts(store, budget, budget.period_start()) == [50, 80, 100]
    store.close()


def _micros(budget: budget_store.Budget) -> int:
    from meterline.core.timeutil import to_micros

    return to_micros(budget.period_start())


def test_two_gateway_processes_share_spend_through_redis(tmp_path: Path) -> None:
    store, reader = open_stores(f"sqlite:///{tmp_path / 'e.db'}")
    reader.close()
    budget_store.create_budget(store, _budget(limit_usd="0.50", thresholds=[100]))
    first, second = _redis_counters(), _redis_counters()
    second.prefix = first.prefix  # same namespace, two connections: two proxy processes

    async def scenario() -> str:
        a = Enforcer(store, first, default_reserve_usd=Decimal("0.01"), send=lambda u, p: None)
        b = Enforcer(store, second, default_reserve_usd=Decimal("0.01"), send=lambda u, p: None)
        await a.admit("1", {"team_id": "team-a"}, {})
        await a.settle("1", _priced_call(4_000_000))  # $0.60 spent through process A
        try:
            await b.admit("2", {"team_id": "team-a"}, {})
        except BudgetExceeded as exc:
            return str(exc)
        finally:
            await first.close()
            await second.close()
        return "admitted"

    assert "budget 'team-a' exceeded" in asyncio.run(scenario())
    store.close()


def test_holds_of_calls_that_never_settle_are_released(tmp_path: Path) -> None:
    store, reader = open_stores(f"sqlite:///{tmp_path / 'e.db'}")
    reader.close()
    budget = budget_store.create_budget(store, _budget(limit_usd="1.00"))
    counters = LocalCounters()

    async def scenario() -> tuple[int, int]:
        enforcer = Enforcer(store, counters, default_reserve_usd=Decimal("0.40"), hold_ttl_s=0.2)
        await enforcer.admit("abandoned-stream", {"team_id": "team-a"}, {})
        held_before = await counters.get(f"budget:{budget.id}:{_micros(budget)}:held")
        await asyncio.sleep(0.3)
        await enforcer.admit("next", {"team_id": "team-a"}, {})  # sweeps the stale hold
        return held_before, await counters.get(f"budget:{budget.id}:{_micros(budget)}:held")

    held_before, held_after = asyncio.run(scenario())
    assert held_before == 400_000_000_000
    assert held_after == 400_000_000_000  # only "next" is still held
    store.close()


def test_budgets_cli_against_a_collector(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from meterline.cli import main

    with ThreadCollector(database=f"sqlite:///{tmp_path / 'c.db'}") as c:
        admin, _ = key_store.create_key(c.app.state.writer, "admin", "a")
        base = ["--database", c.url, "--api-key", admin]
        create = ["budgets", "create", *base, "--name", "acme", "--scope", "organization", "--value", "acme"]
        assert main([*create, "--limit", "12.5", "--period", "daily", "--soft"]) == 0
        assert main([*create, "--limit", "0.1"]) == 2
        assert "already exists" in capsys.readouterr().err
        c.app.state.writer.insert([_event("t", "2.5", datetime.now(timezone.utc), organization_id="acme")])
        assert main(["budgets", "status", *base, "--json"]) == 0
        [status] = json.loads(capsys.readouterr().out)
        assert (status["name"], status["spend_usd"], status["percent_used"], status["hard"]) == (
            "acme",
            "2.5",
            20.0,
            False,
        )
        assert main(["budgets", "delete", *base, "acme"]) == 0
        assert main(["budgets", "delete", *base, "acme"]) == 1
        assert main(["budgets", "list", *base, "--json"]) == 0
        assert json.loads(capsys.readouterr().out) == []


def test_gateway_reads_budgets_from_a_collector_with_its_ingest_key(tmp_path: Path) -> None:
    from meterline.gateway.budget_source import CollectorBudgets

    with ThreadCollector(database=f"sqlite:///{tmp_path / 'c.db'}") as c:
        writer = c.app.state.writer
        ingest, _ = key_store.create_key(writer, "ingest", "gateway")
        read, _ = key_store.create_key(writer, "read", "dash")
        budget_store.create_budget(
            writer, _budget(limit_usd="0.5", webhook_url="https://hooks.example.com/secret-token")
        )
        writer.insert([_event("team-a", "0.6", datetime.now(timezone.utc))])
        status, rows = request(c.url + "/v1/budgets/check", key=ingest)
        assert status == 200 and rows[0]["webhook_url"] is None and rows[0]["spend_usd"] == "0.6"
        assert request(c.url + "/v1/budgets/check", key=read)[0] == 403

        async def scenario() -> str:
            enforcer = Enforcer(CollectorBudgets(c.url, ingest), LocalCounters())
            await enforcer.admit("b", {"team_id": "team-b"}, {})
            try:
                await enforcer.admit("a", {"team_id": "team-a"}, {})
            except BudgetExceeded as exc:
                return str(exc)
            return "admitted"

        assert "budget 'team-a' exceeded: team 'team-a' spent 0.6 of 0.5 USD" in asyncio.run(scenario())


def test_an_unreachable_budget_source_does_not_block_calls(caplog: pytest.LogCaptureFixture) -> None:
    from meterline.gateway.budget_source import CollectorBudgets
    from meterline.testing.proxy import free_port

    enforcer = Enforcer(CollectorBudgets(f"http://127.0.0.1:{free_port()}", "k", timeout=0.5), LocalCounters())

    async def scenario() -> list[budget_store.Budget]:
        await enforcer.admit("c", {"team_id": "team-a"}, {})  # admitted: no budget known
        return await enforcer.budgets()  # not re-read before refresh_s

    assert asyncio.run(scenario()) == []
    assert "reading budgets failed" in caplog.text
