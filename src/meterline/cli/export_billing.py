"""``meterline export --format lago|openmeter|stripe|focus``: events for the billing systems people run.

With ``--url`` the events are sent (``--follow`` keeps forwarding new ones); the export ledger in the
database remembers what each target has been sent, so a re-run or a restart sends only what is new.
Without ``--url`` (lago, openmeter, stripe) the requests' items are printed, one JSON per line.
``focus`` writes a FOCUS 1.2 CSV.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from meterline.store.base import EventReader, Store

FORMATS = ("lago", "openmeter", "stripe", "focus")
_KEY_ENV = {"lago": "LAGO_API_KEY", "openmeter": "OPENMETER_API_KEY", "stripe": "STRIPE_API_KEY"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("billing exports (--format lago|openmeter|stripe|focus)")
    g.add_argument("--url", help="send to this Lago/OpenMeter/Stripe API base URL (else print the items)")
    g.add_argument("--api-key", help="the target's key (default $LAGO_API_KEY / $OPENMETER_API_KEY / $STRIPE_API_KEY)")
    g.add_argument(
        "--charge-by",
        default="subscriber_id",
        help="event dimension naming the customer/subscription: subscriber_id (default), organization_id, "
        "subscription_id, team_id, user_id, end_user_id, attributes.<name>…",
    )
    g.add_argument("--map", dest="mapping", help="JSON or CSV file: charge-by value -> target id (stripe: cus_…)")
    g.add_argument("--code", help="lago: billable metric code (default llm_usage)")
    g.add_argument("--event-type", help="openmeter: CloudEvents type (default llm_tokens)")
    g.add_argument("--event-name", help="stripe: meter event name (default llm_tokens)")
    g.add_argument("--value", help="stripe: total_tokens (default), input_tokens, output_tokens, … or cost_micros")
    g.add_argument("--follow", action="store_true", help="keep forwarding new events (Ctrl-C stops)")
    g.add_argument("--poll-seconds", type=float, default=2.0, help="--follow: pause between passes")
    g.add_argument("--cursor", help="name of this export in the ledger (default: format, URL and charge-by)")
    g.add_argument(
        "--retry-skipped",
        action="store_true",
        help="send again the events an earlier run skipped (e.g. after adding customers to --map)",
    )
    g.add_argument("--billing-account", default="meterline", help="focus: BillingAccountId/Name")
    g.add_argument("--invoice-issuer", help="focus: InvoiceIssuerName (default: the provider)")


def run(args: argparse.Namespace) -> int:
    from meterline.cli._common import USER_ERRORS, fail, parse_filters, range_from_args
    from meterline.interop.export import ChargeBy, Exporter, ExportError, load_mapping, make_target
    from meterline.store.open import open_store
    from meterline.store.remote import CollectorClient

    try:
        start, end = range_from_args(args)
        filters = parse_filters(args.filter)
        charge = ChargeBy(args.charge_by, load_mapping(args.mapping) if args.mapping else None)
        target = None
        if args.format != "focus":
            key = args.api_key or os.environ.get(_KEY_ENV[args.format])
            options = {"code": args.code, "event_type": args.event_type, "event_name": args.event_name}
            target = make_target(args.format, args.url, key, charge, **options, value=args.value)
        store = open_store(args.destination)
    except (*USER_ERRORS, ExportError) as exc:  # type: ignore[misc]
        return fail(exc)
    if args.url and isinstance(store, CollectorClient):  # hasattr(iter_events) let it through to an AttributeError
        store.close()
        return fail(
            ValueError(
                "--url exports keep their ledger in the database: --database sqlite:/// or "
                "postgresql://, not a collector URL"
            )
        )
    try:
        if args.format == "focus":
            return _focus(args, store, start, end, filters)
        assert target is not None
        if not args.url:
            return _print_items(args, store, target, start, end, filters)
        if filters:
            return fail(ValueError("--filter is not supported with --url (the ledger covers every event)"))
        database = cast("Store", store)  # a database, not a collector client (refused above)
        exporter = Exporter(database, target, start=start, end=end, cursor=args.cursor)
        if args.retry_skipped:
            from meterline.interop.export import ledger as export_ledger

            n = export_ledger.forget(database, exporter.cursor, "skipped")
            print(f"{args.format} export: {n} previously skipped events are pending again", file=sys.stderr)
        if args.follow:
            logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
            signal.signal(signal.SIGTERM, lambda *_: exporter.stop())
            try:
                exporter.follow(args.poll_seconds, on_pass=lambda r: _progress(args.format, r))
            except KeyboardInterrupt:
                exporter.stop()
            return 0
        report = exporter.run_once()
        print(f"{args.format} export: sent {report.sent} events to {args.url}", file=sys.stderr)
        for line in report.lines(args.format):
            print(line, file=sys.stderr)
        return 0
    except (*USER_ERRORS, ExportError) as exc:  # type: ignore[misc]
        return fail(exc)
    finally:
        store.close()


def _progress(fmt: str, report: Any) -> None:
    if report.sent:
        print(f"{fmt} export: sent {report.sent} events", file=sys.stderr, flush=True)


def _output(args: argparse.Namespace) -> Any:
    return open(args.output, "w", newline="", encoding="utf-8") if args.output else sys.stdout


def _focus(args: argparse.Namespace, store: EventReader, start: Any, end: Any, filters: Any) -> int:
    from meterline.interop.export.focus import write_csv

    out = _output(args)
    try:
        n, unpriced = write_csv(
            store.iter_events(filters=filters, start=start, end=end),
            out,
            billing_account=args.billing_account,
            invoice_issuer=args.invoice_issuer,
        )
    finally:
        if out is not sys.stdout:
            out.close()
    print(f"focus export: {n} rows", file=sys.stderr)
    if unpriced:
        print(f"focus export: {unpriced} unpriced events have cost 0 (x_PricingSource=unpriced)", file=sys.stderr)
    return 0


def _print_items(args: argparse.Namespace, store: EventReader, target: Any, start: Any, end: Any, filters: Any) -> int:
    from meterline.interop.export import Report

    report = Report()
    out = _output(args)
    try:
        for event in store.iter_events(filters=filters, start=start, end=end):
            item = target.encode(event)
            if isinstance(item, str):
                report.skipped[item] += 1
            else:
                out.write(json.dumps(item, separators=(",", ":")) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    for line in report.lines(args.format):
        print(line, file=sys.stderr)
    return 0
