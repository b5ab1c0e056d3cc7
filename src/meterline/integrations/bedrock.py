"""Direct boto3 ``bedrock-runtime`` metering: ``invoke_model``, ``invoke_model_with_response_stream``,
``converse`` and ``converse_stream``, each metered once (provider and integration ``bedrock``).

Why botocore's event hooks rather than patching ``_make_api_call``: botocore emits, per logical call and
with one ``context`` dict shared by them all, ``before-parameter-build`` (the user's parameters, before
validation: where ``usage_metadata=`` is removed and the call starts), ``after-call`` (the parsed reply and
HTTP status, after botocore's own retries, so a retried call is still one event) and ``after-call-error``
(timeouts, connection errors). These are a documented extension point that other tools (Stubber, X-Ray,
OpenTelemetry) share without stepping on each other, survive botocore refactors of private methods, and
need no wrapper around the user's call at all.

Event handlers live on each client's own event system (a client copies its session's handlers when it is
created), so they are attached to every ``bedrock-runtime`` client: those already alive when
``instrument()`` runs (found once, by a scan of live objects) and those created later (the single patch:
``ClientCreator.create_client`` registers the handlers on each new ``bedrock-runtime`` client). Handlers use
``unique_id`` so registering twice is a no-op; ``uninstrument()`` unregisters them and restores
``create_client``.

A call botocore rejects before sending anything (parameter validation) reaches no provider and is not
metered. ``invoke_model``'s body is read once here (and handed back as an identical ``StreamingBody``) to get
the model's own usage with the 5-minute/1-hour cache split; the ``x-amzn-bedrock-*-token-count`` headers are
the fallback for models whose body has no usage.
"""

from __future__ import annotations

import functools
import gc
import io
import json
import threading
import weakref
from typing import Any

from meterline.core import errors as _errors
from meterline.core import usage as _usage
from meterline.core.usage import get_field as get
from meterline.integrations._bedrock_stream import instrument_event_stream
from meterline.integrations._call import CallMeter, call_metadata
from meterline.sdk.patching import LEDGER
from meterline.sdk.scopes import should_meter

SERVICE = "bedrock-runtime"
OPERATIONS = frozenset({"InvokeModel", "InvokeModelWithResponseStream", "Converse", "ConverseStream"})
_CONTEXT_KEY = "meterline_call"

_lock = threading.Lock()
_clients: weakref.WeakSet[Any] = weakref.WeakSet()
NAME = "bedrock"


# -- event handlers (run on the caller's thread, inside the boto3 call) ---------------------------------
def _before_parameter_build(params: Any, model: Any, context: Any, **_: Any) -> None:
    try:
        if getattr(model, "name", None) not in OPERATIONS or not isinstance(params, dict):
            return
        raw_md = params.pop("usage_metadata", None)  # before botocore validates: it would reject it
        if not should_meter() or not isinstance(context, dict):
            return
        model_id = params.get("modelId")
        operation = "embedding" if isinstance(model_id, str) and "embed" in model_id.lower() else "chat"
        meter = CallMeter(
            provider="bedrock",
            model=model_id if isinstance(model_id, str) else "unknown",
            integration="bedrock",
            stream=model.name in ("InvokeModelWithResponseStream", "ConverseStream"),
            call_md=call_metadata(raw_md),
            operation=operation,
        )
        meter.want_content(
            params.get("messages") if model.name.startswith("Converse") else None,
            None,
            {k: v for k, v in params.items() if k != "body"} if model.name.startswith("Converse") else None,
        )
        context[_CONTEXT_KEY] = meter
    except Exception as exc:  # noqa: BLE001 - never break the user's call
        _errors.report("bedrock.before_parameter_build", exc)


def _after_call(http_response: Any, parsed: Any, model: Any, context: Any, **_: Any) -> None:
    meter = context.pop(_CONTEXT_KEY, None) if isinstance(context, dict) else None
    if meter is None:
        return
    try:
        status = getattr(http_response, "status_code", 200)
        if status >= 300:
            error = get(parsed, "Error") or {}
            code = error.get("Code") or f"HTTP{status}"
            meter.error(None, str(code), str(error.get("Message") or code))
            return
        name = model.name
        if name == "Converse":
            _converse(meter, parsed)
        elif name == "InvokeModel":
            _invoke(meter, parsed, http_response)
        else:
            stream = parsed.get("stream") if name == "ConverseStream" else parsed.get("body")
            instrument_event_stream(stream, meter)
    except Exception as exc:  # noqa: BLE001 - never break the user's call
        _errors.report("bedrock.after_call", exc)


def _after_call_error(exception: BaseException, context: Any, **_: Any) -> None:
    meter = context.pop(_CONTEXT_KEY, None) if isinstance(context, dict) else None
    if meter is not None:
        meter.error(exception)


def _converse(meter: CallMeter, parsed: Any) -> None:
    meter.tokens = _usage.from_bedrock_converse(get(parsed, "usage"), get(get(parsed, "serviceTier"), "type"))
    meter.set_stop(get(parsed, "stopReason"))
    for block in get(get(get(parsed, "output"), "message"), "content") or ():
        if get(block, "toolUse") is not None:
            meter.tool_use = True
        elif meter.text_parts is not None and isinstance(get(block, "text"), str):
            meter.text_parts.append(block["text"])
    meter.success()


def _invoke(meter: CallMeter, parsed: Any, http_response: Any) -> None:
    from botocore.response import StreamingBody

    body = parsed.get("body")
    data = body.read() if body is not None else b""
    parsed["body"] = StreamingBody(io.BytesIO(data), len(data))  # the user reads the same bytes
    try:
        reply = json.loads(data) if data else None
    except ValueError:
        reply = None
    if isinstance(reply, dict) and isinstance(reply.get("usage"), dict) and "input_tokens" in reply["usage"]:
        meter.success(CallMeter.anthropic_message, reply)  # our own parse of the body: read on the recorder's thread
        return
    headers = getattr(http_response, "headers", {}) or {}
    meter.tokens = _usage.TokenUsage(
        input_tokens=_usage._int(headers.get("x-amzn-bedrock-input-token-count")),
        cache_read_tokens=_usage._int(headers.get("x-amzn-bedrock-cache-read-input-token-count")),
        cache_write_tokens=_usage._int(headers.get("x-amzn-bedrock-cache-write-input-token-count")),
        output_tokens=_usage._int(headers.get("x-amzn-bedrock-output-token-count")),
    )
    if isinstance(reply, dict):
        meter.set_stop(reply.get("stop_reason") or reply.get("stopReason"))
    meter.success()


_HANDLERS = (
    (f"before-parameter-build.{SERVICE}", _before_parameter_build, "meterline-bedrock-start"),
    (f"after-call.{SERVICE}", _after_call, "meterline-bedrock-end"),
    (f"after-call-error.{SERVICE}", _after_call_error, "meterline-bedrock-error"),
)


def _is_bedrock_runtime(client: Any) -> bool:
    meta = getattr(client, "meta", None)
    return getattr(getattr(meta, "service_model", None), "service_name", None) == SERVICE


def register_client(client: Any) -> None:
    """Attach the metering handlers to one ``bedrock-runtime`` client (idempotent)."""
    events = client.meta.events
    for event, handler, unique_id in _HANDLERS:
        events.register(event, handler, unique_id=unique_id)
    _clients.add(client)


def _unregister_client(client: Any) -> None:
    events = client.meta.events
    for event, handler, unique_id in _HANDLERS:
        events.unregister(event, handler, unique_id=unique_id)


def _wrap_create_client(orig: Any) -> Any:
    @functools.wraps(orig)
    def create_client(self: Any, *args: Any, **kwargs: Any) -> Any:
        client = orig(self, *args, **kwargs)
        try:
            if _is_bedrock_runtime(client):
                register_client(client)
        except Exception as exc:  # noqa: BLE001 - the user's client is returned whatever happens here
            _errors.report("bedrock.register_client", exc)
        return client

    return create_client


def instrument() -> None:
    """Meter every ``bedrock-runtime`` client, existing and future (idempotent)."""
    with LEDGER.installing(NAME) as fresh:
        if not fresh:
            return
        from botocore.client import BaseClient, ClientCreator

        LEDGER.patch(NAME, ClientCreator, "create_client", _wrap_create_client)
        # Clients created before instrumenting: one scan of live objects, at instrument time only.
        for obj in gc.get_objects():
            if isinstance(obj, BaseClient) and _is_bedrock_runtime(obj):
                register_client(obj)


def uninstrument() -> bool:
    """Unregister from every client and restore ``create_client``; True if anything was instrumented."""
    with _lock:
        if not LEDGER.restore(NAME):
            return False
        for client in list(_clients):
            _unregister_client(client)
        _clients.clear()
        return True


def is_instrumented() -> bool:
    return LEDGER.installed(NAME)
