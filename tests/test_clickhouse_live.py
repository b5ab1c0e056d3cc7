"""The ClickHouse store against a live ClickHouse server: the HTTP layer chdb cannot exercise (auth,
compression, async inserts, several writers at once). Runs when METERLINE_TEST_CLICKHOUSE_URL names a server
(``clickhouse://user:password@host:8123/``); there is none on the development machines or in CI."""

from __future__ import annotations

import os
import threading
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from meterline.core.event import UsageEvent
from meterline.store.clickhouse import ClickHouseError, ClickHouseStore
from meterline.store.query import UsageQuery

LIVE = os.environ.get("METERLINE_TEST_CLICKHOUSE_URL", "")
pytestmark = pytest.mark.skipif(not LIVE, reason="set METERLINE_TEST_CLICKHOUSE_URL to test a live ClickHouse server")


def _dest(tmp_path: Path, **params: str) -> str:
    base = LIVE.split("?", 1)[0].rstrip("/") + f"/t_{uuid.uuid4().hex[:10]}"
    query = "&".join([f"meta=sqlite%3A%2F%2F%2F{tmp_path}%2Fmeta.db", *(f"{k}={v}" for k, v in params.items())])
    return f"{base}?{query}"


@pytest.mark.parametrize("params", [{}, {"async_insert": "1", "compress": "zstd"}])
def test_two_writers_one_resent_batch_exact_totals(tmp_path: Path, params: dict[str, str]) -> None:
    dest = _dest(tmp_path, **params)
    t0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
    events = [UsageEvent(provider="openai", model="m", start_time=t0 + timedelta(seconds=i), total_cost=Decimal("0.5"))
              for i in range(2000)]  # fmt: skip
    a, b = ClickHouseStore(dest), ClickHouseStore(dest)
    try:
        threads = [threading.Thread(target=s.insert, args=(events[i::2],)) for i, s in enumerate((a, b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        b.insert(events[:500])  # a retry on the other writer
        (row,) = a.usage(UsageQuery(bucket="hour", group_by=["model"]))
        assert (row["requests"], row["total_cost"]) == (2000, Decimal(1000))
    finally:
        a.close()
        b.close()


def test_wrong_password_is_one_clear_error(tmp_path: Path) -> None:
    dest = _dest(tmp_path).replace("://", "://nobody:wrong@", 1) if "@" not in LIVE else None
    if dest is None:
        head, tail = LIVE.split("://", 1)
        dest = f"{head}://nobody:wrong@{tail.split('@', 1)[1]}"
    with pytest.raises(ClickHouseError, match="cannot connect to"):
        ClickHouseStore(dest)
