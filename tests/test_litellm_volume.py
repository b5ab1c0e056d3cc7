"""Nothing lost at exit: short scripts that make many LiteLLM calls and return (no flush, no shutdown)
leave exactly one event per call. LiteLLM's own async logging worker drops most of these at exit; meterline
does not depend on it. Also ``meterline demo`` end to end."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

from meterline.store import SQLiteStore

SCRIPT = textwrap.dedent(
    """
    import asyncio
    import litellm
    import meterline.auto  # init from METERLINE_DESTINATION, instrument every installed library

    MESSAGES = [{"role": "user", "content": "hi"}]
    for i in range(1000):
        litellm.completion(model="gpt-4o-mini", messages=MESSAGES, mock_response="ok",
                           usage_metadata={"agent": "sync"})

    async def main():
        await asyncio.gather(*(
            litellm.acompletion(model="gpt-4o-mini", messages=MESSAGES, mock_response="ok",
                                usage_metadata={"agent": "async"})
            for _ in range(2000)
        ))

    asyncio.run(main())
    print("done")
    """
)


def _env(tmp_path: Path, db: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTEST_CURRENT_TEST", None)
    env.pop("METERLINE_RAISE_INTERNAL", None)
    env.update(
        METERLINE_DESTINATION=f"sqlite:///{db}",
        METERLINE_HOME=str(tmp_path / "home"),
        LITELLM_LOCAL_MODEL_COST_MAP="True",
    )
    return env


def test_short_script_with_3000_calls_leaves_exactly_3000_events(tmp_path: Path) -> None:
    db = tmp_path / "volume.db"
    script = tmp_path / "calls.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script)], env=_env(tmp_path, db), capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("done")
    store = SQLiteStore(db)
    try:
        events = list(store.iter_events())
    finally:
        store.close()
    assert Counter(e.agent for e in events) == {"sync": 1000, "async": 2000}
    assert len({e.id for e in events}) == 3000
    assert {(e.status, e.input_tokens, e.output_tokens) for e in events} == {("success", 10, 20)}


def test_demo_end_to_end(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    done = subprocess.run(
        [sys.executable, "-m", "meterline", "demo", "--database", f"sqlite:///{db}"],
        env=_env(tmp_path, tmp_path / "unused.db"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "Spend by customer and model" in done.stdout
    store = SQLiteStore(db)
    try:
        events = list(store.iter_events())
    finally:
        store.close()
    litellm_events = [e for e in events if e.integration == "litellm"]
    # 40 chat calls + 1 Anthropic + 1 stream + 1 embedding + 5 Router calls + 1 refused call
    assert len(litellm_events) == 49
    errors = [e for e in events if e.status == "error"]
    assert len(errors) == 1
    assert (errors[0].error_type, errors[0].total_cost) == ("RateLimitError", 0)
    assert all(e.total_cost is not None for e in litellm_events)
    assert {e.subscriber_id for e in litellm_events} == {"acme", "globex", "initech", "umbrella"}
