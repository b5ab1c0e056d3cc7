"""``meterline wallets show|grant``: prepaid credit per customer. The balance is the active grants minus
billed usage (exact); ``meterline gateway`` refuses a customer's calls (HTTP 402) once it reaches zero."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from meterline.cli._billing import add_common, guarded, open_billing_store, show


def register(sub: Any) -> None:
    p = sub.add_parser("wallets", help="prepaid credit: balances and grants (top-ups)", description=__doc__)
    ws = p.add_subparsers(dest="wallets_command", metavar="ACTION", required=True)
    s = ws.add_parser("show", help="balance and grants of a customer")
    s.add_argument("customer")
    g = ws.add_parser("grant", help="add prepaid credit (a top-up)")
    g.add_argument("customer")
    g.add_argument("--amount", required=True, help='USD, a decimal such as "100.00"')
    g.add_argument("--expires", help="ISO time the credit expires (default: never)")
    g.add_argument("--note", default="")
    for sp in (s, g):
        add_common(sp)
    p.set_defaults(handler=guarded(run))


def run(args: argparse.Namespace) -> int:
    from meterline.billing import service as svc
    from meterline.billing.model import BillingError

    with open_billing_store(args) as store:
        if args.wallets_command == "grant":
            expires = None
            if args.expires:
                try:
                    expires = datetime.fromisoformat(args.expires.replace("Z", "+00:00"))
                except ValueError:
                    raise BillingError("--expires", f"not an ISO time: {args.expires!r}") from None
                if expires.tzinfo is None:
                    raise BillingError("--expires", "needs a time zone, e.g. 2027-01-01T00:00:00Z")
            g = svc.grant(store, args.customer, args.amount, expires_at=expires, note=args.note)
            show(g.to_dict()) if args.json else print(f"granted {g.amount} USD to {g.customer_id} ({g.id})")
            return 0
        w = svc.wallet(store, args.customer)
        if args.json:
            show(w)
        else:
            print(
                f"customer {w['customer']}: balance {w['balance_usd']} USD (granted {w['granted_usd']}, "
                f"unbilled usage {w['unbilled_usage_usd']})"
            )
            for gr in w["grants"]:
                print(
                    f"  {gr['granted_at']}  {gr['amount_usd']:>12} USD  left {gr['remaining_usd']:>12}  "
                    f"expires {gr['expires_at'] or 'never'}  {gr['note']}"
                )
    return 0
