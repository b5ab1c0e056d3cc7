"""The end of ``meterline demo``: a sample invoice for one demo customer (acme), from the events just metered.

The demo customer resells at provider cost + 30 % plus 0.001 USD per request and has 0.05 USD of prepaid
credit; the invoice shown is the live draft for the current month (nothing is finalized).
"""

from __future__ import annotations

from datetime import date, datetime, timezone

from meterline.core.config import destination_kind

CUSTOMER = "acme"
PLAN = {"id": "demo-resell", "name": "Demo resale", "effective_from": "2020-01-01",
        "rules": [{"model": "*", "markup_percent": "30", "fixed_per_request": "0.001"}]}  # fmt: skip


def sample_invoice(destination: str) -> None:
    """Print a sample invoice for the demo customer (never fails the demo: problems are one line)."""
    if destination_kind(destination) not in ("sqlite", "postgresql"):
        return
    try:
        from meterline.billing import service as svc
        from meterline.billing import store as billing_store
        from meterline.billing.model import parse_customer
        from meterline.cli.invoices import text
        from meterline.store.backend import open_stores

        store, reader = open_stores(destination, pool_size=1)
        if reader is not store:
            reader.close()
        try:
            if billing_store.get_customer(store, CUSTOMER) is None:
                billing_store.save_customer(store, parse_customer({"id": CUSTOMER, "name": "Acme Corp",
                                                       "email": "billing@acme.example"}))  # fmt: skip
            if PLAN["id"] not in billing_store.plan_versions(store):
                billing_store.add_plan_version(store, PLAN)
                svc.subscribe(store, CUSTOMER, str(PLAN["id"]), date(2020, 1, 1))
            if not billing_store.grants(store, CUSTOMER):
                svc.grant(store, CUSTOMER, "0.05", note="demo prepaid credit")
            now = datetime.now(timezone.utc)
            inv = svc.preview(store, CUSTOMER, f"{now.year:04d}-{now.month:02d}")
        finally:
            store.close()
    except Exception as exc:  # noqa: BLE001 - the demo's metering already succeeded; say why and go on
        print(f"(sample invoice skipped: {exc})\n")
        return
    print("Sample invoice (live draft) for demo customer acme, at provider cost + 30 % + 0.001 USD/request:")
    print(text(inv))
    print("  (`meterline invoices preview --customer acme --period "
          f"{inv['period']} --format html > invoice.html`; see docs/guides/billing.md)\n")  # fmt: skip
