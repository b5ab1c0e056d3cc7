"""The layer rules of docs/internals/architecture.md, held against every ``import`` in src/meterline.

Static: each ``import``/``from … import`` statement anywhere in a module (also inside functions, which are
edges all the same). Every package has its row in ``ALLOWED``; a package without one fails the test, so a
new package is placed in the layers when it is created.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

import meterline

SRC = Path(__file__).resolve().parent.parent / "src" / "meterline"

# the public face (meterline/__init__, auto, __main__, _version) and what each package may import
FACE = {"meterline": {"core", "sdk", "integrations"}, "auto": {"meterline"}, "__main__": {"cli"}, "_version": set()}
BELOW_SERVER = {"core", "pricing", "store", "sdk", "billing", "budgets", "insights", "interop"}
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "pricing": {"core"},
    "store": {"core", "pricing"},
    "sdk": {"core", "pricing", "store"},  # store: the direct SQLite/PostgreSQL/ClickHouse sinks
    "integrations": {"core", "pricing", "sdk"},
    "billing": {"core", "pricing", "store"},
    "budgets": {"core", "pricing", "store"},
    "insights": {"core", "pricing", "store", "billing", "budgets"},
    "interop": {"core", "pricing", "store", "billing"},
    "server": BELOW_SERVER,
    "gateway": {"core", "pricing", "sdk", "store", "budgets", "billing"},
    "testing": BELOW_SERVER | {"meterline", "integrations", "server", "gateway"},
    "cli": BELOW_SERVER | {"meterline", "integrations", "server", "gateway", "testing"},
}
# inside the core: a module imports only core modules of a lower rank (the event knows no metadata rules)
CORE_RANK = {
    "constants": 0,
    "errors": 0,
    "timeutil": 0,
    "config": 0,
    "moved": 0,
    "settings": 0,
    "event": 1,
    "usage": 2,
    "metadata": 2,
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package(module: str) -> str:
    """``meterline.billing.store`` -> ``billing``; the face's modules are their own package."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "meterline"


def _imports() -> list[tuple[str, str, list[str], int]]:
    """(importing module, imported module, names imported from it, line) for every import in the package."""
    out = []
    for path in sorted(SRC.rglob("*.py")):
        module = _module_name(path)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                out += [(module, a.name, [], node.lineno) for a in node.names if a.name.split(".")[0] == "meterline"]
            elif isinstance(node, ast.ImportFrom):
                target = node.module or ""
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join([*base, target] if target else base)
                if target.split(".")[0] == "meterline":
                    out.append((module, target, [a.name for a in node.names], node.lineno))
    return out


def _targets(dst: str, names: list[str]) -> list[str]:
    """The modules an import reaches: ``from meterline.core import event`` reaches ``meterline.core.event``."""
    subs = [f"{dst}.{n}" for n in names if (SRC.parent / dst.replace(".", "/") / f"{n}.py").exists()]
    subs += [f"{dst}.{n}" for n in names if (SRC.parent / dst.replace(".", "/") / n / "__init__.py").exists()]
    return subs or [dst]


def violations(edges: list[tuple[str, str]]) -> list[str]:
    """Every edge (importer, imported module) that breaks a layer rule, as ``a -> b`` lines."""
    bad = []
    for src, dst in edges:
        sp, dp = _package(src), _package(dst)
        if sp == dp:
            if sp == "core" and src.count(".") == 2 and dst.count(".") == 2:
                s_rank, d_rank = CORE_RANK[src.split(".")[2]], CORE_RANK[dst.split(".")[2]]
                if d_rank >= s_rank:
                    bad.append(f"{src} -> {dst} (core rank {s_rank} imports rank {d_rank})")
            continue
        if dp == "_version":  # the version string is a leaf every layer may read
            continue
        allowed = FACE.get(sp) if src.count(".") == (0 if sp == "meterline" else 1) and sp in FACE else None
        if allowed is None:
            allowed = ALLOWED.get(sp)
        if allowed is None:
            bad.append(f"{src}: package {sp!r} has no row in the layer rules")
        elif dp not in allowed:
            bad.append(f"{src} -> {dst}")
    return sorted(set(bad))


def _edges() -> list[tuple[str, str]]:
    return [(src, t) for src, dst, names, _ in _imports() for t in _targets(dst, names) if t != src]


def test_every_package_has_a_place_in_the_layers() -> None:
    packages = {p.name for p in SRC.iterdir() if (p / "__init__.py").exists()}
    assert packages - set(ALLOWED) == set()
    assert set(CORE_RANK) == {p.stem for p in (SRC / "core").glob("*.py")} - {"__init__"}


def test_no_import_breaks_a_layer_rule() -> None:
    assert violations(_edges()) == []


@pytest.mark.parametrize(
    ("edge", "reason"),
    [
        (("meterline.store.query", "meterline.billing.model"), "store imports a domain"),
        (("meterline.core.event", "meterline.core.metadata"), "core rank 1 imports rank 2"),
        (("meterline.integrations.openai", "meterline.gateway.callback"), "an integration imports the gateway"),
        (("meterline.server.app", "meterline.gateway.enforcer"), "the collector imports the gateway"),
        (("meterline.billing.model", "meterline.server.app"), "a domain imports the server"),
        (("meterline.newpart.x", "meterline.core.event"), "a package with no row"),
    ],
)
def test_a_new_back_edge_fails(edge: tuple[str, str], reason: str) -> None:
    """The checker itself: each deliberate back-edge is reported (a rule that cannot fail is no rule)."""
    assert violations([edge]) != [], reason


def test_no_package_cycles() -> None:
    graph: dict[str, set[str]] = {}
    for src, dst in _edges():
        if _package(src) != _package(dst):
            graph.setdefault(_package(src), set()).add(_package(dst))

    def reaches(a: str, b: str, seen: set[str]) -> bool:
        return any(n == b or (n not in seen and reaches(n, b, seen | {n})) for n in graph.get(a, ()))

    assert [p for p in graph if reaches(p, p, set())] == []


def test_no_private_name_is_imported_across_packages() -> None:
    """``from meterline.sdk.scopes import _in_call`` from another package is a private contract; private modules
    (``meterline.integrations._call``) are fine, they are modules, not names."""
    bad = []
    for src, dst, names, line in _imports():
        for name in names:
            is_module = _targets(dst, [name]) != [dst]
            if name.startswith("_") and not name.startswith("__") and not is_module and _package(src) != _package(dst):
                bad.append(f"{src}:{line} imports {dst}.{name}")
    assert bad == []


def test_no_one_letter_module_alias_and_no_old_module_name_inside_meterline() -> None:
    from meterline.core.moved import new_name

    short, old = [], []
    for src, dst, names, line in _imports():
        if new_name(dst) is not None or any(new_name(t) for t in _targets(dst, names)):
            old.append(f"{src}:{line} {dst}")
    for path in SRC.rglob("*.py"):
        for m in re.finditer(r"^\s*(?:from \S+ )?import \S+ as ([A-Za-z]{1,2})$", path.read_text(), re.M):
            short.append(f"{path.relative_to(SRC)}: as {m.group(1)}")
    assert (short, old) == ([], [])


def test_the_old_module_names_still_resolve_to_the_same_modules() -> None:
    from meterline.core.moved import MOVED
    from meterline.gateway.callback import handler
    from meterline.store.remote import CollectorClient

    for old, new in MOVED.items():
        assert importlib.import_module(old) is importlib.import_module(new), old
    assert importlib.import_module("meterline.event").__spec__.name == "meterline.core.event"  # its own spec kept
    from meterline.sinks.http import HttpSink  # a submodule of a moved package

    assert HttpSink is importlib.import_module("meterline.sdk.sinks.http").HttpSink
    assert importlib.import_module("meterline.integrations.litellm_proxy").handler is handler
    assert importlib.import_module("meterline.server.client").CollectorClient is CollectorClient
    assert callable(meterline.metadata)  # the public scope function, no longer shadowed by a module
    assert importlib.import_module("meterline.core.metadata").MetadataError is meterline.MetadataError
