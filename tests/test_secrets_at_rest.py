"""No secret the redaction presets cover reaches any byte meterline writes: the SQLite store, the durable log,
the spool, the dead letters, exports and meterline's log output. Real OpenAI SDK calls against the fake
provider with ``durability="disk"``, content capture and ``capture_headers=True``; once stored, once refused
(dead-lettered), once with the destination down (spooled), once failing with an error that quotes the key.

Regression: the durable log used to hold every prompt, reply and the client's ``Authorization`` header in
clear (redaction ran only later, on the recorder's thread) until the next start."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import openai
import pytest

import meterline
from meterline.cli import main
from meterline.core.event import UsageEvent
from meterline.sdk.redaction import Redactor

# one sample per preset of meterline.sdk.redaction, plus the credential header
OPENAI_KEY = "sk-proj-Q3xTz9LmN4pR7sV2wY5bC8dF1gH6jK0aE3iO"
CLIENT_KEY = "sk-proj-CLIENTabcdefghijklmnopqrstuvwxyz0123456789"  # sent by the SDK as `Authorization: Bearer …`
AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
CARD = "4111 1111 1111 1111"
EMAIL = "jane.doe@example.com"
PHONE = "+44 20 7946 0958"
IP = "203.0.113.77"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkphbmUifQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
TEXT = (
    f"My OpenAI key is {OPENAI_KEY}, AWS {AWS_KEY_ID} with aws_secret_access_key={AWS_SECRET}; card {CARD}; "
    f"mail {EMAIL}, call {PHONE}; host {IP}; Authorization: Bearer {JWT}"
)
NEEDLES = {
    "openai key": OPENAI_KEY,
    "client key (Authorization header)": CLIENT_KEY,
    "aws key id": AWS_KEY_ID,
    "aws secret": AWS_SECRET,
    "card": CARD,
    "card digits": CARD.replace(" ", ""),
    "email": EMAIL,
    "phone": PHONE,
    "phone tail": "7946 0958",
    "ip": IP,
    "jwt": JWT,
    "jwt payload": JWT.split(".")[1],
}


def _leaks(data: bytes) -> list[str]:
    return [name for name, value in NEEDLES.items() if value.encode() in data]


def _files(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _assert_no_secret_in_any_file(root: Path) -> dict[Path, bytes]:
    files = _files(root)
    leaks = {str(p.relative_to(root)): found for p, data in files.items() if (found := _leaks(data))}
    assert leaks == {}, f"secrets written in clear: {leaks}"
    return files


def _poison(event: UsageEvent) -> UsageEvent:
    # a value SQLite cannot store, planted after redaction: the store refuses this one event (dead letter)
    if event.agent == "poison":
        event.subscriber_id = "\ud800"
    return event


def _calls(client: openai.OpenAI, fake: Any, agents: list[str]) -> None:
    for agent in agents:
        kw: dict[str, Any] = {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": TEXT}],
            "extra_headers": {"X-Forwarded-Authorization": f"Bearer {JWT}"},
            "usage_metadata": {"agent": agent},
        }
        if agent == "stream":
            for _ in client.chat.completions.create(stream=True, **kw):
                pass
        else:
            client.chat.completions.create(**kw)


def test_no_preset_secret_reaches_any_file_or_log_line(
    tmp_path: Path, fake_provider: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name, value in NEEDLES.items():  # every sample is one the presets catch
        assert value not in Redactor().text(TEXT), name
    monkeypatch.setenv("METERLINE_HOME", str(tmp_path / "home"))  # anything meterline keeps lands under tmp_path
    caplog.set_level(logging.DEBUG)
    state, db = tmp_path / "state", tmp_path / "m.db"
    dest = f"sqlite:///{db}"
    capture = {"capture_content": True, "capture_headers": True, "capture_raw_request": True}
    fake_provider.set_reply(text=f"Noted. {TEXT}")
    meterline.instrument_openai()
    try:
        client = openai.OpenAI(base_url=fake_provider.openai_base_url, api_key=CLIENT_KEY, max_retries=0)
        # 1. stored (plain, streamed), refused (dead-lettered) and failed calls, through the durable log
        meterline.init(dest, spool_dir=state, durability="disk", before_write=_poison, **capture)  # type: ignore[arg-type]
        _calls(client, fake_provider, ["stored", "stream", "poison"])
        fake_provider.fail_next(401, body={"error": {"message": f"Incorrect API key provided: {CLIENT_KEY}"}})
        with pytest.raises(openai.AuthenticationError):
            _calls(client, fake_provider, ["failed"])
        assert meterline.flush(10)
        s = meterline.stats()
        assert (s["written"], s["dead_lettered"], s["dropped_sink_failure"]) == (3, 1, 0), s
        _assert_no_secret_in_any_file(tmp_path)
        segments = list(state.rglob("seg-*.log"))  # the live durable log was part of what was searched
        assert segments and b"[REDACTED:secret]" in b"".join(p.read_bytes() for p in segments)
        assert meterline.shutdown(10)
        # 2. the destination is down: the event waits in the spool (and the durable log)
        meterline.init("http://127.0.0.1:9/", spool_dir=state, durability="disk", max_retries=0, **capture)  # type: ignore[arg-type]
        _calls(client, fake_provider, ["spooled"])
        assert meterline.flush(10)
        assert meterline.stats()["spooled"] == 1
        _assert_no_secret_in_any_file(tmp_path)
        meterline.shutdown(0.5)
    finally:
        meterline.uninstrument("openai")
    # every call carried the secrets to the provider: there was something to leak
    assert all(CLIENT_KEY in str(r.headers) for r in fake_provider.requests)
    assert all(OPENAI_KEY in str(r.body) for r in fake_provider.requests)
    # 3. exports
    assert main(["export", "--database", dest, "--format", "jsonl", "-o", str(tmp_path / "events.jsonl")]) == 0
    assert main(["export", "--database", dest, "--format", "csv", "-o", str(tmp_path / "events.csv")]) == 0
    files = _assert_no_secret_in_any_file(tmp_path)
    written = {p.relative_to(tmp_path).parts[-1] for p in files}
    assert {"m.db", "deadletter.jsonl", "events.jsonl", "events.csv"} <= written, written
    assert any(p.suffix == ".jsonl" and p.parent.name == "spool" for p in files), written
    everything = b"".join(files.values())
    for marker in ("secret", "card", "email", "phone", "ip"):
        assert f"[REDACTED:{marker}]".encode() in everything, marker
    # 4. meterline's log output
    ours = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records if r.name.startswith("meterline"))
    assert "dead-lettered" in ours  # the refusal was logged
    assert _leaks(ours.encode()) == []
