"""One registry of settings (meterline.core.settings) against the code and the docs.

(a) every ``METERLINE_*`` name that src/meterline mentions (outside the registry itself), and every name the
collector derives from its settings fields (``METERLINE_<FIELD>``), is in the registry; (b) every name in the
registry is read where it says; (c) docs/reference/configuration.md is what the registry generates; (d) every
``METERLINE_*`` name the README, the docs, the tests, the benchmarks and CI mention exists in the registry.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from meterline.core.settings import BY_NAME, PARTS, SETTINGS, reference_markdown

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "meterline"
REGISTRY = SRC / "core" / "settings.py"
REFERENCE = ROOT / "docs" / "reference" / "configuration.md"
# a whole variable name: not a prefix (METERLINE_), nor a pattern (METERLINE_CAPTURE_*, METERLINE_<FIELD>)
NAME = re.compile(r"(?<![A-Za-z0-9_])_?METERLINE_[A-Z0-9_]*[A-Z0-9](?![A-Za-z0-9_*<])")


def names_in(paths: list[Path]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in paths:
        for name in NAME.findall(path.read_text(encoding="utf-8")):
            found.setdefault(name, []).append(str(path.relative_to(ROOT)))
    return found


def collector_names() -> set[str]:
    """What ``meterline.server.settings.from_environment`` reads: ``METERLINE_<FIELD>`` and its aliases."""
    from meterline.server import settings

    out: set[str] = set()
    for field in dataclasses.fields(settings.Settings):
        out.update(settings._ENV_ALIASES.get(field.name, (settings._ENV_PREFIX + field.name.upper(),)))
    return out


def _source(where: str) -> Path:
    return ROOT / where if where.startswith(("tests/", "bench/", ".ci/")) else SRC / where


def test_every_name_in_src_is_in_the_registry() -> None:
    sources = [p for p in sorted(SRC.rglob("*.py")) if p != REGISTRY]
    in_src = set(names_in(sources)) | collector_names()
    assert sorted(in_src - set(BY_NAME)) == []


def test_every_registry_entry_is_read_where_it_says() -> None:
    derived = collector_names()
    assert len(BY_NAME) == len(SETTINGS), "a name is listed twice"
    wrong = []
    for s in SETTINGS:
        assert s.read_by and set(s.read_by) <= set(PARTS), s.name
        assert s.read_in and s.default and s.doc and s.section, s.name
        tests_only = s.read_by == ("tests-only",)
        for where in s.read_in:
            path = _source(where)
            if tests_only != where.startswith(("tests/", "bench/", ".ci/")):
                wrong.append(f"{s.name}: {where} (tests-only settings are read in tests/, bench/ or .ci/ only)")
            elif not path.is_file():
                wrong.append(f"{s.name}: {where} does not exist")
            elif s.name not in NAME.findall(path.read_text(encoding="utf-8")) and not (
                where == "server/settings.py" and s.name in derived
            ):
                wrong.append(f"{s.name}: not read in {where}")
    assert wrong == []


def test_the_registry_lists_nothing_that_is_never_read() -> None:
    in_src = set(names_in([p for p in SRC.rglob("*.py") if p != REGISTRY])) | collector_names()
    elsewhere = set(names_in([*ROOT.glob("tests/*.py"), *ROOT.glob("bench/*.py"), *ROOT.glob(".ci/*")]))
    unread = [s.name for s in SETTINGS if s.name not in (elsewhere if s.read_by == ("tests-only",) else in_src)]
    assert unread == []


def test_the_reference_page_is_generated_from_the_registry() -> None:
    assert REFERENCE.read_text(encoding="utf-8") == reference_markdown(), (
        "docs/reference/configuration.md is stale: python -m meterline.core.settings > docs/reference/configuration.md"
    )


def test_every_name_the_docs_tests_and_ci_mention_exists() -> None:
    paths = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    paths += [*sorted(ROOT.glob("tests/*.py")), *sorted(ROOT.glob("bench/*.py")), *sorted(ROOT.glob(".ci/*"))]
    paths += [p for p in sorted((ROOT / "deploy").rglob("*")) if p.is_file()]
    paths += [p for p in sorted((ROOT / "examples").rglob("*")) if p.is_file()]
    unknown = {name: where for name, where in names_in(paths).items() if name not in BY_NAME}
    assert unknown == {}


def test_the_name_pattern_takes_whole_names_only() -> None:
    text = 'METERLINE_ "METERLINE_CAPTURE_*" METERLINE_<FIELD> _METERLINE_PARENT_INIT X_METERLINE_NO `METERLINE_HOME`'
    assert NAME.findall(text) == ["_METERLINE_PARENT_INIT", "METERLINE_HOME"]
