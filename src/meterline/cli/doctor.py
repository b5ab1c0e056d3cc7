"""``meterline doctor``: where events go, whether that store answers, and what can be instrumented."""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
from typing import Any

from meterline.cli import add_destination_argument


def register(sub: Any) -> None:
    p = sub.add_parser("doctor", help="check the set-up: destination, store, integrations, spool")
    add_destination_argument(p)
    p.add_argument("--api-key", default=None, help="collector API key to check (default $METERLINE_API_KEY)")
    p.set_defaults(handler=run)


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _collector(url: str, api_key: str | None) -> str:
    """Contact the collector and check the key the SDK would send with; raises DestinationError."""
    from meterline.core.config import DestinationError
    from meterline.store.remote import CollectorClient

    client = CollectorClient(url, api_key, timeout=5.0)
    health = client.health()
    if not api_key:
        raise DestinationError(
            f"the collector at {url} answers, but no API key is set (--api-key or METERLINE_API_KEY): "
            "it will refuse events"
        )
    try:
        client.check_ingest_key()
    except DestinationError as exc:
        raise DestinationError(f"the collector refuses the API key ({exc})") from None
    version = health.get("version")
    return f"collector ok{f' (meterline {version})' if version else ''}, API key accepted for sending events"


def run(args: argparse.Namespace) -> int:
    from meterline import __version__
    from meterline.core.config import delivery_state_dir, destination_kind, resolve_destination
    from meterline.integrations import INTEGRATIONS, available, in_compatible_range, in_tested_range, installed_version
    from meterline.sdk.delivery.deadletter import DeadLetters
    from meterline.sdk.delivery.spool import Spool

    problems = 0
    dest = resolve_destination(args.destination)
    print(f"meterline {__version__}")
    print(f"destination      {dest}")
    try:
        kind = destination_kind(dest)
        if kind == "http":
            print(f"store            {_collector(dest, args.api_key or os.environ.get('METERLINE_API_KEY'))}")
        else:
            from meterline.store.open import open_store

            store = open_store(dest)
            try:
                print(f"store            ok, {store.count():,} events")
            finally:
                store.close()
    except Exception as exc:  # noqa: BLE001 - doctor reports every failure as text
        problems += 1
        print(f"store            PROBLEM: {exc}")
    try:
        local = delivery_state_dir(dest)
        spool = Spool(local / "spool")
        print(f"spool            {spool.directory} ({spool.pending_files()} files waiting)")
        letters = DeadLetters(local / "deadletter.jsonl")
        print(f"dead letters     {letters.path} ({sum(1 for _ in letters.read())} events)")
    except Exception as exc:  # noqa: BLE001 - doctor reports every failure as text
        problems += 1
        print(f"spool            PROBLEM: {exc}")
    ready = set(available())
    for name, integration in INTEGRATIONS.items():
        version = installed_version(integration)
        if name not in ready or version is None:
            state = f"library not installed ({integration.distribution})"
        elif in_tested_range(integration, version):
            state = f"ready ({integration.distribution} {version}; tested {integration.describe()})"
        elif in_compatible_range(integration, version):
            state = f"ready ({integration.distribution} {version}; tested {integration.describe()}, same major)"
        else:
            state = f"ready, UNTESTED VERSION ({integration.describe()} tested; {version} installed)"
        print(f"integration      {name:<10} {state}")
    print(f"pricing          genai-prices {_version('genai-prices')}")
    return 1 if problems else 0
