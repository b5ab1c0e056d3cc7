"""CrewAI: per-agent, per-task and per-crew-run attribution, automatic once instrumented.

``instrument()`` wraps ``Crew.kickoff`` (and its async forms) and ``Agent.execute_task`` (and
``aexecute_task``) so that every LLM call made inside them carries:

- ``trace_id``: one new id per crew run, ``trace_name``: the crew's name (``"crew"`` when unnamed),
  ``trace_type``: ``crewai`` (unless the app's own metadata set these);
- ``agent``: the agent's role; ``task_type``: the task's name, else the start of its description.

CrewAI's LLM calls are metered by the integration underneath (OpenAI or Anthropic SDK, LiteLLM): this
module only adds metadata scopes, so each LLM call is exactly one event, never two. Calls CrewAI runs in
worker threads of its own (``max_execution_time``) start without the scope, as any new thread does.
Tested on crewai 1.15.
"""

from __future__ import annotations

import functools
import inspect
import threading
import uuid
from collections.abc import Callable
from types import ModuleType
from typing import Any

from meterline.core import errors as _errors
from meterline.integrations import _scope

TESTED_VERSIONS = ">=1.0,<2"
_CREW_METHODS = ("kickoff", "kickoff_async", "akickoff")
_AGENT_METHODS = ("execute_task", "aexecute_task")
_lock = threading.Lock()
_patched: list[tuple[type, str, Any]] = []
_cancel: Callable[[], None] | None = None


def _crew_fields(crew: Any) -> dict[str, Any]:
    name = getattr(crew, "name", None)
    return {
        "trace_id": uuid.uuid4().hex,
        "trace_name": str(name)[:256] if name else "crew",
        "trace_type": "crewai",
    }


def _task_type(task: Any) -> str | None:
    name = getattr(task, "name", None)
    if isinstance(name, str) and name.strip():
        return name.strip()[:128]
    desc = getattr(task, "description", None)
    if isinstance(desc, str) and desc.strip():
        first = desc.strip().splitlines()[0]
        return first[:128]
    return None


def _agent_fields(agent: Any, task: Any) -> dict[str, Any]:
    role = getattr(agent, "role", None)
    return {"agent": str(role).strip()[:1024] if role else None, "task_type": _task_type(task)}


def _wrap(
    original: Callable[..., Any], fields: Callable[[Any, tuple[Any, ...], dict[str, Any]], dict[str, Any]]
) -> Any:
    def scope_for(self: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            return _scope.push(fields(self, args, kwargs))
        except Exception as exc:  # noqa: BLE001 - never break the crew
            _errors.report("crewai scope", exc)
            return None

    if inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def async_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            token = scope_for(self, args, kwargs)
            try:
                return await original(self, *args, **kwargs)
            finally:
                if token is not None:
                    _scope.pop(token)

        async_wrapper.__meterline_original__ = original  # type: ignore[attr-defined]
        return async_wrapper

    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        token = scope_for(self, args, kwargs)
        try:
            return original(self, *args, **kwargs)
        finally:
            if token is not None:
                _scope.pop(token)

    wrapper.__meterline_original__ = original  # type: ignore[attr-defined]
    return wrapper


def _task_arg(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return kwargs.get("task", args[0] if args else None)


def _patch(module: ModuleType) -> None:
    from crewai import Agent, Crew

    with _lock:
        if _patched:
            return
        for name in _CREW_METHODS:
            own = Crew.__dict__.get(name)
            if own is not None:
                setattr(Crew, name, _wrap(own, lambda crew, _a, _k: _crew_fields(crew)))
                _patched.append((Crew, name, own))
        for name in _AGENT_METHODS:
            own = Agent.__dict__.get(name)
            if own is not None:
                setattr(Agent, name, _wrap(own, lambda agent, a, k: _agent_fields(agent, _task_arg(a, k))))
                _patched.append((Agent, name, own))


def instrument() -> None:
    """Attribute CrewAI runs (idempotent). Patches now if crewai is imported, else right after its import."""
    global _cancel
    if _patched or _cancel is not None:
        return
    _cancel = _scope.when_imported("crewai", _patch)


def uninstrument() -> bool:
    global _cancel
    if _cancel is not None:
        _cancel()
        _cancel = None
    with _lock:
        if not _patched:
            return False
        while _patched:
            owner, name, original = _patched.pop()
            setattr(owner, name, original)
        return True


def is_instrumented() -> bool:
    return bool(_patched)
