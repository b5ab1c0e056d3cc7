"""End to end: a hard budget enforced by the real LiteLLM proxy, alerts once per threshold.

The proxy sends its events to a real collector (uvicorn, SQLite) over HTTP and reads budgets from the
collector's database, where the budget was created with the CLI. The request that finds the budget spent
is answered 429 naming it. Both the gateway (after each call settles) and the collector (after each
ingest) check thresholds, so the webhook receiver also shows that two processes never send one alert twice.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from collector_support import ThreadCollector
from gateway_util import WebhookReceiver, cost, id_of, post, wait_for_events, write_config
from meterline.store import keys as key_store
from meterline.testing import FakeProvider, default_usage
from meterline.testing.proxy import ProxyProcess

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "What does this budget allow?"}]}
USAGE = default_usage(BODY)
CALL = cost("gpt-4o-mini", USAGE.input, USAGE.output)  # exact USD of one call
LIMIT = CALL * Decimal("2.5")  # calls 1-3 are admitted (spend before them < limit), call 4 is not


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("gateway-budgets")
    db = root / "events.db"
    with FakeProvider() as fake, WebhookReceiver() as hook, ThreadCollector(database=f"sqlite:///{db}") as collector:
        ingest_key, _ = key_store.create_key(collector.app.state.writer, "ingest", "gateway")
        config = write_config(root, fake.url)
        create = [
            sys.executable, "-m", "meterline", "budgets", "create", "--database", f"sqlite:///{db}",
            "--name", "team-a-total", "--scope", "team", "--value", "team-a", "--period", "total",
            "--limit", str(LIMIT), "--thresholds", "50,80,100", "--webhook", hook.url,
        ]  # fmt: skip
        out = subprocess.run(create, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        env = {
            "METERLINE_DESTINATION": collector.url,
            "METERLINE_API_KEY": ingest_key,
            "METERLINE_BUDGETS": f"sqlite:///{db}",
            "METERLINE_HOME": str(root / "home"),
            "METERLINE_GATEWAY_KEYS": str(root / "keys.json"),
            "LITELLM_MASTER_KEY": "sk-master-test",
        }
        with ProxyProcess(config, env=env) as proxy:
            yield {"url": proxy.url, "db": db, "hook": hook}


def test_hard_budget_rejects_with_429_and_alerts_once_per_threshold(gateway: dict[str, Any]) -> None:
    url, db, hook = gateway["url"], gateway["db"], gateway["hook"]
    ids = []
    for n in range(1, 4):
        status, headers, body = post(f"{url}/v1/chat/completions", BODY, "sk-a-1")
        assert status == 200, (n, body)
        ids.append(id_of(headers))
        wait_for_events(db, ids)  # settled: the next admission sees this call's real cost
    events = wait_for_events(db, ids)
    assert sum((events[i].total_cost or Decimal(0)) for i in ids) == CALL * 3

    status, _, body = post(f"{url}/v1/chat/completions", BODY, "sk-a-1")
    assert status == 429
    message = json.loads(body)["error"]["message"]
    assert "team-a-total" in message and "exceeded" in message

    # another team is not limited by team-a's budget
    status, headers, _ = post(f"{url}/v1/chat/completions", BODY, "sk-b-1")
    assert status == 200

    assert hook.thresholds(3) == [50, 80, 100]
    time.sleep(1.5)  # nothing else may arrive
    assert hook.thresholds(3) == [50, 80, 100]
    by_threshold = {a["threshold_percent"]: a for a in hook.received}
    assert Decimal(by_threshold[50]["spend_usd"]) == CALL * 2  # 80 % reached by the 2nd call too
    assert Decimal(by_threshold[100]["spend_usd"]) == CALL * 3
    assert by_threshold[100]["budget"]["name"] == "team-a-total"

    # the rejected call is not metered (no provider call was made); the others are, once each
    events = wait_for_events(db, [*ids, id_of(headers)])
    assert len(events) == 4
