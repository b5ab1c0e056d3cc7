"""Two layers, one call, one event: LiteLLM calls the OpenAI SDK underneath; with both instrumented (as
``meterline.instrument()`` does), only the LiteLLM layer records the provider call — sync, async and streamed."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import litellm
import pytest

import meterline

MSGS = [{"role": "user", "content": "What is the weather in Paris today?"}]  # 9 tokens at the fake


@pytest.fixture
def both(meter_db: Any) -> Iterator[Any]:
    assert set(meterline.instrument("litellm", "openai")) == {"litellm", "openai"}
    yield meter_db
    meterline.uninstrument()


async def test_litellm_over_the_openai_sdk_is_one_event_per_call(both: Any, fake_provider: Any) -> None:
    kw: dict[str, Any] = {"model": "openai/gpt-4o-mini", "api_base": fake_provider.openai_base_url, "api_key": "k"}
    litellm.completion(messages=MSGS, **kw)
    await litellm.acompletion(messages=MSGS, **kw)
    for _ in litellm.completion(messages=MSGS, stream=True, **kw):
        pass
    async for _ in await litellm.acompletion(messages=MSGS, stream=True, **kw):
        pass
    litellm.embedding(model="openai/text-embedding-3-small", input=["a b c d"], api_base=kw["api_base"], api_key="k")
    assert len(fake_provider.requests) == 5
    events = both.events()
    assert [(e.integration, e.operation, e.stream) for e in events] == [
        ("litellm", "chat", False),
        ("litellm", "chat", False),
        ("litellm", "chat", True),
        ("litellm", "chat", True),
        ("litellm", "embedding", False),
    ]
    assert [(e.provider, e.input_tokens) for e in events] == [("openai", 9)] * 4 + [
        ("openai", 2)
    ]  # "a b c d": 7 chars -> 2


# -- import directions (static: every ``import``/``from … import`` in src/meterline) ------------------------
SRC = Path(__file__).resolve().parent.parent / "src" / "meterline"
UPPER = ("integrations", "gateway", "server", "cli", "testing")
# the one allowed exception: the old callback name, resolved lazily (PEP 562) so it is no import-time edge
COMPAT_ALIASES = {"meterline.integrations.litellm_proxy"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in UPPER else "core"


def _imports() -> list[tuple[str, str, list[str]]]:
    """(importing module, imported module, names imported from it) for every import in the package."""
    out = []
    for path in SRC.rglob("*.py"):
        module = _module_name(path)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                out += [(module, alias.name, []) for alias in node.names if alias.name.startswith("meterline")]
            elif isinstance(node, ast.ImportFrom):
                target = node.module or ""
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join([*base, target] if target else base)
                if target.startswith("meterline"):
                    out.append((module, target, [a.name for a in node.names]))
    return out


def _edges() -> set[tuple[str, str]]:
    return {(_layer(src), _layer(dst)) for src, dst, _ in _imports() if src not in COMPAT_ALIASES}


def test_the_core_imports_no_integration_gateway_server_or_cli() -> None:
    facade = {"meterline", "meterline.auto", "meterline.__main__"}  # the public API and the entry point
    bad = [
        (src, dst)
        for src, dst, _ in _imports()
        if _layer(src) == "core" and src not in facade and _layer(dst) in ("integrations", "gateway", "server", "cli")
    ]
    assert bad == []


def test_layers_import_only_downwards() -> None:
    edges = _edges()
    assert not {("integrations", "gateway"), ("integrations", "server"), ("integrations", "cli")} & edges
    assert not {("gateway", "server"), ("gateway", "cli")} & edges
    assert not {("server", "integrations"), ("server", "gateway"), ("server", "cli")} & edges
    # no cycle between gateway and integrations, whichever way
    assert not (("gateway", "integrations") in edges and ("integrations", "gateway") in edges)


def test_no_private_name_is_imported_across_packages() -> None:
    """``from meterline.context import _in_call`` from another package is a private contract; private modules
    (``meterline._errors``) are fine, they are modules, not names."""
    bad = []
    for src, dst, names in _imports():
        src_pkg, dst_pkg = _layer(src), _layer(dst)
        for name in names:
            is_module = (SRC.parent / dst.replace(".", "/") / f"{name}.py").exists() or (
                SRC.parent / dst.replace(".", "/") / name
            ).is_dir()
            if name.startswith("_") and not name.startswith("__") and not is_module and src_pkg != dst_pkg:
                bad.append(f"{src} imports {dst}.{name}")
    assert bad == []


def test_the_old_callback_name_and_module_paths_still_resolve() -> None:
    import importlib

    from meterline.gateway.callback import handler
    from meterline.store.remote import CollectorClient

    assert importlib.import_module("meterline.integrations.litellm_proxy").handler is handler
    assert importlib.import_module("meterline.server.client").CollectorClient is CollectorClient
    assert callable(meterline.metadata)  # the public scope function, no longer shadowed by a module
    assert importlib.import_module("meterline.fields").MetadataError is meterline.MetadataError
