"""Gateway overhead: the real LiteLLM proxy with and without meterline, in one run.

Two proxy processes, same config (a ``mock_response`` model: no upstream, so the proxy's own cost and
meterline's share of it are what is measured), both started by ``meterline gateway`` (``--no-meter``
for the baseline). The metered one writes to a SQLite file with budget enforcement on (no budget
matches) - the default set-up. Rounds alternate between the two proxies to cancel drift.

    PYTHONPATH=src python bench/bench_gateway.py [--requests 300] [--concurrency 8] [--rounds 3]

Goal: < 1 ms added to the p50 latency.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from meterline.testing.proxy import ProxyProcess

MASTER = "sk-bench"
CONFIG = """
model_list:
  - model_name: bench
    litellm_params: {model: openai/gpt-4o-mini, mock_response: "ok, metered"}
litellm_settings: {num_retries: 0}
general_settings: {master_key: sk-bench}
"""
BODY = json.dumps({"model": "bench", "messages": [{"role": "user", "content": "benchmark me"}]}).encode()


def one(url: str) -> float:
    req = urllib.request.Request(
        f"{url}/v1/chat/completions",
        data=BODY,
        headers={"Authorization": f"Bearer {MASTER}", "Content-Type": "application/json"},
    )
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=30) as r:
        r.read()
        assert r.status == 200
    return (time.perf_counter() - t0) * 1000.0


def sequential(url: str, n: int) -> list[float]:
    return [one(url) for _ in range(n)]


def concurrent(url: str, n: int, threads: int) -> float:
    """Requests per second with ``threads`` clients sending ``n`` requests in total."""
    per = n // threads

    def worker() -> None:
        for _ in range(per):
            one(url)

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return per * threads / (time.perf_counter() - t0)


def wait_stored(db: Path, expected: int, timeout: float = 30.0) -> int:
    from meterline.store import SQLiteStore

    deadline = time.monotonic() + timeout
    stored = 0
    while time.monotonic() < deadline:
        if db.exists():
            store = SQLiteStore(db)
            stored = store.count()
            store.close()
            if stored >= expected:
                break
        time.sleep(0.5)
    return stored


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="meterline-bench-gw-"))
    config = root / "gateway.yaml"
    config.write_text(CONFIG)
    db = root / "events.db"
    env = {"METERLINE_DESTINATION": f"sqlite:///{db}", "METERLINE_HOME": str(root / "home")}
    with (
        ProxyProcess(config, env=env, extra_args=["--no-meter"], log_path=root / "bare.log") as bare,
        ProxyProcess(config, env=env, log_path=root / "metered.log") as metered,
    ):
        procs = {"LiteLLM proxy": bare, "LiteLLM proxy + meterline": metered}
        lat: dict[str, list[float]] = {k: [] for k in procs}
        rps: dict[str, list[float]] = {k: [] for k in procs}
        for p in procs.values():  # warm-up
            sequential(p.url, 30)
        for _ in range(args.rounds):
            # one request to each in turn: both proxies see the same background load
            for _ in range(args.requests):
                for name, p in procs.items():
                    lat[name].append(one(p.url))
            for name, p in procs.items():
                rps[name].append(concurrent(p.url, args.requests, args.concurrency))
        per_round = args.requests + args.requests // args.concurrency * args.concurrency
        metered_count = 30 + args.rounds * per_round
        stored = wait_stored(db, metered_count)  # before stopping: what the running proxy wrote

    base_p50 = statistics.median(lat["LiteLLM proxy"])
    pairs = zip(lat["LiteLLM proxy"], lat["LiteLLM proxy + meterline"], strict=True)
    paired = statistics.median(m - b for b, m in pairs)
    print(f"{args.rounds} rounds x {args.requests} sequential requests (p50/p99) and {args.requests} requests "
          f"from {args.concurrency} threads (req/s), mock_response model, 2-core machine")  # fmt: skip
    print()
    print("| proxy | p50 ms | p99 ms | req/s | p50 added (median of paired differences) |")
    print("|---|---:|---:|---:|---:|")
    for name in procs:
        xs = sorted(lat[name])
        p50, p99 = statistics.median(xs), xs[int(len(xs) * 0.99) - 1]
        added = "" if name == "LiteLLM proxy" else f"{p50 - base_p50:+.2f} ms (paired {paired:+.2f})"
        print(f"| {name} | {p50:.2f} | {p99:.2f} | {statistics.median(rps[name]):.0f} | {added} |")
    print()
    print(f"events stored by the metered proxy: {stored} of {metered_count} requests")
    return 0 if stored == metered_count else 1


if __name__ == "__main__":
    sys.exit(main())
