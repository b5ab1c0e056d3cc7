"""One module per instrumented library, each under one contract (:class:`Integration`).

Each integration declares the library it patches, the versions it is tested on and the hook points (the
library's objects, private ones included, that it patches or relies on). All patches go through one ledger
(:mod:`meterline.sdk.patching`): install and uninstall are exact inverses, both idempotent. Importing meterline patches
nothing.

``instrument()`` never imports a library the app has not imported: a library already imported is
instrumented at once, an installed one not yet imported when the app imports it (a post-import hook,
:mod:`._post_import`). At that moment the installed version is checked against the tested range (a release
newer than the newest tested one but of the same major is compatible and quiet; older than the oldest, or a new
major: one warning naming both) and every hook point is looked up (one missing: that integration is disabled
with one error line and the library is left untouched). Nothing here raises into the app.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.metadata
import importlib.util
import logging
import re
import sys
import threading

from meterline.core.constants import GATEWAY_HEADER as GATEWAY_HEADER  # re-exported: the name was public here
from meterline.integrations import _post_import

logger = logging.getLogger("meterline")


@dataclasses.dataclass(frozen=True)
class Integration:
    name: str
    module: str  # the meterline module with instrument() / uninstrument() / is_instrumented()
    library: str  # the top-level import name it patches
    distribution: str  # the package whose version is checked
    tested: tuple[str, str]  # oldest and newest version the integration tests pass on (.ci/versions-*.txt)
    hook_points: tuple[str, ...]  # "module:Attr.path" objects the integration patches or relies on

    def describe(self) -> str:
        return f"{self.distribution} {self.tested[0]} to {self.tested[1]}"

    @property
    def compatible_below(self) -> str:
        """The first version assumed incompatible: the next major after the newest tested release. Minor
        releases come every few days (a minor of openai broke nothing in a year of them); the hook-point check
        still disables an integration whose objects a release removed."""
        return f"{_release(self.tested[1])[0] + 1}.0.0"


def _stainless_points(pkg: str, *more: str) -> tuple[str, ...]:
    """What the Anthropic and OpenAI integrations (both Stainless-generated SDKs) patch or rely on."""
    return (
        f"{pkg}._base_client:SyncAPIClient.request",
        f"{pkg}._base_client:AsyncAPIClient.request",
        f"{pkg}._base_client:SyncAPIClient._process_response",
        f"{pkg}._base_client:AsyncAPIClient._process_response",
        f"{pkg}:Stream.__stream__",
        f"{pkg}:AsyncStream.__stream__",
        f"{pkg}._response:BaseAPIResponse",
        *more,
    )


# The tested ranges are the pins in .ci/versions-floor.txt and .ci/versions-latest.txt (the CI matrix).
INTEGRATIONS: dict[str, Integration] = {
    "litellm": Integration(
        "litellm",
        "meterline.integrations.litellm",
        "litellm",
        "litellm",
        ("1.106.0", "1.110.2"),
        (
            "litellm.utils:function_setup",
            "litellm.utils:update_response_metadata",
            "litellm.utils:_restore_correlation_context_if_supported",
            "litellm.utils:get_llm_provider",
            "litellm.litellm_core_utils.litellm_logging:Logging.failure_handler",
            "litellm.caching.caching_handler:LLMCachingHandler.sync_get_cache",
            "litellm.caching.caching_handler:LLMCachingHandler.async_get_cache",
            "litellm.litellm_core_utils.streaming_handler:CustomStreamWrapper.__next__",
            "litellm.litellm_core_utils.streaming_handler:CustomStreamWrapper.__anext__",
            "litellm.litellm_core_utils.streaming_handler:CustomStreamWrapper.aclose",
            "litellm.types.utils:ModelResponse",
            "litellm.types.utils:EmbeddingResponse",
            "litellm.types.utils:TextCompletionResponse",
        ),
    ),
    "anthropic": Integration(
        "anthropic",
        "meterline.integrations.anthropic",
        "anthropic",
        "anthropic",
        ("1.0.0", "2.14.0"),
        _stainless_points(
            "anthropic",
            "anthropic.resources.messages:Messages.create",
            "anthropic.resources.messages:AsyncMessages.create",
        ),
    ),
    "bedrock": Integration(
        "bedrock",
        "meterline.integrations.bedrock",
        "botocore",
        "botocore",
        ("1.43.1", "1.44.8"),
        (
            "botocore.client:ClientCreator.create_client",
            "botocore.eventstream:EventStream._create_raw_event_generator",
        ),
    ),
    "openai": Integration(
        "openai",
        "meterline.integrations.openai",
        "openai",
        "openai",
        ("2.20.0", "3.57.0"),
        _stainless_points("openai", "openai._legacy_response:LegacyAPIResponse"),
    ),
    # agent frameworks: attribution only (agent, task, trace); the SDK integrations underneath meter
    "crewai": Integration(
        "crewai",
        "meterline.integrations.crewai",
        "crewai",
        "crewai",
        ("1.15.30", "1.15.30"),  # the version its CI venv runs (pyproject admits >=1.0,<2)
        ("crewai:Crew.kickoff", "crewai:Agent.execute_task"),
    ),
    "langchain": Integration(
        "langchain",
        "meterline.integrations.langchain",
        "langchain_core",
        "langchain-core",
        ("1.8.3", "1.8.3"),  # the version its CI venv runs (pyproject admits >=0.3,<2)
        (
            "langchain_core.tracers.context:register_configure_hook",
            "langchain_core.tracers.context:_configure_hooks",
        ),
    ),
}

_lock = threading.RLock()
_warned: set[str] = set()  # integrations whose out-of-range warning was logged (once per process)
_disabled: dict[str, str] = {}  # integration -> why it is off (a hook point missing, instrumenting failed)


# -- versions and hook points --------------------------------------------------------------------------------
def _release(version: str) -> tuple[int, ...]:
    """The numeric release part of a version (``1.108.7``, ``2.0.0rc1`` -> (2, 0, 0))."""
    parts = []
    for piece in version.split("."):
        m = re.match(r"\d+", piece)
        if m is None:
            break
        parts.append(int(m.group()))
        if m.end() != len(piece):
            break
    return tuple(parts)


def installed_version(integration: Integration) -> str | None:
    try:
        return importlib.metadata.version(integration.distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def in_tested_range(integration: Integration, version: str) -> bool:
    low, high = integration.tested
    return _release(low) <= _release(version) <= _release(high)


def in_compatible_range(integration: Integration, version: str) -> bool:
    """From the oldest tested release up to (not including) the next major after the newest tested one."""
    return _release(integration.tested[0]) <= _release(version) < _release(integration.compatible_below)


def missing_hook_points(integration: Integration) -> list[str]:
    """Hook points that do not resolve. Imports only submodules of the (already imported) library."""
    missing = []
    for point in integration.hook_points:
        module_name, _, path = point.partition(":")
        try:
            obj: object = importlib.import_module(module_name)
            for attr in path.split(".") if path else ():
                obj = getattr(obj, attr)
        except Exception:  # noqa: BLE001 - anything that does not resolve is missing
            missing.append(point)
    return missing


def _activate(integration: Integration) -> bool:
    """Check and patch an imported library; never raises. True when instrumented. (Not under ``_lock`` while
    patching: a post-import hook may run this in another thread's import.)"""
    name = integration.name
    try:
        module = importlib.import_module(integration.module)
        if module.is_instrumented():
            return True
        version = installed_version(integration) or "unknown"
        if version == "unknown" or not in_compatible_range(integration, version):
            with _lock:
                first = name not in _warned
                _warned.add(name)
            if first:
                logger.warning(
                    "meterline: %s %s is outside the versions the %s integration is tested on (%s) and "
                    "their major (below %s); it stays on: check its events, and please report any difference",
                    integration.distribution,
                    version,
                    name,
                    integration.describe(),
                    integration.compatible_below,
                )
        missing = missing_hook_points(integration)
        if missing:
            reason = f"{integration.distribution} {version} lacks {', '.join(missing)}"
            with _lock:
                _disabled[name] = reason
            logger.error(
                "meterline: %s integration disabled: %s (tested on %s); these calls are not metered",
                name,
                reason,
                integration.describe(),
            )
            return False
        module.instrument()
        with _lock:
            _disabled.pop(name, None)
        return True
    except Exception as exc:  # noqa: BLE001 - instrumenting must never break the app
        _rollback(integration)
        reason = f"instrumenting failed: {exc!r}"
        with _lock:
            _disabled[name] = reason
        logger.error("meterline: %s integration disabled: %s", name, reason)
        return False


def _rollback(integration: Integration) -> None:
    try:
        module = sys.modules.get(integration.module)
        if module is not None:
            module.uninstrument()
    except Exception:
        logger.exception("meterline: %s: undoing a failed instrumentation", integration.name)


def disabled() -> dict[str, str]:
    """Integrations switched off by a check, with the reason (``meterline doctor`` shows them)."""
    with _lock:
        return dict(_disabled)


def _installed(library: str) -> bool:
    try:
        return importlib.util.find_spec(library) is not None
    except (ImportError, ValueError):
        return False


def available() -> list[str]:
    """Integrations whose library is installed."""
    return [name for name, i in INTEGRATIONS.items() if i.library in sys.modules or _installed(i.library)]


# -- public API --------------------------------------------------------------------------------------------
def instrument(*names: str) -> list[str]:
    """Instrument the named integrations (default: every one whose library is installed).

    A library the app has already imported is instrumented now; one not imported yet is instrumented when the
    app imports it (meterline never imports it). Returns the names instrumented or waiting for their import;
    an integration disabled by its checks is left out (the log says why). Idempotent. Unknown names raise
    ValueError.
    """
    for name in names:
        if name not in INTEGRATIONS:
            raise ValueError(f"unknown integration {name!r}; known: {', '.join(INTEGRATIONS)}")
    out: list[str] = []
    for name in names or tuple(INTEGRATIONS):
        integration = INTEGRATIONS[name]
        if integration.library in sys.modules:
            if _activate(integration):
                out.append(name)
        elif _installed(integration.library):
            _post_import.when_imported(integration.library, functools.partial(_activate, integration))
            out.append(name)
        elif names:
            logger.warning("meterline: %s is not installed: the %s integration is off", integration.library, name)
    return out


def uninstrument(*names: str) -> list[str]:
    """Exact inverse of :func:`instrument` (also cancels instrumenting on a later import); idempotent.
    Returns the names whose patches were removed."""
    for name in names:
        if name not in INTEGRATIONS:
            raise ValueError(f"unknown integration {name!r}; known: {', '.join(INTEGRATIONS)}")
    done: list[str] = []
    for name in names or tuple(INTEGRATIONS):
        integration = INTEGRATIONS[name]
        _post_import.unwatch(integration.library)
        with _lock:
            _disabled.pop(name, None)
        module = sys.modules.get(integration.module)  # never patched if never imported
        if module is not None and module.uninstrument():
            done.append(name)
    return done


def instrument_litellm() -> None:
    instrument("litellm")


def instrument_anthropic() -> None:
    """The Anthropic SDK, including its Bedrock and Vertex clients."""
    instrument("anthropic")


def instrument_bedrock() -> None:
    """Direct boto3 ``bedrock-runtime`` calls (invoke_model, converse and their streams)."""
    instrument("bedrock")


def instrument_openai() -> None:
    instrument("openai")


def instrument_crewai() -> None:
    """CrewAI agent role, task and crew run on every LLM call made inside a crew."""
    instrument("crewai")


def instrument_langchain() -> None:
    """A meterline callback handler on every LangChain / LangGraph run (agent = chain or node name)."""
    instrument("langchain")
