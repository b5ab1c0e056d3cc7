"""An invoice (its JSON form, ``Invoice.to_dict()``) as JSON, CSV lines or a printable HTML page."""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Mapping
from typing import Any

FORMATS = ("json", "csv", "html")
CSV_COLUMNS = (
    "number",
    "customer",
    "period",
    "kind",
    "description",
    "provider",
    "model",
    "token_class",
    "tokens",
    "quantity",
    "unit",
    "unit_price",
    "amount",
)


def render(inv: Mapping[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(inv, indent=2) + "\n"
    if fmt == "csv":
        return to_csv(inv)
    if fmt == "html":
        return to_html(inv)
    raise ValueError(f"format must be one of {', '.join(FORMATS)}; got {fmt!r}")


def to_csv(inv: Mapping[str, Any]) -> str:
    """One row per line, then the totals as rows of kind ``total``."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    head = [inv.get("number") or "DRAFT", inv["customer"], inv["period"]]
    for ln in inv["lines"]:
        w.writerow([*head, *(ln[c] if ln[c] is not None else "" for c in CSV_COLUMNS[3:])])
    for key in ("provider_cost_usd", "margin_usd", "subtotal_usd", "credits_usd", "total_usd"):
        w.writerow([*head, "total", key, "", "", "", "", "", "USD", "", inv[key]])
    if inv.get("unpriced_billed_events"):
        w.writerow(
            [*head, "unpriced", unpriced_note(inv), "", "", "", "", inv["unpriced_billed_events"], "calls", "", ""]
        )
    return out.getvalue()


def unpriced_note(inv: Mapping[str, Any]) -> str:
    """The warning every format carries when calls had no provider price (billed as 0, not silently)."""
    n = inv.get("unpriced_billed_events") or 0
    if not n:
        return ""
    models = ", ".join(inv.get("unpriced_models") or ()) or "unknown models"
    return f"WARNING: {n} call(s) without a provider price billed as 0 ({models})"


_CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:60em;color:#111}
table{border-collapse:collapse;width:100%}th,td{padding:.3em .5em;border-bottom:1px solid #ddd;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}.tot td{border:0}.grand td{font-weight:700;
border-top:2px solid #111}@media print{body{margin:0}}"""


def to_html(inv: Mapping[str, Any]) -> str:
    e = html.escape
    title = f"Invoice {inv.get('number') or '(draft)'}"
    rows = "".join(
        f"<tr><td>{e(ln['description'])}</td><td class=n>{e(ln['quantity'])}</td><td>{e(ln['unit'])}</td>"
        f"<td class=n>{e(ln['unit_price'])}</td><td class=n>{e(ln['amount'])}</td></tr>"
        for ln in inv["lines"]
    )
    totals = "".join(
        f"<tr class='tot{' grand' if k == 'total_usd' else ''}'><td colspan=4 class=n>{label}</td>"
        f"<td class=n>{e(str(inv[k]))}</td></tr>"
        for k, label in (
            ("subtotal_usd", "Subtotal (USD)"),
            ("credits_usd", "Prepaid credits applied (USD)"),
            ("total_usd", "Total due (USD, rounded to cents half-up)"),
        )
    )
    who = e(inv.get("customer_name") or inv["customer"])
    email = f"<br>{e(inv['customer_email'])}" if inv.get("customer_email") else ""
    warn = f"<p><b>{e(unpriced_note(inv))}</b></p>" if inv.get("unpriced_billed_events") else ""
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>{e(title)}</title><style>{_CSS}</style></head>"
        f"<body><h1>{e(title)}</h1>{warn}<p><b>{who}</b> ({e(inv['customer'])}){email}</p>"
        f"<p>Period {e(inv['period'])}: {e(inv['period_start'])} to {e(inv['period_end'])} ({e(inv['timezone'])})"
        f"<br>Status: {e(inv['status'])}{'; issued ' + e(inv['issued_at']) if inv.get('issued_at') else ''}</p>"
        "<table><thead><tr><th>Item</th><th class=n>Quantity</th><th>Unit</th><th class=n>Unit price (USD)</th>"
        f"<th class=n>Amount (USD)</th></tr></thead><tbody>{rows}{totals}</tbody></table>"
        f"<p><small>{inv['requests']} requests; provider cost {e(inv['provider_cost_usd'])} USD"
        f"{'; ' + str(inv['unpriced_events']) + ' calls without a provider price' if inv['unpriced_events'] else ''}"
        "</small></p></body></html>\n"
    )
