"""The ``event_content`` table: captured content, one row per event, apart from the usage rows.

``events`` and its rollups stay lean (LiteLLM keeps prompts, responses and headers in its SpendLogs
rows: 26 GB at 5.9 M rows); content has its own retention (``meterline prune --content-older-than``).
A row: ``event_id`` (the event's id), ``start_time`` (the event's, integer microseconds, for pruning),
``bytes`` (size of ``body``) and ``body``, the JSON object of the content fields that were set, already
redacted and capped by :mod:`meterline.sdk.content` on the recorder's thread.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from meterline.core.event import CONTENT_FIELDS, UsageEvent, content_json
from meterline.core.timeutil import to_micros
from meterline.store.base import SQLStore
from meterline.store.extensions import register_tables

CONTENT_TABLE = "event_content"
CONTENT_COLUMNS = ("event_id", "start_time", "bytes", "body")


def _tables(dialect: str) -> list[str]:
    big = "BIGINT" if dialect == "postgresql" else "INTEGER"
    return [
        f"CREATE TABLE IF NOT EXISTS {CONTENT_TABLE} (event_id TEXT PRIMARY KEY, start_time {big} NOT NULL, "
        f"bytes {big} NOT NULL, body TEXT NOT NULL)",
        f"CREATE INDEX IF NOT EXISTS ix_event_content_start ON {CONTENT_TABLE} (start_time)",
    ]


register_tables("event_content", _tables)


def content_rows(events: Sequence[UsageEvent]) -> list[tuple[str, int, int, str]]:
    """Rows for the events that carry content (none at all in the common, capture-off case)."""
    rows = []
    for e in events:
        if (
            e.input_messages is None
            and e.output_text is None
            and e.output_tool_calls is None
            and e.request_headers is None
            and e.raw_request is None
        ):
            continue
        body = content_json(e)
        if body is not None:
            rows.append((e.id, to_micros(e.start_time), len(body.encode("utf-8")), body))
    return rows


def insert_sql(dialect: str) -> str:
    if dialect == "sqlite":
        return f"INSERT OR IGNORE INTO {CONTENT_TABLE} ({', '.join(CONTENT_COLUMNS)}) VALUES (?, ?, ?, ?)"
    return (
        f"INSERT INTO {CONTENT_TABLE} ({', '.join(CONTENT_COLUMNS)}) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (event_id) DO NOTHING"
    )


def attach(store: SQLStore, events: Sequence[UsageEvent]) -> None:
    """Fill the content fields of ``events`` from ``event_content`` (one query per call)."""
    if not events:
        return
    ph = "?" if store.dialect.placeholder == "?" else store.dialect.placeholder
    by_id = {e.id: e for e in events}
    ids = list(by_id)
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        rows = store.fetch(
            f"SELECT event_id, body FROM {CONTENT_TABLE} WHERE event_id IN ({', '.join([ph] * len(chunk))})", chunk
        )
        for event_id, body in rows:
            doc = json.loads(body)
            event = by_id[event_id]
            for name in CONTENT_FIELDS:
                if name in doc:
                    setattr(event, name, doc[name])


def content_for(store: SQLStore, event_id: str) -> dict[str, Any] | None:
    """The stored content of one event (None when none was captured or it was pruned)."""
    ph = store.dialect.placeholder
    rows = store.fetch(f"SELECT body FROM {CONTENT_TABLE} WHERE event_id = {ph}", [event_id])
    if not rows:
        return None
    doc: dict[str, Any] = json.loads(rows[0][0])
    return doc
