"""Metadata scopes: ``meterline.metadata(...)``, the ``track_*`` decorators and ``meterline.meter()``.

Each scope is a context variable holding the merged metadata of every enclosing scope, so nesting,
threads started with :func:`with_context`, and asyncio tasks (which copy the context) all see the
right values. Works as a context manager and as a decorator of sync and async functions and of sync
and async generators (the scope is active while the generator body runs, not while it is suspended).
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, TypeVar, cast, overload

from meterline.core import metadata as _md

F = TypeVar("F", bound=Callable[..., Any])

_scope: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "meterline_scope", default=MappingProxyType({})
)
_metered: contextvars.ContextVar[bool] = contextvars.ContextVar("meterline_metered", default=False)
# True while a metered layer (LiteLLM, an SDK request hook, the gateway) runs a call in this thread/task: a
# layer underneath it (the OpenAI SDK under LiteLLM) does not meter the same call again. Integrations set it.
in_call: contextvars.ContextVar[bool] = contextvars.ContextVar("meterline_in_call", default=False)
_in_call = in_call  # the former private name
scope_var = _scope  # public name for integrations that set the scope from a framework callback


def current_metadata() -> Mapping[str, Any]:
    """The merged metadata of the enclosing scopes (read-only)."""
    return _scope.get()


_SELECTIVE_VAR = "METERLINE_SELECTIVE_METERING"
# should_meter() runs on every call. os.environ.get() encodes the key and decodes the value each time (~0.5 µs);
# reading os.environ's own dict is ~0.05 µs and still sees every change made through os.environ (setenv,
# monkeypatch, a later `os.environ[...] = ...`), so the flag keeps its meaning "as the environment says now".
_environ_data: Any = getattr(os.environ, "_data", None)
_selective_key: Any = os.environ.encodekey(_SELECTIVE_VAR) if _environ_data is not None else None
_selective_parsed: tuple[Any, bool] = (None, False)  # (the raw value last parsed, what it meant)


def selective_metering_enabled() -> bool:
    global _selective_parsed
    if not isinstance(_environ_data, dict):
        return os.environ.get(_SELECTIVE_VAR, "").strip().lower() in ("1", "true", "yes", "on")
    raw = _environ_data.get(_selective_key)
    if raw is None:
        return False
    last, enabled = _selective_parsed
    if raw is not last:
        decode: Any = os.environ.decodevalue  # typeshed types it str -> str; it is bytes -> str on POSIX
        text = decode(raw) if isinstance(raw, bytes) else str(raw)
        enabled = text.strip().lower() in ("1", "true", "yes", "on")
        _selective_parsed = (raw, enabled)
    return enabled


def should_meter() -> bool:
    """False inside an already-metered call, or outside ``meter()`` when selective metering is on."""
    if in_call.get():
        return False
    return _metered.get() or not selective_metering_enabled()


class _Scope:
    """Base for context-manager-and-decorator scopes. Subclasses say what to set in ``_enter``."""

    def _enter(self) -> list[tuple[contextvars.ContextVar[Any], contextvars.Token[Any]]]:
        raise NotImplementedError

    def __enter__(self) -> _Scope:
        self.__dict__.setdefault("_tokens", []).append(self._enter())
        return self

    def __exit__(self, *exc: object) -> None:
        for var, token in reversed(self.__dict__["_tokens"].pop()):
            var.reset(token)

    async def __aenter__(self) -> _Scope:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__(*exc)

    def _scoped(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Scope:
        """The scope to enter for one call of a decorated function (``track_*`` resolve values here)."""
        return self

    def __call__(self, func: F) -> F:
        return _decorate(func, self._scoped)


def _reset(tokens: list[tuple[contextvars.ContextVar[Any], contextvars.Token[Any]]]) -> None:
    for var, token in reversed(tokens):
        var.reset(token)


def _decorate(func: F, make: Callable[[tuple[Any, ...], dict[str, Any]], _Scope]) -> F:
    if inspect.isasyncgenfunction(func):

        @functools.wraps(func)
        async def agen_wrapper(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            scope = make(args, kwargs)
            tokens = scope._enter()
            try:
                agen = func(*args, **kwargs)
            finally:
                _reset(tokens)
            sent: Any = None
            while True:
                tokens = scope._enter()
                try:
                    item = await agen.asend(sent)
                except StopAsyncIteration:
                    return
                finally:
                    _reset(tokens)
                sent = yield item

        return cast(F, agen_wrapper)
    if inspect.isgeneratorfunction(func):

        @functools.wraps(func)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
            scope = make(args, kwargs)
            tokens = scope._enter()
            try:
                gen = func(*args, **kwargs)
            finally:
                _reset(tokens)
            sent: Any = None
            while True:
                tokens = scope._enter()
                try:
                    item = gen.send(sent)
                except StopIteration as stop:
                    return stop.value  # type: ignore[no-any-return]
                finally:
                    _reset(tokens)
                sent = yield item

        return cast(F, gen_wrapper)
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            with make(args, kwargs):
                return await cast(Callable[..., Awaitable[Any]], func)(*args, **kwargs)

        return cast(F, async_wrapper)

    @functools.wraps(func)
    def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
        with make(args, kwargs):
            return func(*args, **kwargs)

    return cast(F, sync_wrapper)


class metadata(_Scope):
    """Attach business metadata to every call metered inside this scope.

    ``with meterline.metadata(subscriber_id="cust-42", product_id="search"): ...`` or as a decorator.
    Inner scopes win over outer ones; a call's own ``usage_metadata=`` wins over all.
    Bad field names or values raise :class:`~meterline.core.metadata.MetadataError` naming the field.
    """

    def __init__(self, fields: Mapping[str, Any] | None = None, /, **kw: Any) -> None:
        self.fields = _md.normalise({**(fields or {}), **kw})

    def _enter(self) -> list[tuple[contextvars.ContextVar[Any], contextvars.Token[Any]]]:
        return [(_scope, _scope.set(_md.merge(_scope.get(), self.fields)))]


class meter(metadata):
    """Selective metering: with ``METERLINE_SELECTIVE_METERING=true`` only calls inside ``meter()``
    scopes are metered. Accepts metadata fields like :class:`metadata`."""

    def _enter(self) -> list[tuple[contextvars.ContextVar[Any], contextvars.Token[Any]]]:
        return [*super()._enter(), (_metered, _metered.set(True))]


class _Track(_Scope):
    """``track_*`` decorator: one field, from a static value, an argument, or an attribute path."""

    field = ""

    def __new__(cls, value: Any = None, **kw: Any) -> Any:
        # Bare ``@meterline.track_agent`` (no parentheses): decorate at once, named after the function.
        if inspect.isfunction(value) and not kw:
            return cls()(value)
        return super().__new__(cls)

    def __init__(
        self,
        value: Any = None,
        *,
        name_from_arg: str | None = None,
        name_from_attr: str | None = None,
    ) -> None:
        self.value = value
        self.name_from_arg = name_from_arg
        self.name_from_attr = name_from_attr
        if sum(x is not None for x in (value, name_from_arg, name_from_attr)) > 1:
            raise TypeError(f"{type(self).__name__}: give one of value, name_from_arg= or name_from_attr=")
        if value is not None:
            _md.normalise({self.field: value})  # fail now, at decoration time, on a bad value

    def _enter(self) -> list[tuple[contextvars.ContextVar[Any], contextvars.Token[Any]]]:
        fields = _md.normalise({self.field: self.value}) if self.value is not None else {}
        return [(_scope, _scope.set(_md.merge(_scope.get(), fields)))]

    def __call__(self, func: F) -> F:
        sig = inspect.signature(func)
        arg_name, attr_path = self.name_from_arg, self.name_from_attr
        if self.value is None and arg_name is None and attr_path is None:
            value: Any = func.__name__  # bare @track_agent: the function's name
        else:
            value = self.value
        if arg_name is not None and arg_name not in sig.parameters:
            raise TypeError(f"{type(self).__name__}: {func.__qualname__} has no argument {arg_name!r}")

        def make(args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Scope:
            resolved = value
            if arg_name is not None or attr_path is not None:
                try:
                    bound = sig.bind_partial(*args, **kwargs).arguments
                except TypeError:
                    bound = {}
                resolved = _resolve(bound, args, arg_name, attr_path)
            scope: _Track = object.__new__(type(self))
            scope.value = resolved
            return scope

        return _decorate(func, make)


def _resolve(bound: Mapping[str, Any], args: tuple[Any, ...], arg: str | None, attr: str | None) -> Any:
    if arg is not None:
        return bound.get(arg)
    assert attr is not None
    head, _, rest = attr.partition(".")
    if head in bound:  # "request.customer_id": attribute of an argument
        obj, path = bound[head], rest
    elif args:  # "tenant_id": attribute of self
        obj, path = args[0], attr
    else:
        return None
    for part in path.split(".") if path else ():
        obj = obj.get(part) if isinstance(obj, Mapping) else getattr(obj, part, None)
        if obj is None:
            return None
    return obj


class track_agent(_Track):
    field = "agent"


class track_task(_Track):
    field = "task_type"


class track_trace(_Track):
    field = "trace_id"


class track_organization(_Track):
    field = "organization_id"


class track_subscription(_Track):
    field = "subscription_id"


class track_product(_Track):
    field = "product_id"


class track_subscriber(_Track):
    field = "subscriber_id"


class track_quality(_Track):
    field = "response_quality_score"


@overload
def with_context(fn: F) -> F: ...
@overload
def with_context(fn: None = None) -> Callable[[F], F]: ...
def with_context(fn: F | None = None) -> F | Callable[[F], F]:
    """Wrap ``fn`` so it runs with the caller's current metadata, e.g. in a thread pool::

    executor.submit(meterline.with_context(work), item)
    """
    if fn is None:
        return with_context
    ctx = contextvars.copy_context()

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        return ctx.copy().run(fn, *args, **kwargs)

    return cast(F, run)
