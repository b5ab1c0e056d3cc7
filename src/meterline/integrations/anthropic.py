"""Anthropic SDK metering: every Messages API call metered once, with exact cache tokens.

``meterline.instrument_anthropic()`` (or ``meterline.instrument()`` / ``import meterline.auto``) patches,
at the class level so clients created before instrumenting are covered too:

1. ``SyncAPIClient.request`` / ``AsyncAPIClient.request`` of the SDK's base client: the one place every
   ``POST /v1/messages`` passes through exactly once per logical call (retries happen inside it), whatever
   helper made it: ``messages.create`` (with and without ``stream=True``), ``messages.stream()``,
   ``messages.parse()``, ``beta.messages.*``, ``with_raw_response`` / ``with_streaming_response``, on
   ``Anthropic``, ``AsyncAnthropic``, ``AnthropicBedrock`` (provider ``bedrock``) and ``AnthropicVertex``
   (``vertex_ai``). Other endpoints (count_tokens, batches, models) pass straight through.
2. ``create`` / ``stream`` / ``parse`` of the messages resources, only to accept ``usage_metadata=`` and remove
   it before the SDK sees it. A token for it travels to (1) as a private header entry that (1) pops before the
   request is built (the provider never sees it), so it also reaches ``messages.stream()``, whose request is
   made later, in ``__enter__``.

Usage comes from the reply (``message_start`` + ``message_delta`` for streams, see ``_anthropic_stream``);
errors become one ``error`` event and the SDK's exception is re-raised unchanged. ``meterline.context``'s
``should_meter()`` is honoured and ``_in_call`` is set during the request, so a layer below us is not counted
twice. A ``with_raw_response`` wrapper made *before* instrumenting still calls the original ``create`` (it is
metered, but cannot take ``usage_metadata=``).
"""

from __future__ import annotations

import functools
import importlib
import itertools
import threading
from collections.abc import Callable, Mapping
from typing import Any

from meterline import _errors
from meterline.context import _in_call, should_meter
from meterline.integrations._anthropic_stream import instrument_async_stream, instrument_stream
from meterline.integrations._call import CallMeter, call_metadata

_MD_HEADER = "x-meterline-usage-metadata"
_MESSAGES_PATH = "/v1/messages"
_RESOURCES = (
    ("anthropic.resources.messages.messages", ("Messages", "AsyncMessages")),
    ("anthropic.resources.beta.messages.messages", ("Messages", "AsyncMessages")),
    ("anthropic.lib.bedrock._beta_messages", ("Messages", "AsyncMessages")),
    ("anthropic.lib.vertex._beta_messages", ("Messages", "AsyncMessages")),
)
_RESOURCE_METHODS = ("create", "stream", "parse")
_PROVIDERS = {"BaseBedrockClient": "bedrock", "BaseVertexClient": "vertex_ai", "BaseFoundryClient": "azure"}

_lock = threading.Lock()
# (owner class, attribute, original value) for every patch in place: uninstrument restores exactly these.
_patched: list[tuple[type, str, Any]] = []


# Call metadata waiting for its request, by token. The token travels as a private header entry (a plain
# string survives the SDK's header merging); the request pops both. A stream() manager that is never
# entered leaves its entry behind, so the table is bounded.
_pending: dict[str, Mapping[str, Any]] = {}
_pending_lock = threading.Lock()
_tokens = itertools.count(1)
_MAX_PENDING = 10_000


def _with_metadata(kwargs: dict[str, Any]) -> dict[str, Any]:
    raw = kwargs.pop("usage_metadata", None)
    if raw is None:
        return kwargs
    fields = call_metadata(raw)
    token = f"ml-{next(_tokens)}"
    with _pending_lock:
        if len(_pending) >= _MAX_PENDING:
            _pending.pop(next(iter(_pending)))
        _pending[token] = fields
    kwargs["extra_headers"] = {**(kwargs.get("extra_headers") or {}), _MD_HEADER: token}
    return kwargs


def _wrap_resource_method(fn: Callable[..., Any]) -> Callable[..., Any]:
    if _is_coroutine(fn):

        @functools.wraps(fn)
        async def async_method(self: Any, *args: Any, **kwargs: Any) -> Any:
            return await fn(self, *args, **_with_metadata(kwargs))

        async_method.__meterline_original__ = fn  # type: ignore[attr-defined]
        return async_method

    @functools.wraps(fn)
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        return fn(self, *args, **_with_metadata(kwargs))

    method.__meterline_original__ = fn  # type: ignore[attr-defined]
    return method


def _is_coroutine(fn: Any) -> bool:
    import inspect

    return inspect.iscoroutinefunction(fn)


# -- the request choke point -------------------------------------------------------------------------
def _take_metadata(options: Any) -> Mapping[str, Any] | None:
    headers = getattr(options, "headers", None)
    if isinstance(headers, dict) and _MD_HEADER in headers:
        token = headers.pop(_MD_HEADER)
        with _pending_lock:
            return _pending.pop(token, None) if isinstance(token, str) else None
    return None


def _is_messages_call(options: Any) -> bool:
    url = getattr(options, "url", "")
    return getattr(options, "method", "") == "post" and isinstance(url, str) and url.partition("?")[0] == _MESSAGES_PATH


def _provider(client: Any) -> str:
    for cls in type(client).__mro__:
        provider = _PROVIDERS.get(cls.__name__)
        if provider is not None:
            return provider
    return "anthropic"


def _start(client: Any, options: Any, call_md: Mapping[str, Any] | None) -> CallMeter | None:
    """A meter for this request, or None when it is not a messages call or must not be metered."""
    try:
        if not _is_messages_call(options) or not should_meter():
            return None
        return _new_meter(client, options, call_md)
    except Exception as exc:  # noqa: BLE001 - the call goes ahead unmetered
        _errors.report("anthropic.start", exc)
        return None


def _new_meter(client: Any, options: Any, call_md: Mapping[str, Any] | None) -> CallMeter:
    body = getattr(options, "json_data", None)
    body = body if isinstance(body, dict) else {}
    model = body.get("model")
    meter = CallMeter(
        provider=_provider(client),
        model=model if isinstance(model, str) else "unknown",
        integration="anthropic",
        stream=bool(body.get("stream")),
        call_md=call_md,
    )
    meter.want_content(body.get("messages"))
    return meter


def _observe(meter: CallMeter, result: Any) -> None:
    """Meter a non-raw result: a Message (success now) or a Stream (success when it finishes)."""
    from anthropic import AsyncStream, Stream

    if isinstance(result, Stream):
        instrument_stream(result, meter)
    elif isinstance(result, AsyncStream):
        instrument_async_stream(result, meter)
    else:
        meter.anthropic_message(result)
        meter.success()


def _observe_raw_sync(meter: CallMeter, response: Any) -> None:
    # with_raw_response / with_streaming_response: parse() is cached by the SDK, so the user's own
    # parse() returns the very object (Message or Stream) we metered.
    _observe(meter, response.parse())


async def _observe_raw_async(meter: CallMeter, response: Any) -> None:
    _observe(meter, await response.parse())


def _fail(meter: CallMeter, exc: BaseException) -> None:
    if isinstance(exc, Exception):
        meter.error(exc)
    else:  # KeyboardInterrupt, asyncio.CancelledError: the caller gave up
        meter.cancel()


def _sync_request(orig: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(orig)
    def request(self: Any, cast_to: Any, options: Any, *args: Any, **kwargs: Any) -> Any:
        call_md = _take_metadata(options)
        meter = _start(self, options, call_md)
        if meter is None:
            return orig(self, cast_to, options, *args, **kwargs)
        token = _in_call.set(True)
        try:
            result = orig(self, cast_to, options, *args, **kwargs)
        except BaseException as exc:
            _fail(meter, exc)
            raise
        finally:
            _in_call.reset(token)
        try:
            from anthropic._response import BaseAPIResponse

            if isinstance(result, BaseAPIResponse):
                _observe_raw_sync(meter, result)
            else:
                _observe(meter, result)
        except Exception as exc:  # noqa: BLE001 - the user's result is returned whatever happens here
            _errors.report("anthropic.observe", exc)
        return result

    request.__meterline_original__ = orig  # type: ignore[attr-defined]
    return request


def _async_request(orig: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(orig)
    async def request(self: Any, cast_to: Any, options: Any, *args: Any, **kwargs: Any) -> Any:
        call_md = _take_metadata(options)
        meter = _start(self, options, call_md)
        if meter is None:
            return await orig(self, cast_to, options, *args, **kwargs)
        token = _in_call.set(True)
        try:
            result = await orig(self, cast_to, options, *args, **kwargs)
        except BaseException as exc:
            _fail(meter, exc)
            raise
        finally:
            _in_call.reset(token)
        try:
            from anthropic._response import BaseAPIResponse

            if isinstance(result, BaseAPIResponse):
                await _observe_raw_async(meter, result)
            else:
                _observe(meter, result)
        except Exception as exc:  # noqa: BLE001 - the user's result is returned whatever happens here
            _errors.report("anthropic.observe", exc)
        return result

    request.__meterline_original__ = orig  # type: ignore[attr-defined]
    return request


# -- instrument / uninstrument -------------------------------------------------------------------------
def _patch(owner: type, name: str, make: Callable[[Any], Any]) -> None:
    original = owner.__dict__[name]
    setattr(owner, name, make(original))
    _patched.append((owner, name, original))


def instrument() -> None:
    """Meter every Anthropic Messages API call (idempotent)."""
    with _lock:
        if _patched:
            return
        from anthropic import _base_client

        _patch(_base_client.SyncAPIClient, "request", _sync_request)
        _patch(_base_client.AsyncAPIClient, "request", _async_request)
        for module_name, class_names in _RESOURCES:
            try:
                module = importlib.import_module(module_name)
            except ImportError:  # an SDK version without this helper
                continue
            for class_name in class_names:
                cls = getattr(module, class_name, None)
                if cls is None:
                    continue
                for method in _RESOURCE_METHODS:
                    if method in cls.__dict__:
                        _patch(cls, method, _wrap_resource_method)


def uninstrument() -> bool:
    """Restore the SDK exactly; True if anything was instrumented."""
    with _lock:
        if not _patched:
            return False
        for owner, name, original in reversed(_patched):
            setattr(owner, name, original)
        _patched.clear()
        return True


def is_instrumented() -> bool:
    return bool(_patched)
