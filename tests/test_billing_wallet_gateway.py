"""Prepaid wallets enforced by the gateway: the wallet guard under concurrency (in-process), and the real
LiteLLM proxy refusing a customer whose wallet ran out (HTTP 402 naming the wallet) while traffic flows.

The customer is the key alias (customer dimension ``api_key_alias``); its plan bills 100 USD per 1M
tokens, so one call's charge is (input + output tokens) x 100 / 1M, exactly.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway_util import id_of, post, wait_for_events, write_config
from meterline.billing import service as svc
from meterline.billing import store as billing_store
from meterline.billing.model import parse_customer
from meterline.core.event import UsageEvent
from meterline.gateway.counters import LocalCounters
from meterline.gateway.wallets import WalletExhausted, WalletGuard
from meterline.store.sqlite import SQLiteStore
from meterline.testing import FakeProvider, default_usage
from meterline.testing.proxy import ProxyProcess

PER_MTOK = Decimal(100)
RULES = [{"model": "*", "prices": {"input": str(PER_MTOK), "output": str(PER_MTOK)}}]


def _setup(store: Any, customers: dict[str, str], *, webhook: str | None = None) -> None:
    billing_store.set_customer_dimension(store, "api_key_alias")
    billing_store.add_plan_version(store, {"id": "metered", "rules": RULES})
    for cid, grant in customers.items():
        meta = {"wallet_webhook_url": webhook} if webhook else {}
        billing_store.save_customer(store, parse_customer({"id": cid, "metadata": meta}))
        svc.subscribe(store, cid, "metered", "2020-01-01")
        if grant:
            svc.grant(store, cid, grant, granted_at=datetime(2020, 1, 1, tzinfo=timezone.utc))


def test_wallet_guard_never_overspends_by_more_than_the_calls_in_flight(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "w.db")
    sent: list[dict[str, Any]] = []
    _setup(store, {"acme": "1.00"}, webhook="http://127.0.0.1:9/hook")
    call = Decimal(2_000) * PER_MTOK / 10**6  # 1,000 input + 1,000 output tokens = 0.2 USD

    async def scenario() -> tuple[int, int, int]:
        guard = WalletGuard(store, LocalCounters(), refresh_s=0.0, send=lambda url, p: sent.append(dict(p)))
        in_flight = admitted = max_seen = 0

        async def one(i: int) -> None:
            nonlocal in_flight, admitted, max_seen
            await asyncio.sleep(random.random() * 0.02)
            try:
                await guard.admit(f"c{i}", {"api_key_alias": "acme"}, {}, lambda d: 1)
            except WalletExhausted as exc:
                assert exc.status_code == 402 and "wallet of customer 'acme' is empty" in str(exc)
                return
            admitted += 1
            in_flight += 1
            max_seen = max(max_seen, in_flight)
            await asyncio.sleep(random.random() * 0.03)
            event = UsageEvent(provider="openai", model="gpt-4o-mini", start_time=datetime.now(timezone.utc),
                               input_tokens=1_000, output_tokens=1_000)  # fmt: skip
            in_flight -= 1
            await guard.settle(f"c{i}", event)

        await asyncio.gather(*(one(i) for i in range(40)))
        with pytest.raises(WalletExhausted):  # after the burst: refused
            await guard.admit("after", {"api_key_alias": "acme"}, {}, lambda d: 1)
        await guard.admit("other", {"api_key_alias": "no-wallet"}, {}, lambda d: 1)  # no wallet: not limited
        return admitted, max_seen, await guard.available("acme")

    admitted, max_in_flight, left = asyncio.run(scenario())
    overspend = admitted * call - Decimal("1.00")
    assert admitted >= 5  # 5 calls fit in the wallet
    assert overspend < max_in_flight * call  # admitted only while settled spend < grant
    assert Decimal(left) / 10**12 == -overspend
    assert sorted(a["threshold_percent"] for a in sent) == [50, 80, 100]
    assert sent[0]["customer"] == "acme" and sent[0]["type"] == "meterline.wallet.threshold"
    store.close()


BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "How much credit do I have left?"}]}
USAGE = default_usage(BODY)
CALL = Decimal(USAGE.input + USAGE.output) * PER_MTOK / 10**6  # what one call costs the customer


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("gateway-wallets")
    db = root / "events.db"
    store = SQLiteStore(db)
    _setup(store, {"app-a": str(CALL * Decimal("2.5")), "app-b": "", "app-c": str(CALL * Decimal("1.5"))})
    store.close()
    with FakeProvider() as fake:
        config = write_config(root, fake.url)
        keys = json.loads((root / "keys.json").read_text())
        keys["keys"]["sk-c-1"] = {"key_alias": "app-c", "team_id": "team-c"}
        (root / "keys.json").write_text(json.dumps(keys))
        env = {
            "METERLINE_DESTINATION": f"sqlite:///{db}",
            "METERLINE_HOME": str(root / "home"),
            "METERLINE_GATEWAY_KEYS": str(root / "keys.json"),
            "METERLINE_BUDGETS_REFRESH_S": "1",
            "LITELLM_MASTER_KEY": "sk-master-test",
        }
        with ProxyProcess(config, env=env) as proxy:
            yield {"url": proxy.url, "db": db}


def test_gateway_refuses_the_request_after_the_wallet_reaches_zero(gateway: dict[str, Any]) -> None:
    url, db = gateway["url"], gateway["db"]
    ids = []
    for n in range(1, 4):  # before call 3 the wallet holds 0.5 calls: admitted, and it goes below zero
        status, headers, body = post(f"{url}/v1/chat/completions", BODY, "sk-a-1")
        assert status == 200, (n, body)
        ids.append(id_of(headers))
        wait_for_events(db, ids)
    status, _, body = post(f"{url}/v1/chat/completions", BODY, "sk-a-1")
    assert status == 402, body
    message = json.loads(body)["error"]["message"]
    assert "wallet of customer 'app-a' is empty" in message
    status, _, _ = post(f"{url}/v1/chat/completions", BODY, "sk-b-1")  # no wallet: not limited
    assert status == 200
    store = SQLiteStore(db)
    try:
        w = svc.wallet(store, "app-a")
    finally:
        store.close()
    # exact: 0.5 call overspent, one call in flight; the balance is never negative (overspend apart)
    assert (Decimal(w["balance_usd"]), Decimal(w["overspend_usd"])) == (0, 3 * CALL - CALL * Decimal("2.5"))


def test_gateway_wallet_under_a_burst_overspends_at_most_the_calls_in_flight(gateway: dict[str, Any]) -> None:
    url, db = gateway["url"], gateway["db"]
    burst = 4
    with ThreadPoolExecutor(burst) as pool:
        results = list(pool.map(lambda _: post(f"{url}/v1/chat/completions", BODY, "sk-c-1"), range(burst)))
    admitted = [id_of(h) for s, h, _ in results if s == 200]
    assert all(s in (200, 402) for s, _, _ in results)
    assert admitted
    wait_for_events(db, admitted)
    status, _, _ = post(f"{url}/v1/chat/completions", BODY, "sk-c-1")
    assert status == 402
    store = SQLiteStore(db)
    try:
        w = svc.wallet(store, "app-c")
    finally:
        store.close()
    balance = -Decimal(w["overspend_usd"])
    assert Decimal(w["balance_usd"]) == 0 and balance == CALL * Decimal("1.5") - len(admitted) * CALL
    assert -balance < burst * CALL  # overspend below the calls that were in flight together
