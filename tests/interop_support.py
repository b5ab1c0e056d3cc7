"""Shared by the interop tests: a collector with auth and an ingest key, and waiting for stored events."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector_support import ThreadCollector
from meterline.core.event import UsageEvent
from meterline.store import keys as key_store


class Collector:
    def __init__(self, tc: ThreadCollector, key: str) -> None:
        self.tc, self.url, self.key = tc, tc.url, key

    def events(self) -> list[UsageEvent]:
        return list(self.tc.store.iter_events())

    def wait(self, n: int, timeout: float = 15.0) -> list[UsageEvent]:
        """Events once ``n`` are stored (clients send from background threads); then a short settle, so a
        late duplicate would show up too."""
        deadline = time.monotonic() + timeout
        while len(self.events()) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        return self.events()


@pytest.fixture(name="collector")
def collector_fixture(tmp_path: Path) -> Iterator[Collector]:
    """A collector on SQLite with auth on and one ingest key (meterline style)."""
    with ThreadCollector(database=f"sqlite:///{tmp_path / 'collector.db'}") as tc:
        key, _ = key_store.create_key(tc.app.state.writer, "ingest", "interop tests")
        yield Collector(tc, key)


def by_integration(events: list[UsageEvent], name: str) -> list[UsageEvent]:
    return [e for e in events if e.integration == name]


def tokens(e: UsageEvent) -> tuple[Any, ...]:
    return (e.input_tokens, e.cache_read_tokens, e.cache_write_tokens, e.output_tokens, e.reasoning_tokens)
