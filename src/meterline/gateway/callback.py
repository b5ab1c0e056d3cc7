"""meterline inside the LiteLLM proxy.

Config: ``litellm_settings: callbacks: ["meterline.gateway.callback.handler"]`` (the older name
``meterline.integrations.litellm_proxy.handler`` names the same object).

Meters every proxied call exactly once (chat, completions, embeddings, ``/v1/messages``; streamed or not;
failures included) with the caller's identity, enforces hard budgets before the call, and adds the
``x-meterline-metered: gateway`` response header. Never blocks the proxy's event loop: events are built
in memory and handed to the recorder (``meterline.sdk.api.emit``), whose thread prices and writes them.

Exactly once: success and failure hooks are keyed by ``litellm_call_id``. The proxy fires both the sync
and the async failure hook for some errors, and a failed deployment followed by a successful fallback
fires a failure and then a success for the same id. So a failure waits (``pending``) until the proxy
answers the client with an error (``async_post_call_failure_hook``) or a grace period passes; a
success for the same id replaces it (with ``fallback_depth`` saying how many fallbacks were taken).
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import dataclasses
import logging
import os
import sys
import threading
import time
from collections.abc import AsyncGenerator, Mapping
from typing import Any, TypeVar

from litellm.integrations.custom_logger import CustomLogger

from meterline.core import errors as _errors
from meterline.core.config import env_flag
from meterline.core.constants import GATEWAY_HEADER
from meterline.core.event import UsageEvent
from meterline.gateway import events as _events
from meterline.gateway import identity
from meterline.sdk import api as _api
from meterline.sdk.patching import LEDGER
from meterline.sdk.scopes import in_call

logger = logging.getLogger("meterline")

# an event held until a later hook decides it: (since, event, metadata, …)
_Held = TypeVar("_Held", bound=tuple[Any, ...])

_SEEN_MAX = 200_000  # call ids remembered for de-duplication (~30 MB worst case)


class MeterlineProxyHandler(CustomLogger):
    def __init__(
        self,
        *,
        allow_override: bool | None = None,
        trust_caller_identity: bool | None = None,
        failure_grace_s: float = 60.0,
    ) -> None:
        super().__init__()
        self.allow_override = env_flag("METERLINE_GATEWAY_ALLOW_OVERRIDE") if allow_override is None else allow_override
        # may a caller name a team/organization/user/key alias its key does not bind? (default: no)
        trust = trust_caller_identity
        self.trust_caller_identity = env_flag("METERLINE_GATEWAY_TRUST_CALLER_IDENTITY") if trust is None else trust
        self.failure_grace_s = failure_grace_s
        self._lock = threading.Lock()
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._pending: dict[str, tuple[float, UsageEvent, dict[str, Any]]] = {}
        self._answered: collections.OrderedDict[str, None] = collections.OrderedDict()
        # streams the client abandoned: call id -> (when, estimated event, metadata, provider usage seen)
        self._cancelled: dict[str, tuple[float, UsageEvent, dict[str, Any], bool]] = {}
        self.abandon_grace_s = 10.0
        self._enforcer: Any = None
        self._enforcer_ready = False
        self._enforcer_retry_at = 0.0

    # -- budgets ------------------------------------------------------------------------------------
    @property
    def enforcer(self) -> Any:
        """The budget enforcer (None when no budget store is configured); built on first use."""
        if not self._enforcer_ready and time.monotonic() >= self._enforcer_retry_at:
            with self._lock:
                if not self._enforcer_ready:
                    from meterline.gateway.enforcer import enforcer_from_env

                    try:
                        self._enforcer = enforcer_from_env()
                        self._enforcer_ready = True
                    except Exception as exc:  # noqa: BLE001 - fail open: the proxy keeps serving, loudly
                        self._enforcer_retry_at = time.monotonic() + 30.0
                        logger.error("meterline gateway: budgets NOT enforced (retry in 30 s): %s", exc)
        return self._enforcer

    async def async_pre_call_hook(
        self, user_api_key_dict: Any, cache: Any, data: dict[str, Any], call_type: Any
    ) -> dict[str, Any]:
        # The gateway's event is the call's event: SDK integrations instrumented in this process (the
        # OpenAI SDK under LiteLLM) see in_call in this request's context and do not meter it again.
        in_call.set(True)
        if not _shutdown_drain_installed:
            install_shutdown_drain()  # the proxy is serving with this callback registered
        enforcer = self.enforcer
        if enforcer is None:
            return data
        from meterline.gateway.enforcer import BudgetExceeded

        call_id = str(data.get("litellm_call_id") or "")
        try:
            if not await enforcer.budgets() and getattr(enforcer, "wallets", None) is None:
                return data  # no budget defined: skip building the identity
            await enforcer.admit(call_id, self._request_identity(user_api_key_dict, data, str(call_type)), data)
        except BudgetExceeded as exc:
            self._mark_seen(call_id)  # rejected before any provider call: nothing to meter
            from fastapi import HTTPException

            raise HTTPException(status_code=getattr(exc, "status_code", 429), detail={"error": str(exc)}) from None
        except Exception as exc:  # noqa: BLE001 - a meterline bug must not reject the client's call
            _errors.report("litellm_proxy.pre_call", exc, reraise=False)
        return data

    def _request_identity(self, key: Any, data: Mapping[str, Any], call_type: str) -> dict[str, Any]:
        psr = data.get("proxy_server_request") or {}
        caller = identity.caller_metadata(psr.get("headers") or {}, psr.get("body") or data, call_type)
        bound = {
            field: value
            for field, value in (
                ("api_key_alias", getattr(key, "key_alias", None)),
                ("team_id", getattr(key, "team_id", None)),
                ("organization_id", getattr(key, "org_id", None)),
                ("user_id", getattr(key, "user_id", None)),
            )
            if isinstance(value, str) and value
        }
        merged = self._resolve(caller, bound)
        merged["api_key_hash"] = identity.key_hash(getattr(key, "token", None) or getattr(key, "api_key", None))
        return merged

    def _resolve(self, caller: Mapping[str, Any], key: Mapping[str, Any]) -> dict[str, Any]:
        return identity.resolve(
            caller, key, allow_override=self.allow_override, trust_caller_identity=self.trust_caller_identity
        )

    # -- response header ----------------------------------------------------------------------------
    async def async_post_call_response_headers_hook(
        self,
        data: dict[str, Any],
        user_api_key_dict: Any,
        response: object,
        request_headers: dict[str, str] | None = None,
        litellm_call_info: dict[str, object] | None = None,
    ) -> dict[str, str] | None:
        return {GATEWAY_HEADER: "gateway"}

    # -- streams the client abandons -----------------------------------------------------------------
    async def async_post_call_streaming_iterator_hook(
        self, user_api_key_dict: Any, response: Any, request_data: dict[str, Any]
    ) -> AsyncGenerator[Any, None]:
        """Pass the stream through; when the client goes away before its end (LiteLLM then fires no success
        or failure hook at all) record one ``cancelled`` event with what was sent so far."""
        seen = _events.StreamSeen()
        try:
            async for chunk in response:
                try:
                    seen.observe(chunk)
                except Exception as exc:  # noqa: BLE001 - a meterline bug must never break the client's stream
                    _errors.report("litellm_proxy.stream_chunk", exc, reraise=False)
                yield chunk
        except (GeneratorExit, asyncio.CancelledError):  # the client disconnected
            self._abandoned(user_api_key_dict, request_data, seen)
            raise

    def _abandoned(self, key: Any, request_data: Mapping[str, Any], seen: _events.StreamSeen) -> None:
        """The client hung up mid-stream. LiteLLM may still log a success for the call (with its own count of
        what was streamed): that event is then recorded as ``cancelled``. If no success comes within
        ``abandon_grace_s``, meterline's own estimate is recorded instead."""
        try:
            call_id = str(request_data.get("litellm_call_id") or "")
            if not call_id:
                return
            with self._lock:
                if call_id in self._seen:
                    return  # the success hook came first: the stream had ended
            event = _events.build_abandoned(request_data, seen)
            md = self._request_identity(key, request_data, "acompletion")
            event.api_key_hash = md.pop("api_key_hash", None)
            with self._lock:
                self._cancelled[call_id] = (time.monotonic(), event, md, seen.usage is not None)
            _register_exit_hook()
            _later(self.abandon_grace_s, self.expire_cancelled)
        except Exception as exc:  # noqa: BLE001 - a meterline bug must never reach the proxy
            _errors.report("litellm_proxy.abandoned", exc, reraise=False)

    def expire_cancelled(self, max_age_s: float | None = None) -> None:
        """Record the estimate of abandoned streams LiteLLM logged nothing for."""
        for cid, (_, event, md, _) in self._take_due(self._cancelled, self.abandon_grace_s, max_age_s):
            copy = dataclasses.replace(event)
            self._emit(cid, event, md)
            if self.enforcer is not None:
                try:
                    asyncio.get_running_loop().create_task(self._settle(cid, copy))
                except RuntimeError:  # called off the proxy's loop: the hold expires by its TTL instead
                    pass

    def expire_all(self) -> None:
        """At shutdown: everything held for a later hook is recorded now (no hook will come any more)."""
        self.expire_pending(-1.0)
        self.expire_cancelled(-1.0)

    def _take_due(self, table: dict[str, _Held], grace_s: float, max_age_s: float | None) -> list[tuple[str, _Held]]:
        """Remove and return the entries of ``table`` held longer than the grace period (or ``max_age_s``)."""
        limit = time.monotonic() - (grace_s if max_age_s is None else max_age_s)
        with self._lock:
            due = [(cid, held) for cid, held in table.items() if held[0] <= limit]
            for cid, _ in due:
                del table[cid]
        return due

    async def _settle(self, call_id: str, event: UsageEvent) -> None:
        try:
            await self.enforcer.settle(call_id, event)
        except Exception as exc:  # noqa: BLE001 - never break the proxy
            _errors.report("litellm_proxy.settle", exc, reraise=False)

    # -- metering -----------------------------------------------------------------------------------
    async def async_log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        event = self._success(kwargs, response_obj)
        enforcer = self.enforcer
        if enforcer is not None and event is not None:
            try:
                await enforcer.settle(str(kwargs.get("litellm_call_id") or ""), event)
            except Exception as exc:  # noqa: BLE001 - never break the proxy's logging worker
                _errors.report("litellm_proxy.settle", exc, reraise=False)

    def log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._success(kwargs, response_obj)

    async def async_log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._failure(kwargs, response_obj)

    def log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._failure(kwargs, response_obj)

    async def async_post_call_failure_hook(
        self,
        request_data: dict[str, Any],
        original_exception: Exception,
        user_api_key_dict: Any,
        traceback_str: str | None = None,
    ) -> None:
        """The proxy answers the client with an error: no fallback will follow, emit the failure now."""
        call_id = str(request_data.get("litellm_call_id") or "")
        if not call_id:
            return
        with self._lock:
            pending = self._pending.pop(call_id, None)
            if pending is None:
                _remember(self._answered, call_id)  # the failure log hook may come after this one
        if pending is not None:
            self._emit(call_id, pending[1], pending[2])
        enforcer = self.enforcer
        if enforcer is not None:
            try:
                await enforcer.release(call_id)
            except Exception as exc:  # noqa: BLE001 - never break the proxy's error path
                _errors.report("litellm_proxy.release", exc, reraise=False)

    def _success(self, kwargs: Any, response_obj: Any) -> UsageEvent | None:
        """Emit the call's event; returns a copy of it (the recorder prices the original on its thread)."""
        try:
            call_id = str(kwargs.get("litellm_call_id") or "")
            with self._lock:
                if call_id in self._seen:
                    return None
                _remember(self._seen, call_id)
                self._pending.pop(call_id, None)  # a fallback succeeded after a failed deployment
                abandoned = self._cancelled.pop(call_id, None)
            event, key, caller = _events.build(kwargs, response_obj, failed=False)
            if abandoned is not None:  # LiteLLM logs a stream the client hung up on as a success
                event.status = event.stop_reason = "cancelled"
                if not abandoned[3]:  # no usage chunk reached the client: LiteLLM counted the text itself
                    event.usage_source = "estimated"
            copy = dataclasses.replace(event)
            _api.emit(event, {}, self._resolve(caller, key))
            return copy
        except Exception as exc:  # noqa: BLE001 - a meterline bug must never reach the proxy
            _errors.report("litellm_proxy.success", exc, reraise=False)
            return None

    def _failure(self, kwargs: Any, response_obj: Any) -> None:
        try:
            call_id = str(kwargs.get("litellm_call_id") or "")
            with self._lock:
                if call_id in self._seen or call_id in self._pending:
                    return  # the sync and async failure hooks both fire for some errors
            event, key, caller = _events.build(kwargs, response_obj, failed=True)
            md = self._resolve(caller, key)
            with self._lock:
                if call_id in self._seen or call_id in self._pending:
                    return
                answered = self._answered.pop(call_id, None) is not None
                if not answered:
                    self._pending[call_id] = (time.monotonic(), event, md)
            if answered:
                self._emit(call_id, event, md)
            else:
                _register_exit_hook()
                self._schedule_expiry()
        except Exception as exc:  # noqa: BLE001 - a meterline bug must never reach the proxy
            _errors.report("litellm_proxy.failure", exc, reraise=False)

    def _emit(self, call_id: str, event: UsageEvent, md: dict[str, Any]) -> None:
        with self._lock:
            if call_id in self._seen:
                return
            _remember(self._seen, call_id)
        _api.emit(event, {}, md)

    def _schedule_expiry(self) -> None:
        """Emit failures nobody answered within the grace period (a failure hook without a proxy error
        response, e.g. a stream that broke after it started)."""
        _later(self.failure_grace_s, self.expire_pending)

    def expire_pending(self, max_age_s: float | None = None) -> None:
        for cid, (_, event, md) in self._take_due(self._pending, self.failure_grace_s, max_age_s):
            self._emit(cid, event, md)

    def _mark_seen(self, call_id: str) -> None:
        if call_id:
            with self._lock:
                _remember(self._seen, call_id)


def _later(delay: float, fn: Any) -> None:
    """Run ``fn`` after ``delay`` seconds: on the proxy's loop when called from it, else on a timer thread."""
    try:
        asyncio.get_running_loop().call_later(delay, fn)
    except RuntimeError:  # the sync hooks run outside the loop
        timer = threading.Timer(delay, fn)
        timer.daemon = True
        timer.start()


def _remember(seen: collections.OrderedDict[str, None], call_id: str) -> None:
    seen[call_id] = None
    if len(seen) > _SEEN_MAX:
        seen.popitem(last=False)


# The object the proxy config names. One per process.
handler = MeterlineProxyHandler()


def instrument() -> None:
    """Register the handler with LiteLLM in this process (the proxy config does this by itself)."""
    import litellm

    if handler not in litellm.callbacks:
        litellm.callbacks.append(handler)
    install_shutdown_drain()


def uninstrument() -> bool:
    import litellm

    uninstall_shutdown_drain()
    if handler in litellm.callbacks:
        litellm.callbacks.remove(handler)
        return True
    return False


_exit_hook_registered = False


def _register_exit_hook() -> None:
    """Emit the events still held (failures, abandoned streams) at exit, before the recorder's own exit flush:
    atexit runs hooks in reverse order, so this is registered after the recorder exists."""
    global _exit_hook_registered
    if _exit_hook_registered:
        return
    _exit_hook_registered = True
    _api.get_recorder()
    atexit.register(handler.expire_all)


_SHUTDOWN = "litellm_proxy.shutdown"  # its entry in the patch ledger
_shutdown_drain_installed = False


def install_shutdown_drain() -> bool:
    """LiteLLM's shutdown does not wait for its logging worker, which runs async success callbacks, and the
    process may end without atexit hooks: calls answered just before SIGTERM would never be stored. Wrap
    the proxy's shutdown event: drain the worker, then flush the recorder (each bounded by
    ``METERLINE_GATEWAY_DRAIN_S``, default 10 s).

    Not done at import: when the callback is registered (:func:`instrument`) or first used by the proxy
    (its pre-call hook). Recorded in the patch ledger; idempotent; True when the wrapper is in place.
    :func:`uninstall_shutdown_drain` is the exact inverse."""
    global _shutdown_drain_installed
    proxy = sys.modules.get("litellm.proxy.proxy_server")
    if getattr(proxy, "proxy_shutdown_event", None) is None:
        return False  # not inside the proxy (yet)
    with LEDGER.installing(_SHUTDOWN) as fresh:
        if fresh:
            LEDGER.patch(_SHUTDOWN, proxy, "proxy_shutdown_event", _drain_then)
    _shutdown_drain_installed = True
    return True


def uninstall_shutdown_drain() -> bool:
    """Put the proxy's own shutdown event back."""
    global _shutdown_drain_installed
    _shutdown_drain_installed = False
    return LEDGER.restore(_SHUTDOWN)


def _drain_then(original: Any) -> Any:
    async def shutdown_event(*args: Any, **kwargs: Any) -> Any:
        try:
            from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER

            drain_s = float(os.environ.get("METERLINE_GATEWAY_DRAIN_S", "10"))
            await asyncio.wait_for(GLOBAL_LOGGING_WORKER.flush(), timeout=drain_s)
        except Exception as exc:  # noqa: BLE001 - shutdown must go on whatever happens here
            logger.warning("meterline gateway: draining LiteLLM's logging worker at shutdown: %r", exc)
        handler.expire_all()  # held failures and abandoned streams: no hook will come for them any more
        # The proxy process may end without running atexit hooks (the recorder's exit flush among them),
        # so write everything now.
        if not await asyncio.to_thread(_api.flush, float(os.environ.get("METERLINE_GATEWAY_DRAIN_S", "10"))):
            logger.warning("meterline gateway: not every event was written before shutdown (see spool)")
        return await original(*args, **kwargs)

    return shutdown_event
