"""``meterline report``: spend, tokens, requests and errors grouped by any dimensions and time buckets."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TextIO

from meterline.cli import add_destination_argument
from meterline.cli._common import (
    USER_ERRORS,
    add_range_arguments,
    fail,
    parse_filters,
    plain,
    range_from_args,
)
from meterline.core.event import format_cost
from meterline.store.query import BUCKETS, UsageQuery

if TYPE_CHECKING:
    from meterline.store.base import UsageReader

COLUMNS = (
    "requests",
    "errors",
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "total_tokens",
    "total_cost",
)
_HEAD = {
    "input_tokens": "input",
    "cache_read_tokens": "cache_read",
    "cache_write_tokens": "cache_write",
    "output_tokens": "output",
    "total_tokens": "tokens",
    "total_cost": "cost_usd",
}


def register(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="spend and usage grouped by any dimensions",
        description="Spend, tokens, requests and errors grouped by dimensions and time buckets.",
    )
    add_destination_argument(p)
    p.add_argument("--api-key", default=None, help="for a collector URL (default $METERLINE_API_KEY)")
    p.add_argument(
        "--group-by",
        "-g",
        default="provider,model",
        help="comma-separated dimensions, e.g. subscriber_id,model (default provider,model)",
    )
    p.add_argument("--bucket", choices=BUCKETS, help="also group by time bucket")
    p.add_argument("--tz", default="UTC", help="time zone for buckets (default UTC)")
    add_range_arguments(p)
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from meterline.store.open import open_store

    try:
        group_by = [g.strip() for g in args.group_by.split(",") if g.strip()]
        start, end = range_from_args(args)
        q = UsageQuery(
            group_by=group_by, bucket=args.bucket, start=start, end=end, filters=parse_filters(args.filter), tz=args.tz
        )
        q.validate()
        store = open_store(args.destination, api_key=args.api_key)
        try:
            rows = store.usage(q)
            notes = pricing_notes(store, q) if args.format == "table" else None
        finally:
            store.close()
    except USER_ERRORS as exc:
        return fail(exc)
    if not args.bucket:
        rows.sort(key=lambda r: (r["total_cost"], r["requests"]), reverse=True)
    keys = (["bucket"] if args.bucket else []) + group_by
    write(rows, keys, args.format, sys.stdout, notes, filtered=bool(q.filters))
    return 0


def pricing_notes(store: UsageReader, q: UsageQuery) -> dict[str, dict[str, int]]:
    """Requests priced with another provider's price (``;fallback:<provider>`` in pricing_source) and requests
    whose cost is partial (``;partial:<units>``), by what was used / what is missing."""
    by_source = UsageQuery(group_by=["pricing_source"], start=q.start, end=q.end, filters=q.filters, tz=q.tz)
    notes: dict[str, dict[str, int]] = {"fallback": {}, "partial": {}, "data": {}, "correction": {}}
    for r in store.usage(by_source):
        source = str(r.get("pricing_source") or "unpriced")
        base = source.split(";", 1)[0]
        notes["data"][base] = notes["data"].get(base, 0) + int(r["requests"])
        for part in source.split(";")[1:]:
            kind, _, what = part.partition(":")
            kind = "correction" if kind == "retired" else kind
            if kind in notes:
                notes[kind][what] = notes[kind].get(what, 0) + int(r["requests"])
    return notes


def totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {c: 0 for c in COLUMNS}
    out["total_cost"] = Decimal(0)
    out["unpriced"] = 0
    for r in rows:
        for c in COLUMNS:
            out[c] += r[c]
        out["unpriced"] += r.get("unpriced", 0)
    return out


def write(
    rows: list[dict[str, Any]],
    keys: list[str],
    fmt: str,
    out: TextIO,
    notes: dict[str, dict[str, int]] | None = None,
    *,
    filtered: bool = False,
) -> None:
    if fmt == "json":
        json.dump([{k: plain(v) for k, v in r.items()} for r in rows], out, indent=2)
        out.write("\n")
        return
    if fmt == "csv":
        w = csv.writer(out)
        names = [*keys, *[k for k in rows[0] if k not in keys]] if rows else [*keys, *COLUMNS]
        w.writerow(names)
        for r in rows:
            w.writerow([plain(r.get(k)) for k in names])
        return
    table(rows, keys, out, notes, filtered=filtered)


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key == "bucket":
        return str(value.isoformat(timespec="minutes"))
    if key == "total_cost":
        cost = Decimal(value)
        if 0 < abs(cost) < _MICRO:  # a tiny cost keeps its significant digits instead of printing 0.000000
            return format_cost(cost)
        return f"{cost:,.6f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


_MICRO = Decimal("0.000001")


def table(
    rows: list[dict[str, Any]],
    keys: list[str],
    out: TextIO,
    notes: dict[str, dict[str, int]] | None = None,
    *,
    filtered: bool = False,
) -> None:
    heads = [*keys, *[_HEAD.get(c, c) for c in COLUMNS]]
    body = [[_cell(k, r.get(k)) for k in [*keys, *COLUMNS]] for r in rows]
    tot = totals(rows)
    foot = ["TOTAL", *[""] * (len(keys) - 1), *[_cell(c, tot[c]) for c in COLUMNS]] if keys else []
    widths = [max(len(h), *(len(line[i]) for line in [*body, foot] if line)) for i, h in enumerate(heads)]
    numeric = [False] * len(keys) + [True] * len(COLUMNS)

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if n else c.ljust(w) for c, w, n in zip(cells, widths, numeric, strict=True))

    out.write(line(heads) + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for cells in body:
        out.write(line(cells) + "\n")
    if foot:
        out.write("  ".join("-" * w for w in widths) + "\n")
        out.write(line(foot) + "\n")
    if tot["unpriced"]:
        out.write(
            f"\n{tot['unpriced']:,} request(s) are unpriced (unknown model): their cost is not in the total; "
            "add a price table (METERLINE_PRICES) to price them.\n"
        )
    fallback, partial = (notes or {}).get("fallback", {}), (notes or {}).get("partial", {})
    if fallback:
        used = ", ".join(f"{p}: {n:,}" for p, n in sorted(fallback.items()))
        out.write(
            f"\n{sum(fallback.values()):,} request(s) are priced with another provider's price ({used}): that "
            "provider does not list the model; see pricing_source (';fallback:') and `meterline prices check`.\n"
        )
    if partial:
        missing = ", ".join(f"{u}: {n:,}" for u, n in sorted(partial.items()))
        out.write(
            f"\n{sum(partial.values()):,} request(s) have a partial cost ({missing}): a billed unit meterline "
            "could not count is missing from their cost, which is a lower bound (pricing_source ';partial:').\n"
        )
    data, corrected = (notes or {}).get("data", {}), (notes or {}).get("correction", {})
    if data:
        used = "; ".join(f"{src}: {n:,}" for src, n in sorted(data.items()))
        out.write(f"\nprice data (pricing_source) by requests: {used}\n")
    if corrected:
        used = ", ".join(f"{c}: {n:,}" for c, n in sorted(corrected.items()))
        out.write(f"corrections over the reference applied ({used}): see `meterline prices check`\n")
    if not rows:
        out.write("(no events match the filter)\n" if filtered else "(no events in range)\n")


def format_total(rows: list[dict[str, Any]]) -> str:
    return format_cost(totals(rows)["total_cost"])
