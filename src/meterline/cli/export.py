"""``meterline export``: every stored event, one per line (JSONL, schema v1) or CSV."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from typing import Any

from meterline.cli import add_destination_argument, export_billing
from meterline.cli._common import USER_ERRORS, add_range_arguments, fail, parse_filters, range_from_args
from meterline.core.event import FIELD_NAMES


def register(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="export events as JSONL (schema v1) or CSV",
        description="Print stored events, one per line. JSONL is the stable way to read events back.",
    )
    add_destination_argument(p)
    p.add_argument("--format", choices=("jsonl", "csv", *export_billing.FORMATS), default="jsonl")
    p.add_argument("--output", "-o", help="write to this file instead of standard output")
    add_range_arguments(p)
    export_billing.add_arguments(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.format in export_billing.FORMATS:
        return export_billing.run(args)
    from meterline.store.open import open_store

    try:
        start, end = range_from_args(args)
        filters = parse_filters(args.filter)
        # --api-key (declared with the billing options): for jsonl/csv, the key of a collector URL
        store = open_store(args.destination, api_key=args.api_key)
    except USER_ERRORS as exc:
        return fail(exc)
    if not hasattr(store, "iter_events"):
        store.close()
        return fail(ValueError("export reads a database (sqlite:/// or postgresql://), not a collector URL"))
    out = open(args.output, "w", newline="", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    try:
        events = store.iter_events(filters=filters, start=start, end=end)
        if args.format == "jsonl":
            for e in events:
                out.write(json.dumps(e.to_wire(), separators=(",", ":")) + "\n")
        else:
            w = csv.writer(out)
            w.writerow(FIELD_NAMES)
            for e in events:
                wire = e.to_wire()
                w.writerow(
                    [
                        "" if wire[f] is None else json.dumps(wire[f]) if isinstance(wire[f], (list, dict)) else wire[f]
                        for f in FIELD_NAMES
                    ]
                )
    except USER_ERRORS as exc:
        return fail(exc)
    finally:
        store.close()
        if out is not sys.stdout:
            out.close()
    return 0
