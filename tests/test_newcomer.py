"""What a new user meets first: read commands that never create a schema, one-line database errors, tiny costs,
empty-report wording, doctor contacting the collector, the gateway's safe defaults, and the documented curl."""

from __future__ import annotations

import re
import socket
import sqlite3
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import meterline
from meterline.cli import main

ROOT = Path(__file__).resolve().parents[1]
READ_COMMANDS = (
    ["report"],
    ["export"],
    ["keys", "list"],
    ["budgets", "list"],
    ["budgets", "status"],
)


def _tables(database: str) -> list[str]:
    if database.startswith("sqlite:///"):
        with sqlite3.connect(database[len("sqlite:///") :]) as conn:
            return [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    import psycopg

    with psycopg.connect(database) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
        return [r[0] for r in rows]


def test_read_commands_never_create_a_schema(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    if database.startswith("sqlite:///"):
        sqlite3.connect(database[len("sqlite:///") :]).close()  # an existing, empty file
    for command in READ_COMMANDS:
        assert main([*command, "--database", database]) == 2, command
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "has no meterline tables" in err and "meterline migrate" in err, (command, err)
    assert main(["doctor", "--database", database]) == 1
    assert "store            PROBLEM: " in capsys.readouterr().out
    assert _tables(database) == []
    # the writers and `migrate` do create it; then the same read commands work
    assert main(["migrate", "--database", database]) == 0
    for command in READ_COMMANDS:
        assert main([*command, "--database", database]) == 0, command
    capsys.readouterr()


def test_a_missing_sqlite_file_is_not_created_by_reading(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nothing-here.db"
    for command in READ_COMMANDS:
        assert main([*command, "--database", f"sqlite:///{path}"]) == 2, command
        assert f"no meterline database at {path}" in capsys.readouterr().err
    assert not path.exists()


def test_a_refused_postgresql_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("psycopg")
    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://meter:secret@127.0.0.1:{port}/meter"
    for command in (["report"], ["keys", "list"], ["keys", "create", "--scope", "read"]):
        assert main([*command, "--database", url]) == 2, command
        err = capsys.readouterr().err
        assert err.startswith(
            f"meterline: error: cannot connect to PostgreSQL at postgresql://meter:***@127.0.0.1:{port}"
        )
        assert err.count("\n") == 1 and "secret" not in err and "Traceback" not in err


@pytest.mark.postgres
def test_an_unknown_postgresql_database_is_one_line(postgres_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    url = postgres_url.rsplit("/", 1)[0] + "/meterline_no_such_database"
    assert main(["report", "--database", url]) == 2
    err = capsys.readouterr().err
    assert err.startswith("meterline: error: cannot connect to PostgreSQL at ") and err.count("\n") == 1
    assert 'database "meterline_no_such_database" does not exist' in err


def test_tiny_costs_keep_significant_digits_and_empty_reports_say_why(
    meter_db: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    meterline.record(provider="p", model="tiny", input_tokens=1, total_cost=Decimal("0.00000042"), subscriber_id="a")
    meterline.record(provider="p", model="big", input_tokens=1, total_cost=Decimal("1234.5"), subscriber_id="a")
    assert meterline.flush(10)
    db = meter_db.destination
    assert main(["report", "--database", db, "-g", "model"]) == 0
    rows = {line.split()[0]: line.split()[-1] for line in capsys.readouterr().out.splitlines()[2:4]}
    assert rows == {"big": "1,234.500000", "tiny": "0.00000042"}
    assert main(["report", "--database", db, "--filter", "subscriber_id=nobody"]) == 0
    assert capsys.readouterr().out.endswith("(no events match the filter)\n")
    assert main(["report", "--database", db, "--start", "2099-01-01"]) == 0
    assert capsys.readouterr().out.endswith("(no events in range)\n")


def test_doctor_contacts_the_collector_and_checks_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("fastapi")
    from collector_support import ThreadCollector, free_port
    from meterline.store import keys as key_store

    nowhere = f"http://127.0.0.1:{free_port()}"
    assert main(["doctor", "--database", nowhere, "--api-key", "k"]) == 1
    out = capsys.readouterr().out
    assert f"store            PROBLEM: cannot reach the collector at {nowhere}" in out
    with ThreadCollector(database=f"sqlite:///{tmp_path / 'c.db'}") as c:
        ingest = key_store.create_key(c.app.state.writer, "ingest")[0]
        assert main(["doctor", "--database", c.url, "--api-key", ingest]) == 0
        assert "store            collector ok" in capsys.readouterr().out
        assert main(["doctor", "--database", c.url, "--api-key", "ml_i_wrong"]) == 1
        assert "PROBLEM: the collector refuses the API key" in capsys.readouterr().out
        assert main(["doctor", "--database", c.url]) == 1
        assert "no API key is set" in capsys.readouterr().out
        assert c.store.count() == 0  # the key check stored nothing


def test_export_and_demo_take_an_api_key() -> None:
    from meterline.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["export", "--api-key", "k"]).api_key == "k"
    assert parser.parse_args(["demo", "--api-key", "k"]).api_key == "k"
    assert parser.parse_args(["doctor", "--api-key", "k"]).api_key == "k"


def test_gateway_binds_loopback_and_says_what_it_does(monkeypatch: pytest.MonkeyPatch) -> None:
    from meterline.cli import build_parser
    from meterline.cli.gateway import start_line

    assert build_parser().parse_args(["gateway", "--config", "x.yaml"]).host == "127.0.0.1"
    monkeypatch.setenv("METERLINE_DESTINATION", "postgresql://meter:secret@db/meter")
    monkeypatch.delenv("METERLINE_BUDGETS", raising=False)
    monkeypatch.delenv("METERLINE_REDIS_URL", raising=False)
    assert start_line("127.0.0.1", 4000) == (
        "meterline gateway: http://127.0.0.1:4000 -> events to postgresql://meter:***@db/meter; "
        "budgets on (definitions in the destination); in-process counters"
    )
    monkeypatch.setenv("METERLINE_BUDGETS", "off")
    monkeypatch.setenv("METERLINE_REDIS_URL", "redis://127.0.0.1:6379/0")
    assert start_line("0.0.0.0", 4001).endswith("; budgets off; Redis counters at redis://127.0.0.1:6379/0")


def test_gateway_on_a_busy_port_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text("model_list: []\n")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["gateway", "--config", str(config), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"meterline gateway: 127.0.0.1:{port} is already in use (another gateway or proxy?); pick another --port\n"
    )


@pytest.mark.parametrize("doc", ["docs/guides/gateway.md", "examples/gateway.yaml"])
def test_documented_curl_sends_json_with_its_content_type(doc: str) -> None:
    text = (ROOT / doc).read_text()
    commands = re.findall(r"curl .*?-d '\{.*?\}'", text, flags=re.S)
    assert commands, f"no curl with a JSON body in {doc}"
    for command in commands:
        assert '-H "Content-Type: application/json"' in command, command


def test_the_readme_environment_filter_matches_demo_data() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "--filter environment=prod" in readme
    demo = (ROOT / "src/meterline/cli/demo.py").read_text()
    assert 'env = "staging" if i % 8 == 7 else "prod"' in demo
    assert 'os.environ.setdefault("METERLINE_ENVIRONMENT", "prod")' in demo


def test_the_all_extra_installs_every_user_facing_extra() -> None:
    """`pip install meterline[all]` must serve OTLP protobuf (interop), OpenTelemetry export (otel) and the
    embedded ClickHouse (chdb): an `[all]` install answered 415 to OTLP protobuf when it lacked interop."""
    import re as _re

    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    (spec,) = extras["all"]
    named = set(_re.fullmatch(r"meterline\[(.+)\]", spec).group(1).split(","))  # type: ignore[union-attr]
    own_stacks = {"crewai", "langchain", "browser", "dev", "all"}  # pinned frameworks, test tools, itself
    assert named == set(extras) - own_stacks


def test_every_command_help_is_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    """`meterline demo --help` printed the module docstring's RST (``meterline demo``, :mod:`…`)."""
    from meterline.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert "demo" in commands
    for name in commands:
        with pytest.raises(SystemExit):
            main([name, "--help"])
        out = capsys.readouterr().out
        assert "``" not in out and ":mod:`" not in out and ":func:`" not in out, name


def test_demo_serve_over_a_metered_demo_serves_it_without_metering_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`meterline demo` then `meterline demo --serve` (the demo's own hint) doubled every figure."""
    import uvicorn

    from meterline.core.event import UsageEvent
    from meterline.store import SQLiteStore

    db = tmp_path / "demo.db"
    store = SQLiteStore(db)
    when = datetime(2026, 11, 20, tzinfo=timezone.utc)
    store.insert(
        [
            UsageEvent(
                provider="anthropic", model="m", start_time=when, subscriber_id="acme", product_id="research-agent"
            )
        ]
    )
    store.close()
    served: list[int] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port: served.append(port))
    assert main(["demo", "--serve", "--database", f"sqlite:///{db}", "--port", "8799"]) == 0
    assert served == [8799]
    assert "serving them" in capsys.readouterr().out
    store = SQLiteStore(db)
    assert store.count() == 1  # nothing metered again
    store.close()
