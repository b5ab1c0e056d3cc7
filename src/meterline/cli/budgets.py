"""``meterline budgets create|list|delete|status``: spend limits per organization, team, API key,
subscriber or product, with webhook alerts; hard budgets are enforced by ``meterline gateway``.

Works on the database (``--database``, the same default as every command) or on a running collector
(``--database http://…`` with an admin key: ``--api-key`` / ``METERLINE_API_KEY``).
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


def register(sub: Any) -> None:
    from meterline.budgets.store import PERIODS, SCOPES

    p = sub.add_parser("budgets", help="create, list, delete budgets and show their spend", description=__doc__)
    bs = p.add_subparsers(dest="budgets_command", metavar="ACTION", required=True)
    c = bs.add_parser("create", help="create a budget")
    c.add_argument("--name", required=True)
    c.add_argument("--scope", choices=list(SCOPES), required=True)
    c.add_argument(
        "--value", dest="scope_value", required=True, help="the team/organization/… id (api_key: hash or alias)"
    )
    c.add_argument("--period", choices=PERIODS, default="monthly")
    c.add_argument("--limit", dest="limit_usd", required=True, help='USD, a decimal such as "250.00"')
    c.add_argument("--thresholds", default="50,80,100", help="alert percentages (default 50,80,100)")
    c.add_argument("--soft", action="store_true", help="alert only; the gateway does not reject calls")
    c.add_argument("--webhook", dest="webhook_url", help="URL that receives a JSON POST per threshold and period")
    lst = bs.add_parser("list", help="list budgets")
    st = bs.add_parser("status", help="spend, remaining and alerts fired in the current period")
    d = bs.add_parser("delete", help="delete a budget by name or id")
    d.add_argument("budget", help="name or id")
    for sp in (c, lst, st, d):
        add_destination_argument(sp)
        sp.add_argument("--api-key", help="admin key, for a collector URL (default $METERLINE_API_KEY)")
        sp.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=run)


class _Remote:
    """The same operations through a collector's HTTP API."""

    def __init__(self, dest: str, api_key: str | None) -> None:
        from meterline.store.remote import CollectorClient

        self.client = CollectorClient(dest, api_key)

    def create(self, data: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = self.client._request("POST", "/v1/budgets", body=data)
        return out

    def all(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self.client._request("GET", "/v1/budgets")
        return out

    def status(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self.client._request("GET", "/v1/budgets/status")
        return out

    def delete(self, budget: str) -> bool:
        try:
            self.client._request("DELETE", f"/v1/budgets/{budget}")
        except LookupError:
            return False
        return True

    def close(self) -> None:
        self.client.close()


class _Local:
    def __init__(self, dest: str, *, create: bool = True) -> None:
        from meterline.store.backend import open_stores

        self.store, reader = open_stores(dest, pool_size=1, create=create)
        if reader is not self.store:
            reader.close()

    def create(self, data: dict[str, Any]) -> dict[str, Any]:
        from meterline.budgets import store as budget_store

        return budget_store.create_budget(self.store, data).to_dict()

    def all(self) -> list[dict[str, Any]]:
        from meterline.budgets import store as budget_store

        return [b.to_dict() for b in budget_store.list_budgets(self.store)]

    def status(self) -> list[dict[str, Any]]:
        from meterline.budgets import store as budget_store

        return [budget_store.status(self.store, b) for b in budget_store.list_budgets(self.store)]

    def delete(self, budget: str) -> bool:
        from meterline.budgets import store as budget_store

        return budget_store.delete_budget(self.store, budget)

    def close(self) -> None:
        self.store.close()


def run(args: argparse.Namespace) -> int:
    try:
        dest = resolve_destination(args.destination)
        ops: _Remote | _Local = (
            _Remote(dest, args.api_key or os.environ.get("METERLINE_API_KEY"))
            if destination_kind(dest) == "http"
            else _Local(dest, create=args.budgets_command in ("create", "delete"))
        )
    except DestinationError as exc:
        return fail(exc)
    try:
        cmd = args.budgets_command
        if cmd == "create":
            data = {k: getattr(args, k) for k in ("name", "scope", "scope_value", "period", "limit_usd", "webhook_url")}
            data["thresholds"] = [t for t in args.thresholds.replace(" ", "").split(",") if t]
            data["hard"] = not args.soft
            b = ops.create(data)
            print(json.dumps(b, indent=2) if args.json else f"created budget {b['name']} ({b['id']})")
            return 0
        if cmd == "delete":
            if not ops.delete(args.budget):
                print(f"meterline: error: no budget named or with id {args.budget!r}", file=sys.stderr)
                return 1
            print(f"deleted budget {args.budget}", file=sys.stderr)
            return 0
        rows = ops.all() if cmd == "list" else ops.status()
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        _table(rows, status=cmd == "status")
        return 0
    except (ValueError, PermissionError, DestinationError) as exc:
        return fail(exc)
    finally:
        ops.close()


def _table(rows: list[dict[str, Any]], *, status: bool) -> None:
    head = f"{'name':24} {'scope':12} {'value':20} {'period':8} {'limit_usd':>12} {'kind':4}"
    if status:
        head += f" {'spend_usd':>14} {'used':>7}  alerts"
    print(head)
    for r in rows:
        line = (
            f"{r['name']:24} {r['scope']:12} {r['scope_value'][:20]:20} {r['period']:8} {r['limit_usd']:>12} "
            f"{'hard' if r['hard'] else 'soft':4}"
        )
        if status:
            fired = ",".join(f"{t}%" for t in r["alerts_fired"]) or "-"
            line += f" {r['spend_usd']:>14} {r['percent_used']:6.1f}%  {fired}"
        print(line)
