"""CrewAI (the real package, in its own venv: .ci/run) with its LLM pointed at the fake provider: every LLM
call is one event carrying the agent's role, the task and the crew run; no double count with the SDK
integration underneath."""

from __future__ import annotations

import os
from typing import Any

import pytest

import meterline
from agent_frameworks import require

pytestmark = pytest.mark.crewai

QUIET = {"CREWAI_DISABLE_TELEMETRY": "true", "OTEL_SDK_DISABLED": "true", "CREWAI_TRACING_ENABLED": "false",
         "CREWAI_DISABLE_TRACKING": "true"}  # fmt: skip  (no telemetry: the tests reach 127.0.0.1 only)

FINAL = "Thought: I now know the final answer\nFinal Answer: done"


@pytest.fixture(autouse=True)
def _quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in QUIET.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def crewai(meter_db: Any) -> Any:
    module = require("crewai", "/tmp/venv-crewai (pip install -e '.[crewai]' pytest pytest-asyncio)")
    meterline.instrument_openai()
    meterline.instrument_crewai()
    yield module
    meterline.uninstrument("openai", "crewai")


def _crew(crewai: Any, fake: Any, name: str | None = "report-crew") -> Any:
    llm = crewai.LLM(model="openai/gpt-4o-mini", base_url=fake.openai_base_url, api_key="sk-test")
    researcher = crewai.Agent(role="Researcher", goal="find facts", backstory="careful", llm=llm, max_iter=2)
    writer = crewai.Agent(role="Writer", goal="write it up", backstory="clear", llm=llm, max_iter=2)
    research = crewai.Task(
        name="research", description="Research the market", expected_output="notes", agent=researcher
    )
    write = crewai.Task(description="Write the report\nin two lines", expected_output="text", agent=writer)
    return crewai.Crew(name=name, agents=[researcher, writer], tasks=[research, write])


def test_agent_task_and_crew_run_on_every_llm_call(crewai: Any, meter_db: Any, fake_provider: Any) -> None:
    fake_provider.set_reply(text=FINAL)
    _crew(crewai, fake_provider).kickoff()
    first_run = len(fake_provider.requests)
    _crew(crewai, fake_provider, name=None).kickoff()
    events = meter_db.events()
    assert len(events) == len(fake_provider.requests) == 2 * first_run  # one event per LLM call
    assert all(e.integration == "openai" for e in events)
    runs: dict[str, list[Any]] = {}
    for e in events:
        runs.setdefault(e.trace_id, []).append(e)
    assert len(runs) == 2  # one trace per crew run
    by_name = {evs[0].trace_name: evs for evs in runs.values()}
    assert set(by_name) == {"report-crew", "crew"}
    for evs in by_name.values():
        assert [(e.agent, e.task_type) for e in evs] == [("Researcher", "research"), ("Writer", "Write the report")]
        assert {e.trace_type for e in evs} == {"crewai"}


def test_the_apps_own_trace_wins_and_nothing_leaks_after_the_run(
    crewai: Any, meter_db: Any, fake_provider: Any
) -> None:
    fake_provider.set_reply(text=FINAL)
    with meterline.metadata(trace_id="conv-7", subscriber_id="cust-1"):
        _crew(crewai, fake_provider).kickoff()
    import openai

    openai.OpenAI(base_url=fake_provider.openai_base_url, api_key="x").chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "after"}]
    )
    *in_crew, after = meter_db.events()
    assert {(e.trace_id, e.subscriber_id, e.trace_name) for e in in_crew} == {("conv-7", "cust-1", "report-crew")}
    assert (after.agent, after.task_type, after.trace_id) == (None, None, None)


async def test_async_kickoff(crewai: Any, meter_db: Any, fake_provider: Any) -> None:
    fake_provider.set_reply(text=FINAL)
    await _crew(crewai, fake_provider).kickoff_async()
    events = meter_db.events()
    assert len(events) == len(fake_provider.requests) >= 2
    assert [e.agent for e in events] == ["Researcher", "Writer"] and len({e.trace_id for e in events}) == 1


def test_uninstrument_restores_crewai() -> None:
    crewai = require("crewai", "/tmp/venv-crewai")
    original = crewai.Crew.__dict__["kickoff"]
    meterline.instrument("crewai")
    assert crewai.Crew.__dict__["kickoff"] is not original
    meterline.uninstrument("crewai")
    assert crewai.Crew.__dict__["kickoff"] is original


def test_instrument_waits_for_the_apps_own_import() -> None:
    import subprocess
    import sys

    require("crewai", "/tmp/venv-crewai")
    code = (
        "import sys, meterline\n"
        "meterline.instrument('crewai')\n"
        "assert 'crewai' not in sys.modules, 'imported by meterline'\n"
        "import crewai\n"
        "assert crewai.Crew.__dict__['kickoff'].__meterline_original__\n"
    )
    env = {**os.environ, **QUIET}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
