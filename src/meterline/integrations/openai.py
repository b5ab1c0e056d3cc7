"""OpenAI SDK metering: chat completions (plain and streamed), legacy completions, embeddings and the
Responses API, sync and async, each call metered once.

Same design as the Anthropic integration (see ``meterline.integrations.anthropic``): the SDK's base
clients' ``request`` (class level: clients created before instrumenting are covered) is the one place every
``POST /chat/completions``, ``/completions``, ``/embeddings`` and ``/responses`` passes once per logical call,
whatever helper made it (``create``, ``parse``, ``stream()``, ``with_raw_response``); the resource methods are
wrapped only to pop ``usage_metadata=``. ``AzureOpenAI`` calls are provider ``azure``.

Streamed chat/completions without ``stream_options={"include_usage": True}`` report no usage at all, so
meterline adds that option to the request and removes the extra usage-only chunk from what the user iterates:
the user sees exactly the chunks they would have seen, and the event has the provider's token counts.

Not counted twice under LiteLLM, which calls the OpenAI SDK itself: ``should_meter()`` is honoured (an outer
layer sets ``meterline.sdk.scopes.in_call``), and, as a fallback, a call made from inside LiteLLM's own code
while meterline's LiteLLM integration is loaded is left to that integration.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping
from typing import Any

from meterline.core import errors as _errors
from meterline.core import usage as _usage
from meterline.integrations import _openai_usage as openai_usage
from meterline.integrations._call import CallMeter, request_headers
from meterline.integrations._openai_stream import StreamState, instrument_stream
from meterline.integrations._stainless import Patches, RequestHook
from meterline.sdk.scopes import should_meter

_OPERATIONS = {
    "/chat/completions": "chat",
    "/completions": "completion",
    "/embeddings": "embedding",
    "/responses": "chat",
}
_RESOURCES = (
    ("openai.resources.chat.completions.completions", ("Completions", "AsyncCompletions")),
    ("openai.resources.completions", ("Completions", "AsyncCompletions")),
    ("openai.resources.embeddings", ("Embeddings", "AsyncEmbeddings")),
    ("openai.resources.responses.responses", ("Responses", "AsyncResponses")),
)
_RESOURCE_METHODS = ("create", "stream", "parse")

_patches = Patches("openai")


# -- the request choke point ---------------------------------------------------------------------------
def _called_from_litellm() -> bool:
    # Fallback against double counting when meterline's LiteLLM integration is active but did not mark the
    # call: LiteLLM's OpenAI provider calls this SDK from its own modules. (If that module offers
    # is_instrumented(), it is asked; otherwise being loaded counts as active.)
    module = sys.modules.get("meterline.integrations.litellm")
    if module is None:
        return False
    active = getattr(module, "is_instrumented", None)
    if callable(active) and not active():
        return False
    frame: Any = sys._getframe(1)
    while frame is not None:
        if str(frame.f_globals.get("__name__", "")).startswith("litellm."):
            return True
        frame = frame.f_back
    return False


_provider_of: dict[type, str] = {}  # client class -> provider: the MRO is walked once per class, not per call


def _provider(client: Any) -> str:
    cls = type(client)
    found = _provider_of.get(cls)
    if found is None:
        found = _provider_of[cls] = "azure" if any(c.__name__ == "BaseAzureClient" for c in cls.__mro__) else "openai"
    return found


def _start(client: Any, options: Any, call_md: Mapping[str, Any] | None) -> tuple[CallMeter, StreamState] | None:
    try:
        url = getattr(options, "url", "")
        path = url.partition("?")[0] if isinstance(url, str) else ""
        operation = _OPERATIONS.get(path)
        if operation is None or getattr(options, "method", "") != "post" or not should_meter():
            return None
        if _called_from_litellm():
            return None
        body = getattr(options, "json_data", None)
        body = body if isinstance(body, dict) else {}
        model = body.get("model")
        stream = bool(body.get("stream"))
        meter = CallMeter(
            provider=_provider(client),
            model=model if isinstance(model, str) else "unknown",
            integration="openai",
            stream=stream,
            call_md=call_md,
            operation=operation,
        )
        meter.api_base = getattr(client, "base_url", None)  # where the call goes (a proxy, a compatible server)
        meter.want_content(
            body.get("messages") or body.get("input") or body.get("prompt"), request_headers(client, options), body
        )
        if stream:
            meter.prompt_chars = _usage.prompt_chars(body)
        hide = False
        if stream and path in ("/chat/completions", "/completions"):
            stream_options = body.get("stream_options")
            if not (isinstance(stream_options, dict) and stream_options.get("include_usage")):
                extra = stream_options if isinstance(stream_options, dict) else {}
                options.json_data = {**body, "stream_options": {**extra, "include_usage": True}}
                hide = True
        return meter, StreamState(meter, responses=path == "/responses", hide_usage_chunk=hide)
    except Exception as exc:  # noqa: BLE001 - the call goes ahead unmetered
        _errors.report("openai.start", exc)
        return None


def _observe(state: StreamState, result: Any) -> None:
    Stream, AsyncStream = _stream_types()
    meter = state.meter
    if isinstance(result, (Stream, AsyncStream)):
        instrument_stream(result, state, isinstance(result, AsyncStream))
        return
    # the reply object is read on the recorder's thread
    meter.success(openai_usage.response if state.responses else openai_usage.completion, result)


@functools.cache
def _stream_types() -> tuple[type[Any], type[Any]]:
    from openai import AsyncStream, Stream

    return Stream, AsyncStream


def _raw_types() -> tuple[type[Any], ...]:
    from openai._legacy_response import LegacyAPIResponse
    from openai._response import BaseAPIResponse

    return (LegacyAPIResponse, BaseAPIResponse)


_hook = RequestHook("openai", _start, lambda _meter, state, result: _observe(state, result), _raw_types)


# -- instrument / uninstrument ----------------------------------------------------------------------------
def instrument() -> None:
    """Meter OpenAI SDK calls (idempotent)."""
    _patches.install("openai._base_client", _hook, _RESOURCES, _RESOURCE_METHODS)


def uninstrument() -> bool:
    """Restore the SDK exactly; True if anything was instrumented."""
    return _patches.uninstall()


def is_instrumented() -> bool:
    return bool(_patches)
