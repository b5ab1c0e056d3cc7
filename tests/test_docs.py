"""The documentation holds together: every page under docs/ is listed in the index (docs/README.md), and every
relative link in README.md, CHANGELOG.md and docs/**/*.md resolves (the file exists; an ``#anchor`` names a
heading of that file).

Also a script: ``python tests/test_docs.py`` prints every broken link and unlisted page (exit 1 if any).
"""

from __future__ import annotations

import re
import sys
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
INDEX = DOCS / "README.md"

_FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.S | re.M)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.M)
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
_EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)  # http:, https:, mailto:, …


def markdown_files() -> list[Path]:
    """The pages whose links are checked: the README, the changelog and everything under docs/."""
    files = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted(DOCS.rglob("*.md"))]
    return [f for f in files if f.is_file()]


def _prose(text: str) -> str:
    """The text without fenced code blocks and code spans (a link-like string in code is not a link)."""
    return _CODE_SPAN.sub("", _FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for m in _HEADING.finditer(_FENCE.sub("", path.read_text(encoding="utf-8"))):
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def links(path: Path) -> list[str]:
    text = _prose(path.read_text(encoding="utf-8"))
    return [m.group(1) for m in _INLINE.finditer(text)] + [m.group(1) for m in _REFERENCE.finditer(text)]


def broken_links() -> list[str]:
    """``file: target (why)`` for every relative link that does not resolve."""
    bad = []
    for page in markdown_files():
        for target in links(page):
            if _EXTERNAL.match(target) or target.startswith("//"):
                continue
            raw_path, _, fragment = target.partition("#")
            path = urllib.parse.unquote(raw_path)
            dest = (page.parent / path).resolve() if path else page
            where = f"{page.relative_to(ROOT)}: {target}"
            if not dest.exists():
                bad.append(f"{where} (no such file)")
            elif ROOT not in dest.parents and dest != ROOT:
                bad.append(f"{where} (outside the repository)")
            elif fragment and dest.suffix == ".md" and fragment.lower() not in anchors(dest):
                bad.append(f"{where} (no heading #{fragment} in {dest.relative_to(ROOT)})")
    return bad


def unlisted_pages() -> list[str]:
    """Pages under docs/ that the index does not link to."""
    if not INDEX.is_file():
        return ["docs/README.md (the index) is missing"]
    listed = {
        (INDEX.parent / urllib.parse.unquote(t.partition("#")[0])).resolve()
        for t in links(INDEX)
        if not _EXTERNAL.match(t) and t.partition("#")[0]
    }
    pages = [p for p in sorted(DOCS.rglob("*.md")) if p != INDEX]
    return [str(p.relative_to(ROOT)) for p in pages if p.resolve() not in listed]


def test_every_docs_page_is_in_the_index() -> None:
    assert INDEX.is_file(), "docs/README.md (the index of the documentation) is missing"
    assert unlisted_pages() == []


def test_every_relative_link_resolves() -> None:
    assert broken_links() == []


def test_the_readme_links_to_the_index_and_stays_short() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/README.md" in readme
    assert len(readme.splitlines()) <= 200
    assert readme.count("\n## Reliability\n") <= 1


def test_the_checker_finds_a_broken_link(tmp_path: Path) -> None:
    """The checker itself (a check that cannot fail checks nothing)."""
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[ok](page.md#title) [bad](nope.md) `[code](nope.md)`\n```\n[x](nope2.md)\n```\n")
    assert links(page) == ["page.md#title", "nope.md"]
    assert anchors(page) == {"title"}
    assert slug("Where does a new … go?") == "where-does-a-new--go"
    assert slug("`meterline serve`: run it") == "meterline-serve-run-it"


if __name__ == "__main__":
    problems = [f"broken link: {b}" for b in broken_links()] + [f"not in docs/README.md: {p}" for p in unlisted_pages()]
    print("\n".join(problems) or "docs: every relative link resolves, every page is listed")
    sys.exit(1 if problems else 0)
