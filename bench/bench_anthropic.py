"""Added latency of meterline's Anthropic SDK, Bedrock (boto3) and OpenAI SDK metering, per call, in ONE run.

Bare and metered calls alternate in blocks (instrument / uninstrument between blocks) against the same local
FakeProvider, so both see the same machine state. Prints p50/p99/mean per call and the difference.

    PYTHONPATH=src python bench/bench_anthropic.py [--calls 400] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("METERLINE_HOME", tempfile.mkdtemp(prefix="meterline-bench-"))

import anthropic
import boto3
import openai
from botocore.config import Config

import meterline
from meterline.integrations import anthropic as ml_anthropic
from meterline.integrations import bedrock as ml_bedrock
from meterline.integrations import openai as ml_openai
from meterline.testing import FakeProvider

MSGS = [{"role": "user", "content": "What is the weather in Paris today?"}]
BEDROCK_MODEL = "us.anthropic.claude-3-5-sonnet-20240620-v1:0"


def _timed(call: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        call()
        out.append((time.perf_counter_ns() - t0) / 1000.0)  # µs
    return out


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def measure(
    name: str, call: Callable[[], Any], on: Callable[[], None], off: Callable[[], None], calls: int, rounds: int
) -> dict[str, Any]:
    bare: list[float] = []
    metered: list[float] = []
    _timed(call, 50)  # warm-up: connections, imports, caches
    on()
    _timed(call, 50)
    off()
    for _ in range(rounds):
        bare += _timed(call, calls)
        on()
        metered += _timed(call, calls)
        off()
    return {"name": name, "bare": bare, "metered": metered}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=400, help="calls per block (default 400)")
    p.add_argument("--rounds", type=int, default=5, help="bare/metered block pairs (default 5)")
    args = p.parse_args(argv)
    db = os.path.join(tempfile.mkdtemp(prefix="meterline-bench-"), "bench.db")
    meterline.init(destination=f"sqlite:///{db}")
    results = []
    with FakeProvider() as fake:
        client = anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key="sk-bench", max_retries=0)
        results.append(
            measure(
                "anthropic messages.create",
                lambda: client.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=MSGS),  # type: ignore[arg-type]
                ml_anthropic.instrument,
                ml_anthropic.uninstrument,
                args.calls,
                args.rounds,
            )
        )

        def stream_call() -> None:
            with client.messages.stream(model="claude-haiku-4-5", max_tokens=50, messages=MSGS) as s:  # type: ignore[arg-type]
                s.get_final_message()

        results.append(
            measure(
                "anthropic messages.stream",
                stream_call,
                ml_anthropic.instrument,
                ml_anthropic.uninstrument,
                args.calls,
                args.rounds,
            )
        )
        bedrock = boto3.client(
            "bedrock-runtime",
            region_name="us-east-1",
            endpoint_url=fake.bedrock_endpoint_url,
            config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
        )
        converse_msgs = [{"role": "user", "content": [{"text": "hello"}]}]
        results.append(
            measure(
                "boto3 converse",
                lambda: bedrock.converse(modelId=BEDROCK_MODEL, messages=converse_msgs),
                ml_bedrock.instrument,
                ml_bedrock.uninstrument,
                args.calls,
                args.rounds,
            )
        )
        oai = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-bench", max_retries=0)
        results.append(
            measure(
                "openai chat.completions",
                lambda: oai.chat.completions.create(model="gpt-4o-mini", messages=MSGS),  # type: ignore[arg-type]
                ml_openai.instrument,
                ml_openai.uninstrument,
                args.calls,
                args.rounds,
            )
        )
    flushed = meterline.flush(60)
    stats = meterline.stats()
    meterline.shutdown()
    expected = sum(len(r["metered"]) for r in results) + 50 * len(results)
    version = sys.version.split()[0]
    print(f"meterline SDK integrations bench: {args.rounds} x {args.calls} calls per side, Python {version}")
    heads = ("bare p50", "metered p50", "added p50", "bare p99", "metered p99", "added p99", "added mean")
    widths = (9, 12, 10, 9, 12, 10, 11)
    print(f"{'path':<27} " + " ".join(f"{h:>{w}}" for h, w in zip(heads, widths, strict=True)))
    for r in results:
        b, m = r["bare"], r["metered"]
        row = (
            _pct(b, 0.5),
            _pct(m, 0.5),
            _pct(m, 0.5) - _pct(b, 0.5),
            _pct(b, 0.99),
            _pct(m, 0.99),
            _pct(m, 0.99) - _pct(b, 0.99),
            statistics.fmean(m) - statistics.fmean(b),
        )
        print(f"{r['name']:<27} " + " ".join(f"{v:>{w}.0f}" for v, w in zip(row, widths, strict=True)))
    print("(microseconds per call; added = metered - bare, same run, same fake provider)")
    print(f"events written: {stats.get('written', 0)} of {expected} metered calls; flushed: {flushed}")
    return 0 if flushed and stats.get("written", 0) == expected else 1


if __name__ == "__main__":
    sys.exit(main())
