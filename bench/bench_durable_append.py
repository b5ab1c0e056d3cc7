"""Caller cost of the durable log's ``append``: the previous DurableLog (caller only buffers; a thread writes)
against the current one (write-through on the caller's thread), in ONE process, alternating blocks.

    PYTHONPATH=src python bench/bench_durable_append.py [--events 2000] [--blocks 10] [--old-commit 326900e]

The previous ``durable.py`` is read from git (``--old-commit``). Both logs get the recorder's content
preparation as ``prepare`` and a no-op handoff; the current one also pays its ``write``.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType


def pct(samples: Sequence[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--old-commit", default="326900e")
    args = parser.parse_args(argv)

    import meterline.sdk.delivery.durable as new
    from meterline.core.event import UsageEvent
    from meterline.sdk import content

    root = Path(tempfile.mkdtemp(prefix="meterline-bench-durable-"))
    old_src = subprocess.run(
        ["git", "show", f"{args.old_commit}:src/meterline/sdk/delivery/durable.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (root / "old_durable.py").write_text(old_src)
    spec = importlib.util.spec_from_file_location("old_durable", root / "old_durable.py")
    assert spec is not None and spec.loader is not None
    old: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)

    res: dict[str, list[float]] = {"old": [], "new": []}
    for b in range(args.blocks):
        pair = (("old", old), ("new", new))
        for name, mod in pair if b % 2 == 0 else pair[::-1]:
            log = mod.DurableLog(root / f"{name}{b}", lambda ev, closed: None, prepare=content.prepare)
            now = datetime.now(timezone.utc)
            events = [
                UsageEvent(
                    provider="openai",
                    model="gpt-4o-mini",
                    start_time=now,
                    input_tokens=i,
                    output_tokens=1,
                    subscriber_id="c1",
                    attributes={"i": i},
                )
                for i in range(args.events)
            ]
            gc.collect()
            gc.disable()
            try:
                for e in events:
                    t0 = time.perf_counter_ns()
                    log.append(e)
                    res[name].append((time.perf_counter_ns() - t0) / 1000.0)
            finally:
                gc.enable()
            log.close()
    print(f"DurableLog.append: {args.blocks} blocks x {args.events} events, Python {sys.version.split()[0]}")
    for name in ("old", "new"):
        s = res[name]
        print(
            f"{name:<4} p50 {pct(s, 50):7.2f} µs  p90 {pct(s, 90):7.2f}  p99 {pct(s, 99):7.2f}  "
            f"mean {statistics.fmean(s):7.2f}"
        )
    o, n = res["old"], res["new"]
    print(
        f"new/old p50 x{pct(n, 50) / pct(o, 50):.1f}, mean x{statistics.fmean(n) / statistics.fmean(o):.1f}; "
        f"added p50 {pct(n, 50) - pct(o, 50):.2f} µs, mean {statistics.fmean(n) - statistics.fmean(o):.2f} µs"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
