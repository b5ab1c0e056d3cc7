"""``meterline reprice --since … [--model …] [--dry-run]``: compute stored events' provider cost again with
the current price tables (``--prices`` file or ``METERLINE_PRICES``, then genai-prices), e.g. after adding a
price for a model that was ``unpriced``. Rebuilds the rollups; finalized invoices are not changed (the
difference appears on the next invoice as an adjustment line)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from meterline.cli._billing import add_common, guarded, open_billing_store, show


def register(sub: Any) -> None:
    p = sub.add_parser(
        "reprice", help="recompute provider costs of stored events with current prices", description=__doc__
    )
    p.add_argument("--since", required=True, help="ISO time/date, or a span back from now (7d, 24h)")
    p.add_argument("--model", help="only events of this model")
    p.add_argument("--prices", help="price table (TOML/YAML/JSON; default $METERLINE_PRICES)")
    p.add_argument("--dry-run", action="store_true", help="print what would change, write nothing")
    add_common(p)
    p.set_defaults(handler=guarded(run))


def run(args: argparse.Namespace) -> int:
    from meterline.billing.reprice import reprice
    from meterline.cli._common import parse_when
    from meterline.pricing import Pricer, load_price_table

    since = parse_when(args.since, "--since")
    table = args.prices or os.environ.get("METERLINE_PRICES")
    pricer = Pricer(load_price_table(table)) if table else Pricer()
    with open_billing_store(args) as store:
        changes = reprice(store, since, model=args.model, pricer=pricer, dry_run=args.dry_run)
    if args.json:
        show({"dry_run": args.dry_run, "models": [c.to_dict() for c in changes]})
        return 0
    print(f"{'provider/model':48} {'events':>8} {'changed':>8} {'unpriced':>13} {'cost_usd before -> after':>40}")
    for c in changes:
        d = c.to_dict()
        print(
            f"{(c.provider + '/' + c.model)[:48]:48} {c.events:>8} {c.changed:>8} "
            f"{f'{c.old_unpriced}->{c.new_unpriced}':>13} {d['old_cost_usd'] + ' -> ' + d['new_cost_usd']:>40}"
        )
    total = sum(c.changed for c in changes)
    print(
        f"{'would change' if args.dry_run else 'changed'} {total} event(s); "
        f"{'nothing written (dry run)' if args.dry_run else 'rollups rebuilt; finalized invoices untouched'}"
    )
    return 0
