"""Hard budgets under 50 concurrent requests through the real LiteLLM proxy (the fake provider upstream,
a real collector, budgets in its SQLite file): requests without ``max_tokens`` against a budget worth 10
calls are admitted close to 10 times (the static 256-output-token guess alone admitted 1), and when upstream
usage is far above the guess the overshoot stays within the calls in flight."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from collector_support import ThreadCollector
from gateway_util import cost, id_of, post, wait_for_events, write_config
from meterline.budgets import store as budget_store
from meterline.store import keys as key_store
from meterline.testing import FakeProvider, default_usage
from meterline.testing.proxy import ProxyProcess

BODY_A = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "How many calls does my budget allow?"}]}
USAGE_A = default_usage(BODY_A)
CALL_A = cost("gpt-4o-mini", USAGE_A.input, USAGE_A.output)
BODY_B = {"model": "claude-haiku", "max_tokens": 8000, "messages": [{"role": "user", "content": "Write at length."}]}
BIG_OUTPUT = 5000  # far above the 256-token guess... and below max_tokens, so the static estimate is no bound
CALL_B = cost("claude-3-5-haiku-20241022", default_usage(BODY_B).input, BIG_OUTPUT)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("gateway-concurrency")
    db = root / "events.db"
    with FakeProvider() as fake, ThreadCollector(database=f"sqlite:///{db}") as collector:
        writer = collector.app.state.writer
        ingest_key, _ = key_store.create_key(writer, "ingest", "gateway")
        for team, limit in (("team-a", CALL_A * 10), ("team-b", CALL_B * Decimal("4.5"))):
            budget_store.create_budget(writer, {"name": team, "scope": "team", "scope_value": team, "period": "total",
                                     "limit_usd": str(limit), "thresholds": [100]})  # fmt: skip
        env = {
            "METERLINE_DESTINATION": collector.url,
            "METERLINE_API_KEY": ingest_key,
            "METERLINE_BUDGETS": f"sqlite:///{db}",
            "METERLINE_HOME": str(root / "home"),
            "METERLINE_GATEWAY_KEYS": str(root / "keys.json"),
            "LITELLM_MASTER_KEY": "sk-master-test",
        }
        with ProxyProcess(write_config(root, fake.url), env=env) as proxy:
            yield {"url": proxy.url, "db": db, "fake": fake}


def _burst(url: str, body: dict[str, Any], key: str, n: int = 50) -> list[tuple[int, dict[str, str]]]:
    results: list[tuple[int, dict[str, str]]] = []
    lock = threading.Lock()
    start = threading.Barrier(n)

    def one() -> None:
        start.wait()
        status, headers, _ = post(f"{url}/v1/chat/completions", body, key)
        with lock:
            results.append((status, headers))

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def test_budget_worth_10_calls_admits_close_to_10_of_50_concurrent(gateway: dict[str, Any]) -> None:
    gateway["fake"].delay(0.05)  # the calls overlap
    results = _burst(gateway["url"], BODY_A, "sk-a-1")
    statuses = [s for s, _ in results]
    assert set(statuses) <= {200, 429} and len(statuses) == 50
    admitted = [h for s, h in results if s == 200]
    assert 8 <= len(admitted) <= 11, statuses
    events = wait_for_events(gateway["db"], [id_of(h) for h in admitted])
    spent = sum((events[id_of(h)].total_cost or Decimal(0)) for h in admitted)
    assert spent == CALL_A * len(admitted)
    assert spent - CALL_A * 10 <= CALL_A  # overshoot: at most the one call the rule lets in at the limit


def test_usage_far_above_the_guess_overshoots_by_at_most_the_calls_in_flight(gateway: dict[str, Any]) -> None:
    gateway["fake"].delay(0.05)
    gateway["fake"].set_usage(output=BIG_OUTPUT)
    try:
        results = _burst(gateway["url"], BODY_B, "sk-b-1")
    finally:
        gateway["fake"].set_usage()
    statuses = [s for s, _ in results]
    assert set(statuses) <= {200, 429} and len(statuses) == 50
    admitted = [h for s, h in results if s == 200]
    # the budget is worth 4.5 calls: 5 admitted (the 5th with half a call left), never the dozens the
    # static guess let through
    assert 4 <= len(admitted) <= 6, statuses
    events = wait_for_events(gateway["db"], [id_of(h) for h in admitted])
    spent = sum((events[id_of(h)].total_cost or Decimal(0)) for h in admitted)
    assert spent == CALL_B * len(admitted)
    assert spent - CALL_B * Decimal("4.5") <= CALL_B * 2
