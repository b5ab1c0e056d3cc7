"""The ``meterline`` command. Each sub-command lives in its own module with ``register(subparsers)``;
the module's handler returns the process exit code."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import re
import sys
from collections.abc import Sequence

# sub-command modules, in help order; a module not shipped in this build is skipped
COMMANDS = (
    "meterline.cli.demo",
    "meterline.cli.serve",
    "meterline.cli.report",
    "meterline.cli.export",
    "meterline.cli.keys",
    "meterline.cli.migrate",
    "meterline.cli.prune",
    "meterline.cli.budgets",
    "meterline.cli.customers",
    "meterline.cli.plans",
    "meterline.cli.wallets",
    "meterline.cli.invoices",
    "meterline.cli.reprice",
    "meterline.cli.gateway",
    "meterline.cli.doctor",
    "meterline.cli.prices",
)


def build_parser() -> argparse.ArgumentParser:
    from meterline import __version__

    parser = argparse.ArgumentParser(prog="meterline", description="Self-hosted LLM usage metering and billing.")
    parser.add_argument("--version", action="version", version=f"meterline {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        if importlib.util.find_spec(name) is None:
            continue
        importlib.import_module(name).register(sub)
    for command in sub.choices.values():  # descriptions are the modules' docstrings: shown as plain text
        command.description = plain_text(command.description)
    return parser


_RST_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")
_RST_LITERAL = re.compile(r"``([^`]+)``")


def plain_text(doc: str | None) -> str | None:
    """A docstring as a terminal shows it: ``literal`` and :role:`target` markup become their text."""
    if doc is None:
        return None
    return _RST_LITERAL.sub(r"\1", _RST_ROLE.sub(r"\1", doc))


def add_destination_argument(parser: argparse.ArgumentParser, *, database_only: bool = False) -> None:
    """``--database``/``--destination``: the store every command reads or writes (see meterline.core.config).
    ``database_only``: for commands that need a database (a collector URL is refused), the help says so."""
    accepts = (
        "sqlite:///file.db, postgresql://…, clickhouse://… or chdb://path (a database; not a collector URL: "
        "use the collector's /v1 API)"
        if database_only
        else "sqlite:///file.db, postgresql://… or http(s)://collector"
    )
    parser.add_argument(
        "--database",
        "--destination",
        dest="destination",
        default=None,
        help=f"{accepts} (default: $METERLINE_DESTINATION, else meterline.db in the user data dir)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        code = handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `meterline export | head`
        return 0
    return int(code or 0)


def entrypoint() -> None:
    sys.exit(main())
