"""``meterline prices update|history`` and the corrections report of ``meterline prices check``.

``prices update [--from URL|FILE]`` fetches genai-prices' newer data file (default: genai-prices' own update URL,
or ``METERLINE_PRICES_URL``), validates it, keeps it for every later process on this machine
(``METERLINE_PRICES_DIR``) and records it in the store's price history; a file that cannot be used is refused
and the prices in use stay. ``--reprice-open`` then prices the events of periods not yet finalized again and
prints what changed per customer and model. ``prices history`` lists the price data the installation has used.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from typing import Any

from meterline.cli._common import fail


def register_actions(actions: Any) -> None:
    from meterline.cli._billing import add_common

    u = actions.add_parser(
        "update",
        help="fetch newer price data (validated; kept for every later process), optionally re-price open periods",
        description=__doc__,
    )
    u.add_argument(
        "--from",
        dest="source",
        metavar="URL|FILE",
        help="where the data file is (genai-prices' data.json format); default $METERLINE_PRICES_URL, else "
        "genai-prices' own update URL",
    )
    u.add_argument("--reprice-open", action="store_true", help="then re-price the events of periods not yet finalized")
    u.add_argument("--dry-run", action="store_true", help="with --reprice-open: print what would change, write nothing")
    u.add_argument("--prices", help="price table used when re-pricing (TOML/YAML/JSON; default $METERLINE_PRICES)")
    add_common(u)
    u.set_defaults(handler=run_update)
    h = actions.add_parser("history", help="the price data this installation has used, and the re-pricings")
    add_common(h)
    h.set_defaults(handler=run_history)


def _record(args: argparse.Namespace, info: Any, now: datetime) -> str | None:
    """Record the update in the store's price history; a store that cannot be reached is a warning only."""
    from meterline.cli._billing import open_billing_store
    from meterline.core.config import DestinationError
    from meterline.store import price_history

    try:
        with open_billing_store(args) as store:
            price_history.record(store, "update", info.source, info.to_dict(), now)
        return None
    except (DestinationError, OSError, ValueError, RuntimeError) as exc:
        return f"not recorded in the store's price history: {exc}"


def run_update(args: argparse.Namespace) -> int:
    from meterline.pricing import Pricer, PriceTableError, load_price_table
    from meterline.pricing import data as price_data

    now = datetime.now(timezone.utc)
    source = args.source or price_data.default_url()
    before = price_data.info_of(price_data._current_snapshot())
    try:
        info = price_data.update(source, now=now)
    except price_data.PriceDataError as exc:
        kept = before.source if before else f"genai-prices@{price_data.package_version()} (packaged)"
        return fail(price_data.PriceDataError(f"{exc}\nnothing changed: prices stay {kept}"))
    warning = _record(args, info, now)
    result: dict[str, Any] = {"installed": info.to_dict(), "pricing_source": info.source}
    if warning:
        result["warning"] = warning
    if args.reprice_open:
        from meterline.billing.reprice import reprice_open
        from meterline.cli._billing import open_billing_store

        try:
            table = args.prices or __import__("os").environ.get("METERLINE_PRICES")
            pricer = Pricer(load_price_table(table)) if table else Pricer()
            with open_billing_store(args) as store:
                since, changes = reprice_open(store, pricer=pricer, dry_run=args.dry_run, now=now)
        except (PriceTableError, ValueError, OSError) as exc:
            return fail(exc)
        result["reprice"] = {
            "dry_run": args.dry_run,
            "open_since": since.isoformat() if since else None,
            "changes": [c.to_dict() for c in changes if c.changed],
        }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"installed price data {info.version} from {info.origin}: {info.providers} providers, {info.models} models\n"
        f"events priced from now on say pricing_source={info.source}"
    )
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    if args.reprice_open:
        _print_reprice(result["reprice"])
    return 0


def _print_reprice(r: dict[str, Any]) -> None:
    since = r["open_since"]
    print(f"re-priced events {'after ' + since if since else '(no period finalized yet: all events)'}:")
    if not r["changes"]:
        print("  no cost changed")
    else:
        print(f"  {'customer':24} {'provider/model':40} {'changed':>8} {'cost_usd before -> after':>36}")
        for c in r["changes"]:
            model = f"{c['provider']}/{c['model']}"[:40]
            print(
                f"  {(c.get('customer') or '-')[:24]:24} {model:40} {c['changed']:>8} "
                f"{c['old_cost_usd'] + ' -> ' + c['new_cost_usd']:>36}"
            )
    print(
        "  nothing written (dry run)"
        if r["dry_run"]
        else "  written and recorded in the price history; finalized invoices untouched"
    )


def run_history(args: argparse.Namespace) -> int:
    from meterline.cli._billing import open_billing_store
    from meterline.core.config import DestinationError
    from meterline.store import price_history

    try:
        with open_billing_store(args) as store:
            used = price_history.sources_used(store)
            recorded = price_history.entries(store)
    except (DestinationError, OSError, ValueError) as exc:
        return fail(exc)
    if args.json:
        print(json.dumps({"used_by_events": used, "recorded": recorded}, indent=2))
        return 0
    print("price data that priced stored events (pricing_source):")
    if not used:
        print("  no events")
    for e in used:
        print(f"  {e['source']:56} {e['events']:>9} events  {e['first_call']} .. {e['last_call']}")
        for cid, n in sorted(e.get("corrections", {}).items()):
            print(f"  {'':4}with correction {cid}: {n} events")
    print("recorded updates and re-pricings:")
    if not recorded:
        print("  none")
    for r in recorded:
        d = r["detail"]
        if r["kind"] == "update":
            what = f"from {d.get('origin')} ({d.get('providers')} providers, {d.get('models')} models)"
        else:
            what = f"{d.get('changed_events')} events re-priced after {d.get('open_since') or 'the start'}"
        print(f"  {r['at']}  {r['kind']:8} {r['source']}  {what}")
    return 0


def run_corrections(args: argparse.Namespace, when: datetime | None) -> int:
    """``prices check`` without a model: the shipped corrections, their sources, and whether the reference has
    caught up with each (then it is flagged for removal)."""
    from meterline.pricing import Pricer
    from meterline.pricing import corrections as corr

    pricer = Pricer()

    def reference(model: str, at: datetime) -> Any:
        provider = next(c.provider for c in corr.CORRECTIONS if model in c.models or c.target == model)
        return pricer.reference(provider, model, at)[0]

    rows = []
    for c in corr.CORRECTIONS:
        rows.append({**c.to_dict(), "status": corr.status(c, reference, when)})
    if args.format == "json":
        json.dump({"reference": pricer.genai_source, "corrections": rows}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(f"corrections shipped over {pricer.genai_source} (applied before it, after your own price table):")
    for r in rows:
        flag = {"caught up": "REMOVE: the reference now prices it the same", "flag": "flagged"}.get(r["status"], "")
        span = f"{r['valid_from'] or 'always'} .. {r['valid_until'] or 'open'}"
        target = f" -> {r['target']}" if r["target"] else ""
        print(f"  {r['id']}  [{r['kind']}] {r['provider']}/{','.join(r['models'])}{target}  {span}  {flag}")
        print(f"      {r['note']}")
        print(f"      source {r['source_url']} (checked {r['checked']})")
    return 0
