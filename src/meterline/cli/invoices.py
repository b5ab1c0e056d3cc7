"""``meterline invoices preview|finalize|list|show|credit-note``: monthly invoices per customer.

``preview`` is the live draft; ``finalize`` numbers and stores every customer's invoice for a period
(immutable: later events for it go on the next invoice as an adjustment). ``--format json|csv|html``.
"""

from __future__ import annotations

import argparse
from typing import Any

from meterline.cli._billing import add_common, guarded, open_billing_store, show


def register(sub: Any) -> None:
    p = sub.add_parser("invoices", help="preview, finalize, list and print invoices; credit notes", description=__doc__)
    s = p.add_subparsers(dest="invoices_command", metavar="ACTION", required=True)
    pv = s.add_parser("preview", help="the live draft invoice of a customer for a period")
    pv.add_argument("--customer", required=True)
    pv.add_argument("--period", required=True, help="YYYY-MM")
    f = s.add_parser("finalize", help="finalize a period for every customer (or the ones named)")
    f.add_argument("--period", required=True, help="YYYY-MM")
    f.add_argument("--customer", action="append", help="only this customer (repeatable)")
    f.add_argument("--force", action="store_true", help="finalize a period that has not ended yet")
    f.add_argument(
        "--allow-unpriced", action="store_true", help="finalize even if calls without a provider price bill as 0"
    )
    lst = s.add_parser("list", help="finalized invoices")
    lst.add_argument("--customer")
    lst.add_argument("--period")
    sh = s.add_parser("show", help="a finalized invoice")
    sh.add_argument("number")
    cn = s.add_parser("credit-note", help="credit part of a finalized invoice to the customer's wallet")
    cn.add_argument("number")
    cn.add_argument("--amount", required=True)
    cn.add_argument("--reason", required=True)
    for sp in (pv, sh):
        sp.add_argument("--format", choices=("json", "csv", "html", "text"), default="text")
    for sp in (pv, f, lst, sh, cn):
        add_common(sp)
    p.set_defaults(handler=guarded(run))


def text(inv: dict[str, Any]) -> str:
    """A short plain-text invoice for the terminal."""
    out = [
        f"Invoice {inv['number'] or '(draft)'} - {inv['customer_name'] or inv['customer']} - {inv['period']} "
        f"({inv['timezone']})"
    ]
    for ln in inv["lines"]:
        out.append(f"  {ln['description'][:72]:72} {ln['quantity']:>14} x {ln['unit_price']:>10} = {ln['amount']:>14}")
    for key in ("provider_cost_usd", "margin_usd", "subtotal_usd", "credits_usd", "total_usd"):
        out.append(f"  {key:>104} {inv[key]:>14}")
    if inv.get("unpriced_billed_events"):
        from meterline.billing.render import unpriced_note

        out.append("  " + unpriced_note(inv))
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    from meterline.billing import invoice_store, render
    from meterline.billing import service as svc
    from meterline.billing.model import BillingError

    cmd = args.invoices_command
    with open_billing_store(args) as store:
        if cmd in ("preview", "show"):
            inv = (
                svc.preview(store, args.customer, args.period)
                if cmd == "preview"
                else invoice_store.get_invoice(store, args.number)
            )
            if inv is None:
                raise BillingError("number", f"no finalized invoice {args.number!r}")
            fmt = "json" if args.json else args.format
            print(text(inv) if fmt == "text" else render.render(inv, fmt), end="" if fmt != "text" else "\n")
        elif cmd == "finalize":
            invs = svc.finalize(
                store, args.period, customers=args.customer, force=args.force, allow_unpriced=args.allow_unpriced
            )
            rows = [{"number": i.number, "customer": i.customer.id, "total_usd": str(i.total)} for i in invs]
            if args.json:
                show(rows)
            else:
                for r in rows:
                    print(f"{r['number']}  {r['customer']:32} {r['total_usd']:>12} USD")
                for i in invs:
                    if i.unpriced_billed:
                        print(f"{i.number}: {render.unpriced_note(i.to_dict())}")
                print(f"finalized {len(rows)} invoice(s) for {args.period}")
        elif cmd == "list":
            rows = invoice_store.list_invoices(store, customer=args.customer, period=args.period)
            if args.json:
                show(rows)
            else:
                for r in rows:
                    print(f"{r['number']}  {r['customer']:32} {r['period']}  {r['total_usd']:>12} USD")
        else:
            cnote = svc.credit_note(store, args.number, args.amount, args.reason)
            show(cnote) if args.json else print(
                f"credit note {cnote['number']}: {cnote['amount_usd']} USD to the wallet of {cnote['customer']}"
            )
    return 0
