"""LangChain / LangGraph: a callback handler that attributes each LLM call to its run tree.

For every chat model / LLM run, the handler enters a metadata scope while the model is called:

- ``trace_id``: the root run's id (one trace per top-level ``invoke``), ``trace_name``: the root run's name,
  ``trace_type``: ``langchain`` (unless the app's own metadata set these);
- ``parent_transaction_id``: the id of the run that called the model (chain, agent step or graph node);
- ``agent``: the LangGraph node name (``metadata["langgraph_node"]``), else the nearest enclosing chain's
  name.

The model's provider call is metered by the SDK integration underneath (``langchain-openai`` → the OpenAI
SDK, ``langchain-anthropic`` → the Anthropic SDK, ``ChatLiteLLM`` → LiteLLM): the handler emits nothing
itself, so each LLM call is exactly one event. Use it explicitly
(``config={"callbacks": [MeterlineCallbackHandler()]}``) or let ``meterline.instrument("langchain")`` add it
to every run. The handler runs inline (also for async runs) so the scope is entered in the task that
calls the model. Tested on langchain-core 1.x and langgraph 1.x.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

from meterline.integrations import _scope

TESTED_VERSIONS = "langchain-core>=0.3,<2"


def __getattr__(name: str) -> Any:
    # the handler class subclasses langchain-core's: imported on first use, never by instrument() itself
    if name == "MeterlineCallbackHandler":
        from meterline.integrations._langchain_handler import MeterlineCallbackHandler

        return MeterlineCallbackHandler
    raise AttributeError(name)


# -- automatic: every LangChain run gets the handler ------------------------------------------------------
_lock = threading.Lock()
_hook: tuple[Any, ...] | None = None
_cancel: Callable[[], None] | None = None


def _register(module: ModuleType) -> None:
    global _hook
    from langchain_core.tracers.context import _configure_hooks, register_configure_hook

    from meterline.integrations._langchain_handler import MeterlineCallbackHandler

    with _lock:
        if _hook is not None:
            return
        # the default (not a set()) is seen by every thread and task: the handler joins every run
        var: contextvars.ContextVar[Any] = contextvars.ContextVar(
            "meterline_langchain_handler",
            default=MeterlineCallbackHandler(),  # noqa: B039 - one shared handler, on purpose
        )
        register_configure_hook(var, True, MeterlineCallbackHandler)
        _hook = _configure_hooks[-1]


def instrument() -> None:
    """Add the handler to every LangChain run (idempotent); waits for langchain_core's import if needed."""
    global _cancel
    if _hook is not None or _cancel is not None:
        return
    _cancel = _scope.when_imported("langchain_core", lambda _m: _register_now())


def _register_now() -> None:
    import langchain_core.tracers.context as ctx_module

    _register(ctx_module)


def uninstrument() -> bool:
    global _hook, _cancel
    if _cancel is not None:
        _cancel()
        _cancel = None
    with _lock:
        if _hook is None:
            return False
        from langchain_core.tracers.context import _configure_hooks

        if _hook in _configure_hooks:
            _configure_hooks.remove(_hook)
        _hook = None
        return True


def is_instrumented() -> bool:
    return _hook is not None
