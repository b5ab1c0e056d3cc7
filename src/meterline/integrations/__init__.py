"""One module per instrumented library; each exposes idempotent ``instrument()`` / ``uninstrument()``.

Instrumented libraries are imported lazily: importing meterline never imports LiteLLM or an SDK.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging

from meterline.constants import GATEWAY_HEADER as GATEWAY_HEADER  # re-exported: the name was public here

logger = logging.getLogger("meterline")

# integration name -> (module that patches it, the library it needs)
INTEGRATIONS: dict[str, tuple[str, str]] = {
    "litellm": ("meterline.integrations.litellm", "litellm"),
    "anthropic": ("meterline.integrations.anthropic", "anthropic"),
    "bedrock": ("meterline.integrations.bedrock", "botocore"),
    "openai": ("meterline.integrations.openai", "openai"),
}


def available() -> list[str]:
    """Integrations whose library is installed and whose module ships in this version."""
    out = []
    for name, (module, library) in INTEGRATIONS.items():
        if importlib.util.find_spec(library) is not None and importlib.util.find_spec(module) is not None:
            out.append(name)
    return out


def instrument(*names: str) -> list[str]:
    """Instrument the named integrations (default: every one whose library is installed).

    Returns the names now instrumented. Idempotent. Unknown names raise ValueError.
    """
    chosen = names or tuple(available())
    done: list[str] = []
    for name in chosen:
        if name not in INTEGRATIONS:
            raise ValueError(f"unknown integration {name!r}; known: {', '.join(INTEGRATIONS)}")
        module = importlib.import_module(INTEGRATIONS[name][0])
        module.instrument()
        done.append(name)
    return done


def uninstrument(*names: str) -> list[str]:
    """Exact inverse of :func:`instrument`; idempotent."""
    chosen = names or tuple(INTEGRATIONS)
    done: list[str] = []
    for name in chosen:
        if name not in INTEGRATIONS:
            raise ValueError(f"unknown integration {name!r}; known: {', '.join(INTEGRATIONS)}")
        module_name = INTEGRATIONS[name][0]
        if importlib.util.find_spec(module_name) is None:
            continue
        module = importlib.import_module(module_name)
        if module.uninstrument():
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
