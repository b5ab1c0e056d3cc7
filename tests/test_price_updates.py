"""Prices that stay current without a release: ``meterline prices update`` from a (local) server, validation,
the kept copy, provenance in ``pricing_source``, ``prices history`` and ``--reprice-open``.

The "server" is a thread in this test serving a data file in genai-prices' update format (the packaged data
written back as JSON, with one model's price changed); nothing goes to the network. Clocks are fixed.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import genai_prices
import pytest

from meterline.cli import main
from meterline.core.event import UsageEvent
from meterline.pricing import Pricer
from meterline.pricing import data as price_data
from price_data_file import data_file, find_model, packaged_providers

UTC = timezone.utc
PUBLISHED = "Tue, 01 Dec 2026 08:00:00 GMT"  # the Last-Modified the server sends: the data's date
NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


class _Server:
    def __init__(self) -> None:
        self.body = b""
        self.status = 200
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(owner.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Last-Modified", PUBLISHED)
                self.send_header("Content-Length", str(len(owner.body)))
                self.end_headers()
                self.wfile.write(owner.body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/data.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[_Server]:
    s = _Server()
    yield s
    s.close()


@pytest.fixture(autouse=True)
def price_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A kept-copy directory of this test's own; the packaged data again afterwards."""
    folder = tmp_path / "prices"
    monkeypatch.setenv("METERLINE_PRICES_DIR", str(folder))
    monkeypatch.delenv("METERLINE_PRICES_URL", raising=False)
    price_data.forget_loaded()
    yield folder
    price_data.install(None)
    price_data.forget_loaded()


def newer_data(gpt4o_from: str = "2026-12-10") -> bytes:
    """The packaged data with gpt-4o's price cut from ``gpt4o_from`` ($2/$8 per 1M, was $2.50/$10)."""
    providers = packaged_providers()
    model = find_model(providers, "openai", "gpt-4o")
    old = model["prices"]
    assert isinstance(old, dict)
    model["prices"] = [
        {"prices": old},
        {"constraint": {"start_date": gpt4o_from}, "prices": {**old, "input_mtok": "2", "output_mtok": "8"}},
    ]
    return data_file(providers)


def _event(model: str, when: datetime, provider: str = "openai", **fields: Any) -> UsageEvent:
    e = UsageEvent(provider=provider, model=model, start_time=when, end_time=when, **fields)
    e.finalize_totals()
    return e


def _priced(model: str, when: datetime, provider: str = "openai", **fields: Any) -> UsageEvent:
    e = _event(model, when, provider, input_tokens=1_000_000, output_tokens=1_000_000, **fields)
    Pricer().price(e)
    return e


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_update_from_a_local_server_changes_a_price_from_its_date(
    server: _Server, tmp_path: Path, capsys: pytest.CaptureFixture[str], price_state: Path
) -> None:
    server.body = newer_data()
    sha = hashlib.sha256(server.body).hexdigest()
    db = f"sqlite:///{tmp_path / 'm.db'}"
    packaged = f"genai-prices@{genai_prices.__version__}"
    before = _priced("gpt-4o", datetime(2026, 12, 10, 12, tzinfo=UTC))
    assert (before.total_cost, before.pricing_source) == (Decimal("12.5"), packaged)

    code, out, err = _cli(capsys, "prices", "update", "--from", server.url, "--database", db)
    assert code == 0, err
    version = f"2026-12-01.{sha[:8]}"
    source = f"{packaged}+data.{version}"
    assert f"installed price data {version} from {server.url}" in out
    assert f"pricing_source={source}" in out

    day_before = _priced("gpt-4o", datetime(2026, 12, 9, 23, 59, 59, 999_999, tzinfo=UTC))
    from_the_date = _priced("gpt-4o", datetime(2026, 12, 10, tzinfo=UTC))
    assert (day_before.total_cost, day_before.pricing_source) == (Decimal("12.5"), source)
    assert (from_the_date.total_cost, from_the_date.pricing_source) == (Decimal("10"), source)

    # kept for every later process: a fresh start (packaged data, nothing loaded) loads the same data
    assert (price_state / price_data.FILE_NAME).is_file()
    price_data.install(None)
    price_data.forget_loaded()
    info = price_data.load_kept()
    assert info is not None and (info.version, info.sha256, info.origin) == (version, sha, server.url)
    assert _priced("gpt-4o", datetime(2026, 12, 11, tzinfo=UTC)).total_cost == Decimal("10")


def test_a_pricer_made_before_the_update_uses_the_new_data(server: _Server) -> None:
    pricer = Pricer()
    e = _event("gpt-4o", datetime(2026, 12, 12, tzinfo=UTC), input_tokens=1_000_000)
    pricer.price(e)
    assert e.total_cost == Decimal("2.5")
    server.body = newer_data()
    price_data.update(server.url, now=NOW)
    e = _event("gpt-4o", datetime(2026, 12, 12, tzinfo=UTC), input_tokens=1_000_000)
    pricer.price(e)  # its resolved-price cache is dropped when the data changes
    assert e.total_cost == Decimal("2")
    assert e.pricing_source is not None and "+data.2026-12-01." in e.pricing_source


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"<html>502 Bad Gateway</html>", "not JSON"),
        (b'{"providers": "nope"}', "a non-empty JSON list of providers"),
        (json.dumps([{"id": "openai", "name": "OpenAI"}]).encode(), "not genai-prices' data schema"),
        ("truncated", "refused (a truncated download or the wrong file?)"),
        ("bad price", "not genai-prices' data schema"),
    ],
)
def test_a_broken_data_file_is_refused_and_the_old_prices_stay(
    server: _Server, tmp_path: Path, capsys: pytest.CaptureFixture[str], price_state: Path, body: Any, says: str
) -> None:
    server.body = newer_data()
    db = f"sqlite:///{tmp_path / 'm.db'}"
    assert _cli(capsys, "prices", "update", "--from", server.url, "--database", db)[0] == 0
    working = _priced("gpt-4o", datetime(2026, 12, 10, tzinfo=UTC))
    kept = (price_state / price_data.FILE_NAME).read_bytes()
    if body == "truncated":
        body = data_file(packaged_providers()[:3])
    elif body == "bad price":
        providers = packaged_providers()
        find_model(providers, "openai", "gpt-4o")["prices"] = {"input_mtok": "two dollars"}
        body = data_file(providers)
    server.body = body

    code, _, err = _cli(capsys, "prices", "update", "--from", server.url, "--database", db)
    assert code == 2
    assert says in err and server.url in err
    assert f"nothing changed: prices stay {working.pricing_source}" in err
    again = _priced("gpt-4o", datetime(2026, 12, 10, tzinfo=UTC))
    assert (again.total_cost, again.pricing_source) == (Decimal("10"), working.pricing_source)
    assert (price_state / price_data.FILE_NAME).read_bytes() == kept


def test_unreachable_server_and_offline_machines_keep_the_packaged_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _cli(
        capsys, "prices", "update", "--from", "http://127.0.0.1:9/data.json", "--database", f"sqlite:///{tmp_path}/m.db"
    )
    assert code == 2 and "cannot fetch price data from http://127.0.0.1:9/data.json" in err
    assert "nothing changed: prices stay genai-prices@" in err
    assert price_data.load_kept() is None  # nothing kept: the packaged data applies
    assert _priced("gpt-4o", datetime(2026, 12, 10, tzinfo=UTC)).pricing_source == (
        f"genai-prices@{genai_prices.__version__}"
    )


def test_update_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    path.write_bytes(newer_data())
    import os

    os.utime(path, (datetime(2026, 11, 30, tzinfo=UTC).timestamp(),) * 2)
    info = price_data.update(str(path), now=NOW)
    assert info.version.startswith("2026-11-30.") and info.origin == str(path)
    assert _priced("gpt-4o", datetime(2026, 12, 10, tzinfo=UTC)).total_cost == Decimal("10")


def test_refresh_interval_setting() -> None:
    assert price_data.parse_interval("") is None and price_data.parse_interval("off") is None
    assert (price_data.parse_interval("24h"), price_data.parse_interval("90m")) == (86400.0, 5400.0)
    assert price_data.parse_interval("3600") == 3600.0 and price_data.parse_interval("true") == 86400.0
    with pytest.raises(ValueError, match="METERLINE_PRICES_REFRESH: not an interval"):
        price_data.parse_interval("hourly")
    with pytest.raises(ValueError, match="at least 60 seconds"):
        price_data.parse_interval("5s")


def test_periodic_refresh_uses_genai_prices_updater_and_refuses_broken_data(server: _Server) -> None:
    installed: list[str] = []
    server.body = b"not json"
    r = price_data.refresher(3600, server.url, on_install=lambda info: installed.append(info.version))
    try:
        with pytest.raises(price_data.PriceDataError, match="not JSON"):
            r.wait(timeout=20)
    finally:
        r.stop()
    assert installed == []
    assert _priced("gpt-4o", datetime(2026, 12, 10, tzinfo=UTC)).total_cost == Decimal("12.5")
    server.body = newer_data()
    r = price_data.refresher(3600, server.url, on_install=lambda info: installed.append(info.version))
    try:
        assert r.wait(timeout=20) is True
    finally:
        r.stop()
    assert len(installed) == 1 and installed[0].startswith("2026-12-01.")
    assert _priced("gpt-4o", datetime(2026, 12, 10, tzinfo=UTC)).total_cost == Decimal("10")


def test_provenance_is_stored_and_shown_in_history_and_report(
    server: _Server, database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from meterline.store.backend import open_stores

    db = database  # SQLite and PostgreSQL
    store, reader = open_stores(db, pool_size=1)
    if reader is not store:
        reader.close()
    old = _priced("gpt-4o", datetime(2026, 11, 20, 10, tzinfo=UTC))
    store.insert([old])
    server.body = newer_data()
    assert _cli(capsys, "prices", "update", "--from", server.url, "--database", db)[0] == 0
    new = _priced("gpt-4o", datetime(2026, 12, 12, 10, tzinfo=UTC))
    sonar = _priced("sonar", datetime(2026, 12, 12, 11, tzinfo=UTC), provider="perplexity")
    store.insert([new, sonar])
    store.close()
    assert new.pricing_source is not None
    assert sonar.pricing_source == f"{new.pricing_source};correction:perplexity-sonar-request-fee"

    code, out, _ = _cli(capsys, "export", "--format", "jsonl", "--database", db)
    stored = {json.loads(line)["id"]: json.loads(line)["pricing_source"] for line in out.splitlines()}
    assert stored == {old.id: old.pricing_source, new.id: new.pricing_source, sonar.id: sonar.pricing_source}

    code, out, _ = _cli(capsys, "prices", "history", "--database", db, "--json")
    assert code == 0
    history = json.loads(out)
    used = {u["source"]: u for u in history["used_by_events"]}
    assert used[old.pricing_source]["events"] == 1
    assert used[new.pricing_source]["events"] == 2
    assert used[new.pricing_source]["corrections"] == {"perplexity-sonar-request-fee": 1}
    assert used[new.pricing_source]["first_call"] == "2026-12-12T10:00:00+00:00"
    [update] = history["recorded"]
    assert (update["kind"], update["source"], update["detail"]["origin"]) == ("update", new.pricing_source, server.url)
    code, out, _ = _cli(capsys, "prices", "history", "--database", db)
    assert f"  {new.pricing_source}" in out and "with correction perplexity-sonar-request-fee: 1 events" in out

    code, out, _ = _cli(capsys, "report", "--database", db, "--start", "2026-11-01", "--end", "2027-01-01")
    assert code == 0
    assert "price data" in out and new.pricing_source in out and str(old.pricing_source) in out
