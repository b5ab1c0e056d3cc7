"""``import meterline.auto`` alone meters the Anthropic SDK and boto3 in a fresh process (decorators apply)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from meterline.store import SQLiteStore

SCRIPT = textwrap.dedent(
    """
    import sys
    import meterline.auto  # init from the environment + instrument everything installed
    import anthropic, boto3
    import meterline

    url = sys.argv[1]

    @meterline.track_agent("auto-agent")
    def ask():
        c = anthropic.Anthropic(base_url=url, api_key="k", max_retries=0)
        c.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=[{"role": "user", "content": "hi"}],
                          usage_metadata={"subscriberId": "cust-auto"})
        b = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=url)
        b.converse(modelId="anthropic.claude-3-haiku-20240307-v1:0",
                   messages=[{"role": "user", "content": [{"text": "hi"}]}])

    ask()
    """
)


def test_import_meterline_auto_meters_anthropic_and_boto3(tmp_path: Path, fake_provider: Any) -> None:
    db = tmp_path / "auto.db"
    env = {
        **os.environ,
        "METERLINE_DESTINATION": f"sqlite:///{db}",
        "METERLINE_HOME": str(tmp_path),
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
    }
    env.pop("PYTEST_CURRENT_TEST", None)
    env.pop("METERLINE_RAISE_INTERNAL", None)
    subprocess.run([sys.executable, "-c", SCRIPT, fake_provider.url], env=env, check=True, timeout=120)
    store = SQLiteStore(db)
    try:
        events = list(store.iter_events())
    finally:
        store.close()
    assert sorted((e.provider, e.integration, e.agent) for e in events) == [
        ("anthropic", "anthropic", "auto-agent"),
        ("bedrock", "bedrock", "auto-agent"),
    ]
    by_provider = {e.provider: e for e in events}
    assert by_provider["anthropic"].subscriber_id == "cust-auto" and by_provider["bedrock"].subscriber_id is None
    assert by_provider["bedrock"].pricing_source and by_provider["bedrock"].pricing_source.startswith("genai-prices")
