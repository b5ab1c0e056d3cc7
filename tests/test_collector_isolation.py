"""Per-event isolation in the collector: an event the store refuses never holds back its batch-mates,
and every spelling of one UUID is one event. SQLite and a real PostgreSQL, over real HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from collector_support import ThreadCollector, request, wire_event
from meterline.core.event import UsageEvent
from meterline.store.backend import open_stores


@pytest.fixture
def collector(database: str) -> Iterator[ThreadCollector]:
    with ThreadCollector(database=database, auth=False, max_batch_events=5000, max_body_bytes=20_000_000) as c:
        yield c


def _refuse_model(store: Any, model: str) -> None:
    """A real store error for one event: the database itself refuses rows of ``model``."""
    if store.dialect.name == "sqlite":
        store.execute(
            f"CREATE TRIGGER refuse_{model} BEFORE INSERT ON events WHEN NEW.model = '{model}' "
            f"BEGIN SELECT RAISE(ABORT, 'refused by the test trigger'); END"
        )
    else:
        store.execute(f"ALTER TABLE events ADD CONSTRAINT refuse_{model} CHECK (model <> '{model}')")


def post(c: ThreadCollector, events: list[Any]) -> tuple[int, Any]:
    return request(c.url + "/v1/events", "POST", {"events": events})


def test_a_store_refusal_is_reported_per_event_and_its_batch_mates_are_stored(collector: ThreadCollector) -> None:
    _refuse_model(collector.app.state.writer, "poison")
    good = [wire_event(subscriber_id="acme") for _ in range(5)]
    poison = wire_event(model="poison")
    invalid = wire_event(input_tokens=-1)
    status, body = post(collector, [*good[:3], poison, *good[3:], invalid])
    assert status == 207
    assert body["accepted"] == 5 and body["duplicates"] == 0
    assert [(r["index"], r["id"], r["field"]) for r in body["rejected"]] == [
        (3, poison["id"], "event"),
        (6, invalid["id"], "input_tokens"),
    ]
    assert "refused" in body["rejected"][0]["reason"]
    assert collector.store.count() == 5
    # the poison run: one unstorable event then 2,000 good ones in batches: all 2,000 stored
    batch = [wire_event(model="poison"), *(wire_event() for _ in range(1999))]
    status, body = post(collector, batch)
    assert (status, body["accepted"], len(body["rejected"])) == (207, 1999, 1)
    status, body = post(collector, [wire_event() for _ in range(1)])
    assert (status, body["accepted"]) == (200, 1)
    assert collector.store.count() == 5 + 2000
    usage = request(collector.url + "/v1/usage")[1]["rows"][0]
    assert usage["requests"] == 2005


def test_every_spelling_of_one_uuid_is_one_event(collector: ThreadCollector) -> None:
    u = uuid.uuid4()
    spellings = [str(u), u.hex, "{" + str(u) + "}", "urn:uuid:" + str(u), str(u).upper()]
    status, body = post(collector, [wire_event(id=s) for s in spellings])
    assert (status, body) == (200, {"accepted": 1, "duplicates": 4, "rejected": []})
    for s in spellings:  # and again, one request each
        assert post(collector, [wire_event(id=s)])[1] == {"accepted": 0, "duplicates": 1, "rejected": []}
    stored = list(collector.store.iter_events())
    assert [e.id for e in stored] == [str(u)]


def test_store_insert_each_isolates_rows_the_database_cannot_hold(database: str) -> None:
    writer, reader = open_stores(database)
    try:
        now = datetime(2026, 11, 2, tzinfo=timezone.utc)
        ok = [UsageEvent(provider="openai", model="m", start_time=now) for _ in range(3)]
        # built directly, as an app's record() could before validation: a lone surrogate, and a NUL
        bad = [
            UsageEvent(provider="openai", model="m", start_time=now, subscriber_id="\ud800"),
            UsageEvent(provider="openai", model="m", start_time=now, subscriber_id="a\x00b"),
        ]
        new, failed = writer.insert_each([ok[0], bad[0], ok[1], bad[1], ok[2]])
        refused = [i for i, _ in failed]
        if writer.dialect.name == "sqlite":  # SQLite stores NUL in TEXT; the surrogate has no UTF-8 form
            assert (new, refused) == (4, [1])
        else:
            assert (new, refused) == (3, [1, 3])
        assert reader.count() == new
        assert {e.id for e in ok} <= {e.id for e in reader.iter_events()}
    finally:
        writer.close()
        if reader is not writer:
            reader.close()
