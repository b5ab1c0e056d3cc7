"""Shared by the billing commands (customers, plans, wallets, invoices, reprice): the store, spec files,
and one error path. They work on a database (SQLite or PostgreSQL); for a collector use its /v1 API."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meterline.cli import add_destination_argument
from meterline.cli._common import fail
from meterline.core.config import DestinationError, destination_kind, resolve_destination

if TYPE_CHECKING:
    from meterline.store.base import Store


def add_common(p: argparse.ArgumentParser) -> None:
    add_destination_argument(p, database_only=True)
    p.add_argument("--json", action="store_true", help="print JSON")


@contextmanager
def open_billing_store(args: argparse.Namespace) -> Iterator[Store]:
    dest = resolve_destination(args.destination)
    if destination_kind(dest) == "http":
        raise DestinationError(f"{dest}: billing commands work on the database; use the collector's /v1 API")
    from meterline.store.backend import open_stores

    store, reader = open_stores(dest, pool_size=1)
    if reader is not store:
        reader.close()
    try:
        yield store
    finally:
        store.close()


def load_spec(path: str) -> Any:
    """A JSON, TOML or YAML file (``-`` reads JSON from stdin)."""
    if path == "-":
        return json.load(sys.stdin)
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    if p.suffix.lower() == ".toml":
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover - Python 3.10 needs the tomli backport
            import tomli as tomllib
        return tomllib.loads(text)
    if p.suffix.lower() in (".yaml", ".yml"):
        import yaml

        return yaml.safe_load(text)
    return json.loads(text)


def guarded(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Run a handler; a user error (bad field, missing customer, bad file) prints one line and exits 2."""

    def run(args: argparse.Namespace) -> int:
        from meterline.billing.model import BillingError

        try:
            return fn(args)
        except (BillingError, DestinationError, OSError, ValueError) as exc:
            return fail(exc)

    return run


def show(obj: Any) -> None:
    print(json.dumps(obj, indent=2))
