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
from collections.abc import Callable, Mapping
from typing import Any

from meterline import _errors
from meterline.context import _in_call, should_meter
from meterline.integrations._anthropic_stream import instrument_async_stream, instrument_stream
from meterline.integrations._call import CallMeter
from meterline.integrations._stainless import Patches, take_metadata

_MESSAGES_PATH = "/v1/messages"
_RESOURCES = (
    ("anthropic.resources.messages.messages", ("Messages", "AsyncMessages")),
    ("anthropic.resources.beta.messages.messages", ("Messages", "AsyncMessages")),
    ("anthropic.lib.bedrock._beta_messages", ("Messages", "AsyncMessages")),
    ("anthropic.lib.vertex._beta_messages", ("Messages", "AsyncMessages")),
)
_RESOURCE_METHODS = ("create", "stream", "parse")
_PROVIDERS = {"BaseBedrockClient": "bedrock", "BaseVertexClient": "vertex_ai", "BaseFoundryClient": "azure"}

_patches = Patches()


# -- the request choke point -------------------------------------------------------------------------
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
        call_md = take_metadata(options)
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

    return request


def _async_request(orig: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(orig)
    async def request(self: Any, cast_to: Any, options: Any, *args: Any, **kwargs: Any) -> Any:
        call_md = take_metadata(options)
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

    return request


# -- instrument / uninstrument -------------------------------------------------------------------------------
def instrument() -> None:
    """Meter every Anthropic Messages API call (idempotent)."""
    with _patches.lock:
        if _patches:
            return
        from anthropic import _base_client

        _patches.patch(_base_client.SyncAPIClient, "request", _sync_request)
        _patches.patch(_base_client.AsyncAPIClient, "request", _async_request)
        _patches.patch_resources(_RESOURCES, _RESOURCE_METHODS)


def uninstrument() -> bool:
    """Restore the SDK exactly; True if anything was instrumented."""
    with _patches.lock:
        return _patches.restore()


def is_instrumented() -> bool:
    return bool(_patches)
