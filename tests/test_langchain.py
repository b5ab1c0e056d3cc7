"""LangChain / LangGraph (the real packages, in their own venv: .ci/run) with ChatOpenAI pointed at the fake
provider: run ids map to trace and parent ids, the chain or graph node name to ``agent``; one event per LLM
call (the OpenAI SDK integration underneath meters, the handler only attributes)."""

from __future__ import annotations

import uuid
from typing import Any, TypedDict

import pytest

import meterline
from agent_frameworks import require

pytestmark = pytest.mark.langchain
VENV = "/tmp/venv-langchain (pip install -e '.[langchain]' pytest pytest-asyncio)"


@pytest.fixture
def lc(meter_db: Any) -> Any:
    require("langchain_core", VENV)
    require("langchain_openai", VENV)
    meterline.instrument("openai")
    yield
    meterline.uninstrument("openai", "langchain")


def _llm(fake: Any) -> Any:
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(model="gpt-4o-mini", base_url=fake.openai_base_url, api_key="sk-test", max_retries=0)


class State(TypedDict, total=False):
    question: str
    plan: str
    answer: str


def _graph(fake: Any) -> Any:
    require("langgraph", VENV)
    from langgraph.graph import END, START, StateGraph

    llm = _llm(fake)

    def planner(state: State) -> State:
        return {"plan": str(llm.invoke(f"plan: {state['question']}").content)}

    def writer(state: State) -> State:
        return {"answer": str(llm.invoke(f"write: {state['plan']}").content)}

    g = StateGraph(State)
    g.add_node("planner", planner)
    g.add_node("writer", writer)
    g.add_edge(START, "planner")
    g.add_edge("planner", "writer")
    g.add_edge("writer", END)
    return g.compile(name="support-graph")


def test_langgraph_nodes_become_agents_in_one_trace(lc: Any, meter_db: Any, fake_provider: Any) -> None:
    from meterline.integrations.langchain import MeterlineCallbackHandler

    root = uuid.uuid4()
    _graph(fake_provider).invoke(
        {"question": "refund?"}, config={"callbacks": [MeterlineCallbackHandler()], "run_id": root}
    )
    events = meter_db.events()
    assert len(events) == len(fake_provider.requests) == 2
    assert [e.agent for e in events] == ["planner", "writer"]
    assert {e.trace_id for e in events} == {str(root)}
    assert {e.trace_name for e in events} == {"support-graph"} and {e.trace_type for e in events} == {"langchain"}
    parents = [e.parent_transaction_id for e in events]
    assert all(parents) and parents[0] != parents[1] and str(root) not in parents  # each node's own run
    assert {e.integration for e in events} == {"openai"}


def test_chain_name_is_the_agent_and_instrument_adds_the_handler_everywhere(
    lc: Any, meter_db: Any, fake_provider: Any
) -> None:
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate

    meterline.instrument("langchain")
    chain = (ChatPromptTemplate.from_messages([("user", "{q}")]) | _llm(fake_provider) | StrOutputParser()).with_config(
        run_name="triage"
    )
    root = uuid.uuid4()
    chain.invoke({"q": "hello"}, config={"run_id": root})
    chain.invoke({"q": "again"})
    _llm(fake_provider).invoke("bare call")  # a model run on its own is its own trace
    first, second, bare = meter_db.events()
    assert (first.agent, first.trace_id, first.trace_name, first.parent_transaction_id) == (
        "triage", str(root), "triage", str(root),
    )  # fmt: skip
    assert second.agent == "triage" and second.trace_id not in (None, str(root))
    assert bare.agent is None and bare.trace_id is not None and bare.parent_transaction_id is None
    assert len(fake_provider.requests) == 3


def test_the_apps_metadata_wins_and_no_scope_leaks(lc: Any, meter_db: Any, fake_provider: Any) -> None:
    import openai

    meterline.instrument("langchain")
    with meterline.metadata(trace_id="conv-9", subscriber_id="cust-2"):
        _graph(fake_provider).invoke({"question": "q"})
    openai.OpenAI(base_url=fake_provider.openai_base_url, api_key="x").chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "after"}]
    )
    *in_graph, after = meter_db.events()
    assert {(e.trace_id, e.subscriber_id) for e in in_graph} == {("conv-9", "cust-2")}
    assert [e.agent for e in in_graph] == ["planner", "writer"]
    assert (after.agent, after.trace_id, after.parent_transaction_id) == (None, None, None)


async def test_async_graph(lc: Any, meter_db: Any, fake_provider: Any) -> None:
    meterline.instrument("langchain")
    root = uuid.uuid4()
    await _graph(fake_provider).ainvoke({"question": "q"}, config={"run_id": root})
    events = meter_db.events()
    assert [e.agent for e in events] == ["planner", "writer"] and {e.trace_id for e in events} == {str(root)}


def test_instrument_waits_for_the_apps_own_import() -> None:
    import subprocess
    import sys

    require("langchain_core", VENV)
    code = (
        "import sys, meterline\n"
        "meterline.instrument('langchain')\n"
        "assert 'langchain_core' not in sys.modules, 'imported by meterline'\n"
        "import langchain_core.callbacks\n"
        "from meterline.integrations import langchain\n"
        "assert langchain.is_instrumented()\n"
        "from langchain_core.callbacks.manager import CallbackManager\n"
        "m = CallbackManager.configure()\n"
        "assert any(type(h).__name__ == 'MeterlineCallbackHandler' for h in m.handlers), m.handlers\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
