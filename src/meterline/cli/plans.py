"""``meterline plans create|list|show``: plans (rate cards) with versions in force from a date.

A plan file (JSON, TOML or YAML)::

    {"id": "pro", "effective_from": "2026-11-01", "minimum_usd": "50",
     "rules": [{"model": "gpt-4o*", "prices": {"input": "0.30", "output": "1.20"}, "free_tokens": {"input": 1000000}},
               {"model": "*", "markup_percent": "20", "fixed_per_request": "0.001"}]}

Creating a plan whose id exists adds a new version. A plan with id ``default`` is the default rate card.
"""

from __future__ import annotations

import argparse
from typing import Any

from meterline.cli._billing import add_common, guarded, load_spec, open_billing_store, show


def register(sub: Any) -> None:
    p = sub.add_parser(
        "plans",
        help="create and list plans (rate cards, markup, tiers)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ps = p.add_subparsers(dest="plans_command", metavar="ACTION", required=True)
    c = ps.add_parser("create", help="add a plan (or a new version of one) from a file")
    c.add_argument("file", help="JSON/TOML/YAML plan ('-': JSON on stdin)")
    lst = ps.add_parser("list", help="list plans and their versions")
    s = ps.add_parser("show", help="every version of one plan")
    s.add_argument("id")
    for sp in (c, lst, s):
        add_common(sp)
    p.set_defaults(handler=guarded(run))


def run(args: argparse.Namespace) -> int:
    from meterline.billing import store as billing_store
    from meterline.billing.model import BillingError

    with open_billing_store(args) as store:
        if args.plans_command == "create":
            plan = billing_store.add_plan_version(store, load_spec(args.file))
            show(plan.to_dict()) if args.json else print(
                f"plan {plan.id} version {plan.version} in force from {plan.effective_from.isoformat()}"
            )
            return 0
        plans = billing_store.plan_versions(store)
        if args.plans_command == "show":
            if args.id not in plans:
                raise BillingError("id", f"no plan {args.id!r}")
            show([p.to_dict() for p in plans[args.id]])
            return 0
        rows = [p.to_dict() for versions in plans.values() for p in versions]
        if args.json:
            show(rows)
            return 0
        print(f"{'id':24} {'version':>7} {'from':10} {'rules':>5} {'minimum_usd':>12}")
        for r in rows:
            print(
                f"{r['id'][:24]:24} {r['version']:>7} {r['effective_from']:10} {len(r['rules']):>5} "
                f"{r['minimum_usd']:>12}"
            )
    return 0
