"""Secrets: nothing under ``credential`` but its name is stored anywhere (store, spool, dead letters, durable
log), only a hash with a per-installation salt."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timezone
from pathlib import Path

import pytest

import meterline
from meterline.core.event import UsageEvent
from meterline.core.metadata import hash_credential, normalise

SECRET = "S3CRET-extra-9f1c2d"
VALUE = "sk-live-value-77ab3e"
SUBSCRIBER = {"id": "u1", "credential": {"name": "prod-key", "value": VALUE, "extra": SECRET}}


def _all_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())


def test_credential_extras_never_reach_the_store_the_spool_nor_dead_letters(tmp_path: Path) -> None:
    state = tmp_path / "state"
    # 1. stored: direct SQLite (the database and its WAL), through the durable log
    db = tmp_path / "m.db"
    meterline.init(f"sqlite:///{db}", spool_dir=state, durability="disk")
    event_id = meterline.record(provider="openai", model="gpt-4o-mini", subscriber=SUBSCRIBER)
    meterline.record(provider="openai", model="gpt-4o-mini", credential={"name": "n", "value": VALUE, "token": SECRET})
    # 2. dead-lettered: an unstorable event carrying the same credential
    bad = UsageEvent(provider="openai", model="gpt-4o-mini", start_time=datetime.now(timezone.utc))
    meterline.sdk.api.apply_metadata(bad, {}, normalise({"subscriber": SUBSCRIBER}, strict=False))
    bad.subscriber_id = "\ud800"
    meterline.get_recorder().submit(bad)
    assert meterline.flush(10)
    s = meterline.stats()
    assert s["written"] == 2 and s["dead_lettered"] == 1, s
    meterline.shutdown(10)
    # 3. spooled: a destination that is down
    meterline.init("http://127.0.0.1:9/", spool_dir=state, max_retries=0)
    meterline.record(provider="openai", model="gpt-4o-mini", subscriber=SUBSCRIBER)
    assert meterline.flush(10)
    assert meterline.stats()["spooled"] == 1
    meterline.shutdown(0.2)

    from meterline.store import SQLiteStore

    store = SQLiteStore(db)
    stored = {e.id: e for e in store.iter_events()}
    store.close()
    e = stored[event_id]
    assert e.credential_name == "prod-key" and e.credential_hash == hash_credential(VALUE)
    assert e.attributes == {}
    everything = _all_bytes(tmp_path)
    assert list(state.rglob("deadletter.jsonl")) and list(state.rglob("*.jsonl"))
    for secret in (SECRET, VALUE):
        assert secret.encode() not in everything


def test_the_hash_salt_is_per_installation_unless_shared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("METERLINE_HASH_SALT", raising=False)
    public = hmac.new(b"meterline-v1", VALUE.encode(), hashlib.sha256).hexdigest()[:32]
    monkeypatch.setenv("METERLINE_HOME", str(tmp_path / "a"))
    a = hash_credential(VALUE)
    salt_file = tmp_path / "a" / "hash_salt"
    assert salt_file.stat().st_mode & 0o777 == 0o600 and len(salt_file.read_bytes()) == 64
    assert hash_credential(VALUE) == a  # stable on one installation
    monkeypatch.setenv("METERLINE_HOME", str(tmp_path / "b"))
    b = hash_credential(VALUE)
    assert len({a, b, public}) == 3  # no public default salt; another installation, another salt
    # several hosts that must agree share one salt
    monkeypatch.setenv("METERLINE_HASH_SALT", "fleet-salt")
    shared = hash_credential(VALUE)
    monkeypatch.setenv("METERLINE_HOME", str(tmp_path / "a"))
    assert hash_credential(VALUE) == shared
    assert shared == hmac.new(b"fleet-salt", VALUE.encode(), hashlib.sha256).hexdigest()[:32]


def test_credential_keys_spelled_every_way_keep_only_name_and_hash() -> None:
    spellings = [
        {"subscriber": {"credential": {"name": "n", "value": VALUE, "extra": SECRET}}},
        {"credential": {"name": "n", "value": VALUE, "secret": SECRET}},
        {"subscriber.credential.name": "n", "subscriber.credential.value": VALUE, "subscriber.credential.x": SECRET},
        {"subscriberCredentialName": "n", "subscriberCredential": VALUE, "subscriberCredentialToken": SECRET},
        {"credential_name": "n", "credential": VALUE, "attributes": {"credential_secret": SECRET}},
    ]
    for fields in spellings:
        out = normalise(fields)
        assert out == {"credential_name": "n", "credential_hash": hash_credential(VALUE)}, fields
