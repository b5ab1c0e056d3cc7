"""Caller overhead of the durable mode (``durability="disk"``) against the memory mode, in ONE run.

    PYTHONPATH=src python bench/bench_delivery.py [--events 2000] [--blocks 8] [--fsync-ms 50]

Rows (per event, on the caller's thread, SQLite destination in a temp dir):
- ``record()``: ``meterline.record(...)`` (build, validate, metadata, hand over) in memory and disk mode.
- ``submit()``: the recorder's hot path alone, with pre-built events.
Memory and disk blocks of ``--events`` calls alternate (re-init in between, garbage collector paused) so
drift hits both alike; both modes deliver on background threads meanwhile (disk mode also serialises and
fsyncs the log every ``--fsync-ms``), so the GIL those threads take is part of the measured cost.
"added" is disk minus memory at the same percentile. The verdict compares the median over blocks of each
block's mean (robust to a noisy neighbour stalling one block). Goal: <= 15 µs added per event.
Also printed: end-to-end time to record and deliver ``--events`` events (flush included) per mode.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("METERLINE_HOME", tempfile.mkdtemp(prefix="meterline-bench-"))


def pct(samples: Sequence[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--blocks", type=int, default=12)
    parser.add_argument("--fsync-ms", type=float, default=50.0)
    args = parser.parse_args(argv)

    import meterline
    from meterline.core.event import UsageEvent

    root = Path(tempfile.mkdtemp(prefix="meterline-bench-delivery-"))
    dest = f"sqlite:///{root / 'bench.db'}"

    def init(mode: str) -> None:
        meterline.init(dest, spool_dir=root / "state", durability=mode, fsync_interval_ms=args.fsync_ms)

    def record_block(n: int) -> list[float]:
        out = []
        for i in range(n):
            t0 = time.perf_counter_ns()
            meterline.record(
                provider="openai", model="gpt-4o-mini", input_tokens=100 + i, output_tokens=20, subscriber_id="c1"
            )
            out.append((time.perf_counter_ns() - t0) / 1000.0)
        return out

    def submit_block(n: int) -> list[float]:
        now = datetime.now(timezone.utc)
        events = [
            UsageEvent(provider="openai", model="gpt-4o-mini", start_time=now, input_tokens=i, output_tokens=1)
            for i in range(n)
        ]
        submit = meterline.get_recorder().submit
        out = []
        for e in events:
            t0 = time.perf_counter_ns()
            submit(e)
            out.append((time.perf_counter_ns() - t0) / 1000.0)
        return out

    samples: dict[tuple[str, str], list[float]] = {}
    block_means: dict[str, list[float]] = {"memory": [], "disk": []}
    e2e: dict[str, list[float]] = {"memory": [], "disk": []}
    for block in range(args.blocks):
        order = ("memory", "disk") if block % 2 == 0 else ("disk", "memory")
        for mode in order:
            init(mode)
            gc.collect()
            gc.disable()
            try:
                t0 = time.perf_counter()
                block = record_block(args.events)
                block_means[mode].append(statistics.fmean(block))
                samples.setdefault(("record()", mode), []).extend(block)
                assert meterline.flush(60), "flush timed out"
                e2e[mode].append(time.perf_counter() - t0)
                samples.setdefault(("submit()", mode), []).extend(submit_block(args.events))
                assert meterline.flush(60), "flush timed out"
            finally:
                gc.enable()
            meterline.shutdown(30)

    print(
        f"meterline delivery bench: {args.blocks} blocks x {args.events} events per mode, "
        f"fsync every {args.fsync_ms:g} ms, Python {sys.version.split()[0]}"
    )
    print(f"{'row':<12} {'mode':<8} {'p50 µs':>8} {'p90 µs':>8} {'p99 µs':>8} {'mean µs':>8}")
    for row in ("record()", "submit()"):
        for mode in ("memory", "disk"):
            s = samples[(row, mode)]
            print(
                f"{row:<12} {mode:<8} {pct(s, 50):8.2f} {pct(s, 90):8.2f} {pct(s, 99):8.2f} {statistics.fmean(s):8.2f}"
            )
        mem, disk = samples[(row, "memory")], samples[(row, "disk")]
        added = [pct(disk, p) - pct(mem, p) for p in (50, 90, 99)]
        mean_added = statistics.fmean(disk) - statistics.fmean(mem)
        print(f"{row:<12} {'added':<8} {added[0]:8.2f} {added[1]:8.2f} {added[2]:8.2f} {mean_added:8.2f}")
    for mode in ("memory", "disk"):
        per_event = statistics.median(e2e[mode]) / args.events * 1e6
        print(f"record + deliver ({mode}): {per_event:.1f} µs per event end to end (median of blocks, flush included)")
    med = {mode: statistics.median(block_means[mode]) for mode in block_means}
    added = med["disk"] - med["memory"]
    print(f"record() mean per block, median over blocks: memory {med['memory']:.2f} µs, disk {med['disk']:.2f} µs")
    verdict = "OK" if added <= 15 else "OVER"
    print(f"goal <= 15 µs added per record(): {added:+.2f} µs -> {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
