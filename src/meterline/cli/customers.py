"""``meterline customers create|list|show|update|subscribe|settings``: the customers billed for usage.

A customer's id is the value of the customer dimension in events (``subscriber_id`` unless
``customers settings --dimension`` says otherwise); invoices are monthly in its time zone.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from meterline.cli._billing import add_common, guarded, open_billing_store, show


def register(sub: Any) -> None:
    p = sub.add_parser(
        "customers", help="create, list, update customers and their plan subscriptions", description=__doc__
    )
    cs = p.add_subparsers(dest="customers_command", metavar="ACTION", required=True)
    c = cs.add_parser("create", help="create a customer")
    u = cs.add_parser("update", help="change a customer's fields")
    for sp in (c, u):
        sp.add_argument("id", help="the customer id (value of the customer dimension)")
        sp.add_argument("--name")
        sp.add_argument("--email")
        sp.add_argument("--timezone", help="IANA zone of the invoice periods (default UTC)")
        sp.add_argument("--metadata", help="JSON object")
        sp.add_argument("--overrides", help="file with customer-specific rate rules (JSON/TOML/YAML list)")
    lst = cs.add_parser("list", help="list customers")
    s = cs.add_parser("show", help="one customer with its subscriptions")
    s.add_argument("id")
    sb = cs.add_parser("subscribe", help="subscribe a customer to a plan from a date (a plan change)")
    sb.add_argument("id")
    sb.add_argument("--plan", required=True)
    sb.add_argument("--from", dest="start", required=True, help="YYYY-MM-DD in the customer's time zone")
    st = cs.add_parser("settings", help="the customer dimension and auto-creation of customers")
    st.add_argument("--dimension", help="event field holding the customer id (subscriber_id, organization_id, …)")
    st.add_argument("--auto-create", choices=("on", "off"), help="finalize creates customers seen in events")
    for sp in (c, u, lst, s, sb, st):
        add_common(sp)
    p.set_defaults(handler=guarded(run))


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    from meterline.cli._billing import load_spec as _load

    out: dict[str, Any] = {k: getattr(args, k) for k in ("name", "email", "timezone") if getattr(args, k) is not None}
    if args.metadata is not None:
        out["metadata"] = json.loads(args.metadata)
    if args.overrides is not None:
        spec = _load(args.overrides)
        out["overrides"] = spec.get("rules", spec) if isinstance(spec, dict) else spec
    return out


def run(args: argparse.Namespace) -> int:
    from meterline.billing import service as svc
    from meterline.billing import store as billing_store
    from meterline.billing.model import BillingError, parse_customer
    from meterline.core.event import DIMENSIONS

    cmd = args.customers_command
    with open_billing_store(args) as store:
        if cmd in ("create", "update"):
            old = billing_store.get_customer(store, args.id)
            if cmd == "create" and old is not None:
                raise BillingError("id", f"a customer {args.id!r} already exists (use `customers update`)")
            if cmd == "update" and old is None:
                raise BillingError("id", f"no customer {args.id!r}")
            c = parse_customer({"id": args.id, **_fields(args)}, existing=old)
            billing_store.save_customer(store, c)
            show(c.to_dict()) if args.json else print(f"{cmd}d customer {c.id}")
        elif cmd == "list":
            rows = [c.to_dict() for c in billing_store.list_customers(store)]
            if args.json:
                show(rows)
            else:
                print(f"{'id':32} {'name':24} {'timezone':20} email")
                for r in rows:
                    print(f"{r['id'][:32]:32} {r['name'][:24]:24} {r['timezone']:20} {r['email'] or ''}")
        elif cmd == "show":
            found = billing_store.get_customer(store, args.id)
            if found is None:
                raise BillingError("id", f"no customer {args.id!r}")
            subs = billing_store.subscriptions(store, args.id).get(args.id, [])
            show(
                {**found.to_dict(), "subscriptions": [{"plan": s.plan_id, "start": s.start.isoformat()} for s in subs]}
            )
        elif cmd == "subscribe":
            sub = svc.subscribe(store, args.id, args.plan, args.start)
            print(f"customer {sub.customer_id} on plan {sub.plan_id} from {sub.start.isoformat()}")
        else:
            if args.dimension is not None:
                if args.dimension not in DIMENSIONS:
                    raise BillingError("--dimension", f"not an event dimension: {args.dimension!r}")
                billing_store.set_customer_dimension(store, args.dimension)
            if args.auto_create is not None:
                billing_store.set_setting(
                    store, "auto_create_customers", "true" if args.auto_create == "on" else "false"
                )
            show(
                {
                    "customer_dimension": billing_store.customer_dimension(store),
                    "auto_create_customers": billing_store.get_setting(store, "auto_create_customers", "false")
                    == "true",
                }
            )
    return 0
