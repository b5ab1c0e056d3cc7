"""``meterline keys create|list|revoke``: API keys of the collector, managed in its database.

Run against the collector's database (``--database``; the same default as every command), this is
how the first admin key is made: whoever can write the database can create keys. Against a running
collector (``--database http://…``) it needs an admin key (``--api-key`` / ``METERLINE_API_KEY``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from meterline.cli import add_destination_argument
from meterline.cli._common import fail
from meterline.core.config import DestinationError, destination_kind, resolve_destination
from meterline.store.keys import SCOPES


def register(sub: Any) -> None:
    p = sub.add_parser("keys", help="create, list and revoke collector API keys", description=__doc__)
    ks = p.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    c = ks.add_parser("create", help="create a key (printed once)")
    c.add_argument("--scope", choices=SCOPES, required=True, help="ingest: send events; read: query; admin: all")
    c.add_argument("--name", help="a label, e.g. the app or team using it")
    c.add_argument(
        "--style",
        choices=("meterline", "revenium"),
        default="meterline",
        help="revenium: a hak_… key that revenium-python-sdk accepts (same scopes and hashing)",
    )
    lst = ks.add_parser("list", help="list keys (never their values)")
    lst.add_argument("--json", action="store_true")
    r = ks.add_parser("revoke", help="revoke a key by id or prefix")
    r.add_argument("key_id", help="the id or the prefix shown by `keys list`")
    for sp in (c, lst, r):
        add_destination_argument(sp)
        sp.add_argument("--api-key", help="admin key, for a collector URL (default $METERLINE_API_KEY)")
    p.set_defaults(handler=run)


def _open(args: argparse.Namespace) -> Any:
    dest = resolve_destination(args.destination)
    if destination_kind(dest) == "http":
        from meterline.store.remote import CollectorClient

        return CollectorClient(dest, args.api_key or os.environ.get("METERLINE_API_KEY"))
    from meterline.store.backend import open_stores

    writer, reader = open_stores(dest, pool_size=1, create=args.keys_command != "list")
    if reader is not writer:
        reader.close()
    return writer


def run(args: argparse.Namespace) -> int:
    from meterline.store import keys as key_store

    try:
        store = _open(args)
    except DestinationError as exc:
        return fail(exc)
    try:
        remote = hasattr(store, "create_key")
        if args.keys_command == "create":
            if remote:
                key, info = store.create_key(args.scope, args.name, style=args.style)
            else:
                key, rec = key_store.create_key(store, args.scope, args.name, style=args.style)
                info = rec.to_dict()
            print(key)
            print(
                f"created {info['scope']} key {info['id']} ({info['prefix']}…); it is shown only now: store it safely",
                file=sys.stderr,
            )
            return 0
        if args.keys_command == "list":
            rows = store.list_keys() if remote else [k.to_dict() for k in key_store.list_keys(store)]
            if args.json:
                print(json.dumps(rows, indent=2))
                return 0
            print(f"{'id':36}  {'prefix':10}  {'scope':6}  {'state':7}  name")
            for k in rows:
                state = "active" if k["active"] else "revoked"
                print(f"{k['id']:36}  {k['prefix']:10}  {k['scope']:6}  {state:7}  {k['name'] or ''}")
            return 0
        revoked = store.revoke_key(args.key_id) if remote else key_store.revoke_key(store, args.key_id)
        if revoked is None:
            print(f"meterline: error: no single active key with id or prefix {args.key_id!r}", file=sys.stderr)
            return 1
        print(f"revoked {args.key_id}", file=sys.stderr)
        return 0
    except (ValueError, PermissionError) as exc:
        return fail(exc)
    finally:
        store.close()
