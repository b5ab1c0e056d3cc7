"""What ``import meterline; meterline.init(); meterline.instrument()`` adds to the start-up of an app that only
uses the OpenAI SDK, measured against the bare app in the same run.

    PYTHONPATH=src python bench/bench_startup.py [--runs 7]

Each run is a fresh interpreter: the bare app does ``import openai``; the metered app then also imports
meterline, calls ``init()`` (SQLite in a temp dir) and ``instrument()``. Reported: the median wall time of each
and the difference, plus ``-X importtime``'s cumulative time of the ``meterline`` import, and whether LiteLLM was
imported (it must not be: ``instrument()`` never imports a library the app has not imported).
Goal: < 300 ms added.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

BARE = "import time; t = time.perf_counter(); import openai; print(time.perf_counter() - t)"
METERED = (
    "import sys, time; t = time.perf_counter(); import openai; import meterline; meterline.init(); "
    "meterline.instrument(); print(time.perf_counter() - t); print('litellm' in sys.modules)"
)


def run(code: str, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *extra, "-c", code], env=env, capture_output=True, text=True, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="meterline-bench-startup-")
    env = {**os.environ, "METERLINE_HOME": home, "METERLINE_DESTINATION": f"sqlite:///{home}/m.db"}
    bare, metered, litellm_loaded = [], [], False
    for _ in range(args.runs):  # alternate, so drift hits both alike
        bare.append(float(run(BARE, env).stdout.split()[0]))
        out = run(METERED, env).stdout.split()
        metered.append(float(out[0]))
        litellm_loaded |= out[1] == "True"
    trace = run("import openai; import meterline; meterline.init(); meterline.instrument()", env, "-X", "importtime")
    m = re.search(r"\|\s+(\d+) \| meterline\n", trace.stderr)
    b, t = statistics.median(bare), statistics.median(metered)
    print(f"meterline start-up bench: {args.runs} runs each, Python {sys.version.split()[0]}")
    print(f"{'app':44} {'median':>10}")
    print(f"{'import openai':44} {b * 1000:>8.0f} ms")
    print(f"{'+ import meterline, init(), instrument()':44} {t * 1000:>8.0f} ms")
    print(f"{'added':44} {(t - b) * 1000:>8.0f} ms   (goal < 300 ms)")
    if m:
        print(f"{'import meterline (-X importtime, cumulative)':44} {int(m.group(1)) / 1000:>8.0f} ms")
    print(f"LiteLLM imported by instrument(): {litellm_loaded}")


if __name__ == "__main__":
    main()
