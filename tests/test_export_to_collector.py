"""A billing export with --url keeps its ledger in the database: pointed at a collector URL it says so in one
line (it raised an AttributeError traceback at the first ledger use)."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector_support import ThreadCollector
from meterline.cli import main
from meterline.store import keys as key_store


def test_a_ledger_export_from_a_collector_url_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with ThreadCollector(database=f"sqlite:///{tmp_path / 'meterline.db'}") as c:
        read, _ = key_store.create_key(c.app.state.writer, "read", "r")
        args = ["export", "--format", "lago", "--url", "http://127.0.0.1:9/lago", "--database", c.url]
        code = main([*args, "--api-key", read])
    err = capsys.readouterr().err
    assert code == 2
    assert "--url exports keep their ledger in the database" in err and "Traceback" not in err
