"""Generate the reference pages from the code: ``docs/reference/cli.md`` from the ``meterline`` argparse parser,
``docs/reference/http-api.md`` from the collector's FastAPI routes.

    python scripts/gen_reference.py cli > docs/reference/cli.md
    python scripts/gen_reference.py http > docs/reference/http-api.md

(The configuration reference has its own generator: ``python -m meterline.core.settings``.)
"""

from __future__ import annotations

import argparse
import inspect
import os
import re
import sys
from collections.abc import Iterator
from typing import Any

# argparse wraps help to the terminal width: a fixed width makes the output the same on every machine
os.environ["COLUMNS"] = "100"


# -- CLI ---------------------------------------------------------------------------------------------------------
def _subparsers(parser: argparse.ArgumentParser) -> Iterator[tuple[str, str, argparse.ArgumentParser]]:
    """(name, one-line help, parser) of each sub-command, aliases once."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            seen: set[int] = set()
            for name, sub in action.choices.items():
                if id(sub) not in seen:
                    seen.add(id(sub))
                    yield name, helps.get(name, ""), sub


Command = tuple[list[str], str, argparse.ArgumentParser]


def _walk(parser: argparse.ArgumentParser, path: list[str], help: str = "") -> Iterator[Command]:
    yield path, help, parser
    for name, sub_help, sub in _subparsers(parser):
        yield from _walk(sub, [*path, name], sub_help)


def cli_markdown() -> str:
    from meterline.cli import build_parser

    root = build_parser()
    commands = list(_walk(root, ["meterline"]))
    out = [
        "# Command-line reference",
        "",
        "Every `meterline` command and sub-command with its flags: the `--help` output of each, generated from",
        "the argparse parser (`meterline.cli.build_parser`; each command is a module under `src/meterline/cli/`",
        "listed in `meterline.cli.COMMANDS`). Do not edit by hand; regenerate with:",
        "",
        "```bash",
        "python scripts/gen_reference.py cli > docs/reference/cli.md",
        "```",
        "",
        "Every command that reads or writes events finds the store the same way: `--database`/`--destination`,",
        "else `METERLINE_DESTINATION`, else `meterline.db` in the user data dir (see",
        "[configuration.md](configuration.md)).",
        "",
        "## Commands",
        "",
    ]
    for path, help, _ in commands[1:]:
        indent = "  " * (len(path) - 2)
        out.append(f"{indent}- [`{' '.join(path)}`](#{'-'.join(path)}){(': ' + help) if help else ''}")
    out.append("")
    for path, _, parser in commands:
        out += [f"## {' '.join(path)}", "", "```text", parser.format_help().rstrip(), "```", ""]
    return "\n".join(out)


# -- HTTP --------------------------------------------------------------------------------------------------------
def _routes(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(full path, route) of every endpoint, through included routers (FastAPI >= 0.16x keeps them nested)."""
    for route in routes:
        original = getattr(route, "original_router", None)
        if original is not None:
            yield from _routes(original.routes, prefix + route.include_context.prefix)
        elif hasattr(route, "methods") and route.methods:
            yield prefix + route.path, route


def _dependency_calls(dependant: Any) -> Iterator[Any]:
    for dep in getattr(dependant, "dependencies", ()):
        yield dep.call
        yield from _dependency_calls(dep)


def _source(endpoint: Any) -> str:
    """The endpoint's source and that of the module's private helpers it calls (``_budgets(request)``)."""
    try:
        source = inspect.getsource(endpoint)
    except (OSError, TypeError):
        return ""
    module = sys.modules.get(endpoint.__module__)
    for name in dict.fromkeys(re.findall(r"\b(_\w+)\(", source)):
        helper = getattr(module, name, None)
        if inspect.isfunction(helper):
            source += inspect.getsource(helper)
    return source


def _auth(route: Any) -> str:
    from meterline.server import deps

    calls = set(_dependency_calls(getattr(route, "dependant", None)))
    scopes = [s for s, fn in (("ingest", deps._ingest), ("read", deps._read), ("admin", deps._admin)) if fn in calls]
    if scopes:
        return " or ".join("admin key" if s == "admin" else f"{s} key (or admin)" for s in scopes)
    source = _source(route.endpoint)
    if "require(request, admin=True)" in source:
        return "dashboard session, admin key"
    if "require(request" in source:
        return "dashboard session, read or admin key"
    if "/share/{token}" in route.path:
        return "signed share-link token"
    if "LOGIN_CSRF_COOKIE" in source:
        return "none (sign-in form, CSRF cookie)"
    return "none"


def _returns(route: Any) -> str:
    doc = inspect.getdoc(route.endpoint) or ""
    text = getattr(route, "summary", None) or (doc.split("\n\n")[0].replace("\n", " ") if doc else "")
    if not text:
        text = route.endpoint.__name__.replace("_", " ").strip().capitalize()
    parts = [text.strip().rstrip(".")]
    query = [q.alias or q.name for q in getattr(route.dependant, "query_params", ())]
    if query:
        parts.append("query: " + ", ".join(f"`{q}`" for q in query))
    model = getattr(route, "response_model", None)
    name = getattr(model, "__name__", "")
    if name and name not in ("dict", "list"):
        parts.append(f"returns `{name}`")
    code = getattr(route, "status_code", None)
    if code and code != 200:
        parts.append(f"status {code}")
    return "; ".join(parts).replace("``", "`").replace("|", "\\|")


def http_markdown() -> str:
    from meterline.server.app import create_app

    app = create_app()
    schema = app.openapi()["paths"]  # what the OpenAPI schema lists: the JSON API; the rest are dashboard pages
    rows: list[tuple[str, str, str, str, bool]] = []
    for path, route in _routes(list(app.routes)):
        if path.startswith(("/docs", "/redoc", "/openapi.json")):
            continue
        for method in sorted(route.methods - {"HEAD"}):
            in_schema = method.lower() in schema.get(path, {})
            rows.append((path, method, _auth(route), _returns(route), in_schema))
    api = [r for r in rows if r[4]]
    pages = [r for r in rows if not r[4]]
    out = [
        "# Collector HTTP API reference",
        "",
        "Every route of the collector (`meterline serve`), generated from the FastAPI application",
        "(`meterline.server.app.create_app`; the routers are the modules listed in `meterline.server.app.ROUTERS`).",
        "Do not edit by hand; regenerate with:",
        "",
        "```bash",
        "python scripts/gen_reference.py http > docs/reference/http-api.md",
        "```",
        "",
        "A running collector serves the full OpenAPI schema (request and response bodies, query parameters) at",
        "`/openapi.json`, with interactive pages at `/docs` and `/redoc`.",
        "",
        "**Auth.** Send an API key as `Authorization: Bearer <key>` or `x-api-key: <key>`. Keys have one scope:",
        "`ingest` (send events), `read` (query), `admin` (everything, including keys, budgets and billing changes);",
        "an admin key is accepted wherever another scope is. `meterline keys create --scope …` makes one.",
        "With `meterline serve --no-auth` (loopback only) no key is needed. Compatible-ingest routes take the",
        "header their client sends (Revenium `x-api-key`, Lago/OpenMeter/OTLP `Authorization: Bearer`).",
        "",
        "## JSON API",
        "",
        "| method | path | auth | what it does / returns |",
        "|---|---|---|---|",
    ]
    out += [f"| {m} | `{p}` | {a} | {r} |" for p, m, a, r, _ in api]
    out += [
        "",
        "## Dashboard (HTML pages, not in the OpenAPI schema)",
        "",
        "Sign in at `/login` with a read or admin key; the session is a signed HttpOnly cookie and every POST",
        "needs the page's CSRF token. See [the dashboard guide](../guides/dashboard.md).",
        "",
        "| method | path | auth | what it does / returns |",
        "|---|---|---|---|",
    ]
    out += [f"| {m} | `{p}` | {a} | {r} |" for p, m, a, r, _ in pages]
    out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what not in ("cli", "http"):
        sys.exit("usage: python scripts/gen_reference.py cli|http")
    sys.stdout.write(cli_markdown() if what == "cli" else http_markdown())
