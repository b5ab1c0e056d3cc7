"""The collector's commands: keys, migrate, serve settings, and report through a collector."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from collector_support import SRC, ThreadCollector, request, wire_event
from meterline.cli import main
from meterline.server.settings import SettingsError, load_settings
from meterline.store import keys as key_store
from meterline.store.migrate import head as migrate_head


@pytest.fixture
def database(any_database: str) -> str:
    """Every event store, ClickHouse included: what this module checks, all of them must do."""
    return any_database


def test_keys_create_list_revoke_on_the_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path / 'c.db'}"
    assert main(["keys", "create", "--scope", "admin", "--name", "ops", "--database", db]) == 0
    out = capsys.readouterr()
    key = out.out.strip()
    assert key.startswith("ml_a_") and "shown only now" in out.err
    assert main(["keys", "list", "--database", db]) == 0
    listing = capsys.readouterr().out
    assert "admin" in listing and "ops" in listing and key not in listing and key[:10] in listing
    with ThreadCollector(database=db) as c:
        assert request(c.url + "/v1/keys", key=key)[0] == 200
        # the same command against the running collector, with the admin key
        assert main(["keys", "create", "--scope", "ingest", "--database", c.url, "--api-key", key]) == 0
        ingest = capsys.readouterr().out.strip()
        assert request(c.url + "/v1/events", "POST", {"events": [wire_event()]}, key=ingest)[0] == 200
        assert main(["keys", "revoke", ingest[:10], "--database", c.url, "--api-key", key]) == 0
        assert request(c.url + "/v1/events", "POST", {"events": [wire_event()]}, key=ingest)[0] == 401
    assert main(["keys", "revoke", "nope", "--database", db]) == 1
    assert "no single active key" in capsys.readouterr().err


def test_report_reads_through_the_collector(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    with ThreadCollector(database=database) as c:
        read = key_store.create_key(c.app.state.writer, "read")[0]
        ingest = key_store.create_key(c.app.state.writer, "ingest")[0]
        events = [wire_event(subscriber_id="acme"), wire_event(subscriber_id="acme"), wire_event(subscriber_id="zen")]
        assert request(c.url + "/v1/events", "POST", {"events": events}, key=ingest)[0] == 200
        code = main(["report", "--database", c.url, "--api-key", read, "-g", "subscriber_id", "--format", "json"])
        assert code == 0
        rows = {r["subscriber_id"]: r for r in json.loads(capsys.readouterr().out)}
        per_event = Decimal("0.15") / 10**6 * 1000 + Decimal("0.60") / 10**6 * 100
        assert rows["acme"]["requests"] == 2 and Decimal(rows["acme"]["total_cost"]) == 2 * per_event
        assert Decimal(rows["zen"]["total_cost"]) == per_event
        # export and doctor read through the collector too (key from the environment)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("METERLINE_API_KEY", read)
            assert main(["export", "--database", c.url, "--format", "jsonl"]) == 0
            exported = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
            assert sorted(e["id"] for e in exported) == sorted(e["id"] for e in events)
            from meterline.store.open import open_store

            assert open_store(c.url).count() == 3
        assert main(["report", "--database", c.url, "--api-key", ingest]) == 2
        assert "403" in capsys.readouterr().err
        assert main(["report", "--database", c.url, "--api-key", read, "-g", "colour"]) == 2
        assert "unknown dimension" in capsys.readouterr().err


HEAD = migrate_head()  # the newest revision, whichever part added it


def _migrate(db: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "meterline", "migrate", "--database", db],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": SRC},
    ).stdout


def test_migrate_sqlite_and_existing_sdk_file(tmp_path: Path) -> None:
    from meterline.store.sqlite import SQLiteStore

    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert f"current revision: {HEAD}" in _migrate(fresh)
    # a file the SDK created on first use migrates too (the statements are idempotent)
    sdk = tmp_path / "sdk.db"
    SQLiteStore(sdk).close()
    assert f"current revision: {HEAD}" in _migrate(f"sqlite:///{sdk}")
    assert f"current revision: {HEAD}" in _migrate(f"sqlite:///{sdk}")  # again: nothing to do
    store = SQLiteStore(sdk)
    try:
        tables = {r[0] for r in store.fetch("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        store.close()
    assert {"events", "api_keys", "alembic_version"} <= tables


@pytest.mark.postgres
def test_migrate_postgres(postgres_url: str) -> None:
    assert f"current revision: {HEAD}" in _migrate(postgres_url)
    from meterline.store.postgres import PostgresStore

    store = PostgresStore(postgres_url, create=False)
    try:
        assert store.count() == 0
        assert store.fetch("SELECT version_num FROM alembic_version") == [(HEAD,)]
    finally:
        store.close()


def test_settings_precedence_and_validation(tmp_path: Path) -> None:
    toml = tmp_path / "collector.toml"
    toml.write_text('[server]\nport = 9000\nmax_batch_events = 50\nhost = "127.0.0.1"\n')
    env = {"METERLINE_PORT": "9100", "METERLINE_DATABASE": f"sqlite:///{tmp_path / 'e.db'}"}
    s = load_settings({"port": None}, config_file=toml, environ=env)
    assert (s.port, s.max_batch_events, s.database) == (9100, 50, f"sqlite:///{tmp_path / 'e.db'}")
    s = load_settings({"port": 9200}, config_file=toml, environ=env)
    assert s.port == 9200
    yml = tmp_path / "c.yaml"
    yml.write_text("max_body_bytes: 1234\n")
    assert load_settings(config_file=yml, environ={}).max_body_bytes == 1234
    with pytest.raises(SettingsError, match="loopback"):
        load_settings({"auth": False, "host": "0.0.0.0"}, environ={})
    with pytest.raises(SettingsError, match="METERLINE_PORT"):
        load_settings(environ={"METERLINE_PORT": "eighty"})
    yml.write_text("colour: blue\n")
    with pytest.raises(SettingsError, match="unknown setting 'colour'"):
        load_settings(config_file=yml, environ={})
    with pytest.raises(SettingsError, match="single writer"):
        load_settings({"workers": 2}, environ={})


def test_serve_refuses_no_auth_on_a_public_address() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "meterline", "serve", "--no-auth", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": SRC},
    )
    assert proc.returncode == 2 and "only allowed on a loopback address" in proc.stderr
