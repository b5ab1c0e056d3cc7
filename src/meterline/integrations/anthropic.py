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
errors become one ``error`` event and the SDK's exception is re-raised unchanged. ``meterline.sdk.scopes``'s
``should_meter()`` is honoured and ``in_call`` is set during the request, so a layer below us is not counted
twice. A ``with_raw_response`` wrapper made *before* instrumenting still calls the original ``create`` (it is
metered, but cannot take ``usage_metadata=``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from meterline.core import errors as _errors
from meterline.integrations._anthropic_stream import instrument_async_stream, instrument_stream
from meterline.integrations._call import CallMeter, request_headers
from meterline.integrations._stainless import Patches, RequestHook
from meterline.sdk.scopes import should_meter

_MESSAGES_PATH = "/v1/messages"
_RESOURCES = (
    ("anthropic.resources.messages.messages", ("Messages", "AsyncMessages")),
    ("anthropic.resources.beta.messages.messages", ("Messages", "AsyncMessages")),
    ("anthropic.lib.bedrock._beta_messages", ("Messages", "AsyncMessages")),
    ("anthropic.lib.vertex._beta_messages", ("Messages", "AsyncMessages")),
)
_RESOURCE_METHODS = ("create", "stream", "parse")
_PROVIDERS = {"BaseBedrockClient": "bedrock", "BaseVertexClient": "vertex_ai", "BaseFoundryClient": "azure"}

_patches = Patches("anthropic")


# -- the request choke point -------------------------------------------------------------------------
def _is_messages_call(options: Any) -> bool:
    url = getattr(options, "url", "")
    return getattr(options, "method", "") == "post" and isinstance(url, str) and url.partition("?")[0] == _MESSAGES_PATH


_provider_of: dict[type, str] = {}  # client class -> provider: the MRO is walked once per class, not per call


def _provider(client: Any) -> str:
    found = _provider_of.get(type(client))
    if found is None:
        found = _provider_of[type(client)] = next(
            (_PROVIDERS[c.__name__] for c in type(client).__mro__ if c.__name__ in _PROVIDERS), "anthropic"
        )
    return found


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
    meter.api_base = getattr(client, "base_url", None)  # where the call goes (a proxy, Bedrock, Vertex AI)
    meter.want_content(body.get("messages"), request_headers(client, options), body)
    return meter


def _observe(meter: CallMeter, result: Any) -> None:
    """Meter a non-raw result: a Message (success now) or a Stream (success when it finishes)."""
    Stream, AsyncStream = _stream_types()
    if isinstance(result, Stream):
        instrument_stream(result, meter)
    elif isinstance(result, AsyncStream):
        instrument_async_stream(result, meter)
    else:
        meter.success(CallMeter.anthropic_message, result)  # the Message is read on the recorder's thread


@functools.cache
def _stream_types() -> tuple[type[Any], type[Any]]:
    from anthropic import AsyncStream, Stream

    return Stream, AsyncStream


def _raw_types() -> tuple[type[Any], ...]:
    from anthropic._response import BaseAPIResponse

    return (BaseAPIResponse,)


def _start_call(client: Any, options: Any, call_md: Mapping[str, Any] | None) -> tuple[CallMeter, None] | None:
    meter = _start(client, options, call_md)
    return None if meter is None else (meter, None)


_hook = RequestHook("anthropic", _start_call, lambda meter, _extra, result: _observe(meter, result), _raw_types)


# -- instrument / uninstrument -------------------------------------------------------------------------------
def instrument() -> None:
    """Meter every Anthropic Messages API call (idempotent)."""
    _patches.install("anthropic._base_client", _hook, _RESOURCES, _RESOURCE_METHODS)


def uninstrument() -> bool:
    """Restore the SDK exactly; True if anything was instrumented."""
    return _patches.uninstall()


def is_instrumented() -> bool:
    return bool(_patches)
