"""The LangChain callback handler (imports langchain-core: loaded only once the app uses LangChain).
See :mod:`meterline.integrations.langchain`."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from meterline.core import errors as _errors
from meterline.integrations import _scope
from meterline.sdk.scopes import scope_var as _meterline_scope

_MAX_RUNS = 10_000  # runs whose end never came (a crashed run) are forgotten past this many


def _base() -> type:
    try:
        from langchain_core.callbacks import BaseCallbackHandler
    except ImportError:  # pragma: no cover - the handler needs langchain-core
        return object
    base: type = BaseCallbackHandler
    return base


class _Run:
    __slots__ = ("name", "root", "root_name")

    def __init__(self, root: str, root_name: str | None, name: str | None) -> None:
        self.root = root
        self.root_name = root_name
        self.name = name


class MeterlineCallbackHandler(_base()):  # type: ignore[misc]
    """Maps LangChain run ids to meterline trace and parent ids, and chain/node names to ``agent``."""

    run_inline = True  # async runs: call us in the model's own task, not in an executor thread
    raise_error = False

    def __init__(self) -> None:
        super().__init__()
        self._runs: dict[str, _Run] = {}
        self._tokens: dict[str, tuple[Any, Mapping[str, Any]]] = {}
        self._lock = threading.Lock()

    # -- chains, graph nodes, agents ---------------------------------------------------------------
    def _remember(self, run_id: UUID, parent_run_id: UUID | None, name: str | None) -> _Run:
        rid = str(run_id)
        parent = self._runs.get(str(parent_run_id)) if parent_run_id is not None else None
        run = _Run(parent.root, parent.root_name, name) if parent else _Run(rid, name, name)
        with self._lock:
            if len(self._runs) >= _MAX_RUNS:
                self._runs.pop(next(iter(self._runs)))
            self._runs[rid] = run
        return run

    def on_chain_start(
        self,
        serialized: Mapping[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            node = (metadata or {}).get("langgraph_node")
            name = kwargs.get("name") or (serialized or {}).get("name")
            # a graph node's own chain is named after the node; inner runnables inherit the node name
            if parent_run_id is not None and not node:
                parent = self._runs.get(str(parent_run_id))
                node = parent.name if parent is not None and _is_internal(name) else None
            self._remember(run_id, parent_run_id, str(node or name) if (node or name) else None)
        except Exception as exc:  # noqa: BLE001 - never break the user's chain
            _errors.report("langchain.on_chain_start", exc, reraise=False)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._forget(run_id)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._forget(run_id)

    def _forget(self, run_id: UUID) -> None:
        with self._lock:
            self._runs.pop(str(run_id), None)

    # -- model calls --------------------------------------------------------------------------------
    def _llm_start(
        self, run_id: UUID, parent_run_id: UUID | None, metadata: Mapping[str, Any] | None, kwargs: Mapping[str, Any]
    ) -> None:
        try:
            parent = self._runs.get(str(parent_run_id)) if parent_run_id is not None else None
            node = (metadata or {}).get("langgraph_node")
            agent = node or (parent.name if parent is not None else None)
            fields = {
                "trace_id": parent.root if parent is not None else str(run_id),
                "trace_name": (parent.root_name if parent is not None else kwargs.get("name")) or None,
                "trace_type": "langchain",
                "parent_transaction_id": str(parent_run_id) if parent_run_id is not None else None,
                "agent": str(agent) if agent else None,
            }
            previous = _meterline_scope.get()
            token = _scope.push(fields)
            with self._lock:
                self._tokens[str(run_id)] = (token, previous)
        except Exception as exc:  # noqa: BLE001 - never break the user's model call
            _errors.report("langchain.on_llm_start", exc, reraise=False)

    def on_chat_model_start(
        self,
        serialized: Mapping[str, Any] | None,
        messages: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._llm_start(run_id, parent_run_id, metadata, kwargs)

    def on_llm_start(
        self,
        serialized: Mapping[str, Any] | None,
        prompts: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._llm_start(run_id, parent_run_id, metadata, kwargs)

    def _llm_end(self, run_id: UUID) -> None:
        with self._lock:
            held = self._tokens.pop(str(run_id), None)
        if held is not None:
            _scope.pop(held[0], held[1])

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._llm_end(run_id)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._llm_end(run_id)


_INTERNAL_NAMES = frozenset(
    {"RunnableSequence", "RunnableLambda", "RunnableParallel", "RunnableCallable", "ChannelWrite"}
)


def _is_internal(name: Any) -> bool:
    return not name or str(name) in _INTERNAL_NAMES or str(name).startswith(("Runnable", "ChannelWrite", "Branch<"))
