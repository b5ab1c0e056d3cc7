"""LiteLLM integration: meters ``completion``, ``acompletion``, ``text_completion``, ``atext_completion``,
``embedding``, ``aembedding`` (also through ``litellm.Router``: one event per attempt), their sync and async
streams, and failures — exactly once each.

Design (tested on litellm 1.106.0 to 1.110.2)
---------------------------------------------
Every public LiteLLM entry point is wrapped by ``litellm.utils.client``. Its sync and async wrappers look up
three module globals of ``litellm.utils`` at call time and run them on the caller's thread (or task):

1. ``function_setup(call_type, …, **kwargs)`` at the start of the call; the wrapper USES the kwargs it returns.
   Patched here: ``usage_metadata=`` is popped (so it never reaches the provider's request body, where
   LiteLLM would otherwise forward it), ``stream_options={"include_usage": True}`` is added to streams whose
   provider supports it (otherwise OpenAI-compatible streams end with 0 tokens), the metadata scope is read,
   and a :class:`LiteLLMCall` is attached to the call's ``Logging`` object.
2. ``update_response_metadata(result=…, logging_obj=…)`` once the response (or the stream object) is back:
   one success event, or, for a stream, hand-over to the stream hooks.
3. ``Logging.failure_handler`` (a class method, so it reaches every instance), which both wrappers call
   synchronously on failure: one error event; the exception then propagates unchanged.

Streams are metered by class-level wrappers of ``CustomStreamWrapper`` (see ``_litellm_stream``). LiteLLM's
async wrapper runs ``_restore_correlation_context_if_supported(logging_obj)`` in its ``finally``: patched to
meter an async call cancelled mid-flight. ``LLMCachingHandler.sync_get_cache``/``async_get_cache`` are
wrapped so a LiteLLM cache hit (no provider call) ends the call without an event.

Because these are module globals and class attributes, a ``from litellm import completion`` done before
``instrument()`` is metered too, and ``uninstrument()`` restores the exact original objects.

Why not LiteLLM's callback API (``CustomLogger``): success hooks run on a thread pool (which drops work past
10,000 pending) or on the async logging worker, which drops events when a short ``asyncio.run`` script exits;
abandoned streams fire no hook at all. Here the event is built on the caller's thread when the call ends and
handed to meterline's recorder (bounded queue, flushed at exit), and pricing uses meterline's Decimal pricer,
not LiteLLM's float ``response_cost``.

Not metered: calls a LiteLLM proxy makes for a client (``proxy_server_request`` in the kwargs; the proxy
integration meters those), calls outside ``meterline.meter()`` with selective metering on, calls made inside
another metered layer (``meterline.sdk.scopes.should_meter()``), and LiteLLM cache hits. While a call is metered
``meterline.sdk.scopes.in_call`` is set, so an SDK integration underneath (OpenAI SDK) does not count it again;
a response carrying ``x-meterline-metered: gateway`` (a meterline gateway metered it) gets no event here.
LiteLLM's own ``num_retries`` retries of one ``completion`` share one Logging object: each failed attempt that
LiteLLM reports is an error event and the final success one more event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from meterline.core import errors as _errors
from meterline.core.metadata import normalise
from meterline.core.usage import prompt_chars
from meterline.integrations import _litellm_stream as _stream
from meterline.integrations._litellm_call import ATTR, OPERATIONS, LiteLLMCall
from meterline.sdk import api as _api
from meterline.sdk.patching import LEDGER
from meterline.sdk.scopes import current_metadata, should_meter

NAME = "litellm"


def is_instrumented() -> bool:
    return LEDGER.installed(NAME)


def instrument() -> None:
    """Patch LiteLLM (idempotent). Imports litellm: set ``LITELLM_LOCAL_MODEL_COST_MAP=True`` offline."""
    with LEDGER.installing(NAME) as fresh:
        if not fresh:
            return
        import litellm.utils as litellm_utils
        from litellm.caching.caching_handler import LLMCachingHandler
        from litellm.litellm_core_utils.litellm_logging import Logging
        from litellm.litellm_core_utils.streaming_handler import CustomStreamWrapper
        from litellm.types.utils import EmbeddingResponse, ModelResponse, TextCompletionResponse

        _final_types[:] = [ModelResponse, EmbeddingResponse, TextCompletionResponse]
        plan: list[tuple[Any, str, Callable[[Any], Any]]] = [
            (litellm_utils, "function_setup", _wrap_function_setup),
            (litellm_utils, "update_response_metadata", _wrap_update_response_metadata),
            (litellm_utils, "_restore_correlation_context_if_supported", _wrap_async_finally),
            (Logging, "failure_handler", _wrap_failure_handler),
            (LLMCachingHandler, "sync_get_cache", _wrap_sync_cache),
            (LLMCachingHandler, "async_get_cache", _wrap_async_cache),
            (CustomStreamWrapper, "__next__", _stream.wrap_next),
            (CustomStreamWrapper, "__anext__", _stream.wrap_anext),
            (CustomStreamWrapper, "aclose", _stream.wrap_aclose),
            (CustomStreamWrapper, "__del__", _stream.wrap_del),
        ]
        for owner, name, wrap in plan:
            LEDGER.patch(NAME, owner, name, wrap)


def uninstrument() -> bool:
    """Restore every patched LiteLLM object exactly; False when nothing was instrumented."""
    return LEDGER.restore(NAME)


_final_types: list[type] = []


# -- call start -------------------------------------------------------------------------------------
def _plan(call_type: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> LiteLLMCall | None:
    """Runs on the caller's thread before LiteLLM sets up the call; edits ``kwargs`` in place."""
    raw = kwargs.pop("usage_metadata", None)  # always: it must never reach the provider
    operation = OPERATIONS.get(call_type)
    if operation is None or "proxy_server_request" in kwargs or not should_meter():
        return None
    params = kwargs.get("litellm_params")
    if isinstance(params, dict) and "proxy_server_request" in params:
        return None
    model = args[0] if args else kwargs.get("model")
    stream = kwargs.get("stream") is True
    if stream and kwargs.get("stream_options") is None and operation != "embedding":
        _ask_for_stream_usage(model, kwargs)
    call_md = normalise(raw, strict=False) if raw else {}
    settings = _api.settings  # a module attribute, not an import statement on every call
    messages = None
    if settings.capture_content:
        messages = kwargs.get("messages") if operation == "chat" else kwargs.get("prompt", kwargs.get("input"))
    name = model if isinstance(model, str) else None
    call = LiteLLMCall(operation, name, stream, current_metadata(), call_md, messages)
    if settings.capture_headers or settings.capture_raw_request:
        _capture_request(call, settings, args, kwargs)
    if stream:
        call.prompt_chars = prompt_chars(kwargs)
    return call


_INTERNAL_KWARGS = frozenset({"litellm_call_id", "litellm_logging_obj", "litellm_params", "logger_fn", "client"})


def _capture_request(call: LiteLLMCall, settings: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Headers and request body, with capture_headers / capture_raw_request (shallow copies; masking and
    redaction happen on the recorder's thread)."""
    if settings.capture_headers:
        headers = {**(kwargs.get("headers") or {}), **(kwargs.get("extra_headers") or {})}
        call.request_headers = headers or None
    if settings.capture_raw_request:
        raw = {k: v for k, v in kwargs.items() if k not in _INTERNAL_KWARGS and not k.startswith("litellm_")}
        if args:
            raw.setdefault("model", args[0])
        call.raw_request = raw


# (model, custom_llm_provider, api_base) -> whether LiteLLM accepts stream_options for it. Resolving the provider
# and its parameter list costs ~40 µs a stream call; the answer depends only on these inputs (and on LiteLLM's
# model tables, which a process does not change for a model it already calls). Bounded: cleared when full.
_stream_options_ok: dict[tuple[str, Any, Any], bool] = {}
_STREAM_OPTIONS_CACHE_MAX = 1024


def _ask_for_stream_usage(model: Any, kwargs: dict[str, Any]) -> None:
    """OpenAI-compatible streams report usage only when asked (``include_usage``); ask when supported."""
    if not isinstance(model, str):
        return
    key = (model, kwargs.get("custom_llm_provider"), kwargs.get("api_base"))
    try:
        supported = _stream_options_ok.get(key)
    except TypeError:  # an unhashable custom_llm_provider/api_base: resolve it every time
        key, supported = None, None  # type: ignore[assignment]
    if supported is None:
        import litellm

        try:
            bare, provider, _, _ = litellm.get_llm_provider(
                model=model, custom_llm_provider=kwargs.get("custom_llm_provider"), api_base=kwargs.get("api_base")
            )
            params = litellm.get_supported_openai_params(model=bare, custom_llm_provider=provider) or []
        except Exception:  # noqa: BLE001 - an unknown model: LiteLLM itself reports it to the caller
            return  # not cached: a model registered later may resolve
        supported = "stream_options" in params
        if key is not None:
            if len(_stream_options_ok) >= _STREAM_OPTIONS_CACHE_MAX:
                _stream_options_ok.clear()
            _stream_options_ok[key] = supported
    if supported:
        kwargs["stream_options"] = {"include_usage": True}


def _wrap_function_setup(original: Callable[..., Any]) -> Callable[..., Any]:
    def function_setup(original_function: Any, rules_obj: Any, start_time: Any, *args: Any, **kwargs: Any) -> Any:
        call = None
        try:
            call = _plan(original_function, args, kwargs)
        except Exception as exc:  # noqa: BLE001 - meterline must never break the caller's call
            _errors.report("litellm call start", exc)
        logging_obj, new_kwargs = original(original_function, rules_obj, start_time, *args, **kwargs)
        if call is not None:
            try:
                setattr(logging_obj, ATTR, call)
                call.enter()
            except Exception as exc:  # noqa: BLE001 - meterline must never break the caller's call
                _errors.report("litellm call start", exc)
        return logging_obj, new_kwargs

    function_setup.__wrapped__ = original  # type: ignore[attr-defined]
    return function_setup


# -- call end ---------------------------------------------------------------------------------------
def _open_call(logging_obj: Any) -> LiteLLMCall | None:
    call = getattr(logging_obj, ATTR, None)
    if call is None or call.closed:
        return None
    return call  # type: ignore[no-any-return]


def _wrap_update_response_metadata(original: Callable[..., Any]) -> Callable[..., Any]:
    def update_response_metadata(result: Any, logging_obj: Any, *args: Any, **kwargs: Any) -> Any:
        out = original(result, logging_obj, *args, **kwargs)
        call = _open_call(logging_obj)
        if call is not None and result is not None and not call.stream_open:
            try:
                call.release()
                if isinstance(result, tuple(_final_types)) or not (
                    hasattr(result, "__next__") or hasattr(result, "__anext__")
                ):
                    call.finish_result(logging_obj, result)
                else:
                    call.stream_open = True  # the stream hooks end it
            except Exception as exc:  # noqa: BLE001 - meterline must never break the caller's call
                _errors.report("litellm call end", exc)
        return out

    update_response_metadata.__wrapped__ = original  # type: ignore[attr-defined]
    return update_response_metadata


def _wrap_failure_handler(original: Callable[..., Any]) -> Callable[..., Any]:
    def failure_handler(self: Any, exception: Any, *args: Any, **kwargs: Any) -> Any:
        call = _open_call(self)
        # stream_open: a failure mid-stream is metered by the stream hook (LiteLLM reports it again here,
        # from another thread); the same exception reported twice (nested wrappers) counts once.
        if call is not None and not call.stream_open and exception is not call.last_error:
            try:
                call.release()
                call.finish_error(self, exception)
            except Exception as exc:  # noqa: BLE001 - meterline must never break the caller's call
                _errors.report("litellm call failure", exc)
        return original(self, exception, *args, **kwargs)

    failure_handler.__wrapped__ = original  # type: ignore[attr-defined]
    return failure_handler


def _wrap_async_finally(original: Callable[..., Any]) -> Callable[..., Any]:
    """``finally`` of LiteLLM's async wrapper (not reached for a returned stream): a call still open here
    ended without a result or an exception reaching LiteLLM's handlers — the task was cancelled."""

    def restore(logging_obj: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            call = _open_call(logging_obj)
            if call is not None and not call.stream_open:
                call.release()
                task = _current_task()
                if task is not None and getattr(task, "cancelling", lambda: 0)():  # Python 3.11+
                    call.finish_stream(None, "cancelled", logging_obj=logging_obj)
        except Exception as exc:  # noqa: BLE001 - meterline must never break the caller's call
            _errors.report("litellm call cancelled", exc)
        return original(logging_obj, *args, **kwargs)

    restore.__wrapped__ = original  # type: ignore[attr-defined]
    return restore


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


def _cache_hit(response: Any, logging_obj: Any) -> None:
    if getattr(response, "cached_result", None) is None and not getattr(
        response, "embedding_all_elements_cache_hit", False
    ):
        return
    call = _open_call(logging_obj)
    if call is not None:  # served from LiteLLM's cache: no provider call, no event
        call.closed = True
        call.release()


def _wrap_sync_cache(original: Callable[..., Any]) -> Callable[..., Any]:
    def sync_get_cache(self: Any, *args: Any, **kwargs: Any) -> Any:
        response = original(self, *args, **kwargs)
        try:
            _cache_hit(response, kwargs.get("logging_obj"))
        except Exception as exc:  # noqa: BLE001 - meterline must never break the caller's call
            _errors.report("litellm cache hit", exc)
        return response

    sync_get_cache.__wrapped__ = original  # type: ignore[attr-defined]
    return sync_get_cache


def _wrap_async_cache(original: Callable[..., Any]) -> Callable[..., Any]:
    async def async_get_cache(self: Any, *args: Any, **kwargs: Any) -> Any:
        response = await original(self, *args, **kwargs)
        try:
            _cache_hit(response, kwargs.get("logging_obj"))
        except Exception as exc:  # noqa: BLE001 - meterline must never break the caller's call
            _errors.report("litellm cache hit", exc)
        return response

    async_get_cache.__wrapped__ = original  # type: ignore[attr-defined]
    return async_get_cache
