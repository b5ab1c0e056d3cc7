"""``meterline prices check [MODEL]``: the price components meterline will apply to a call, and where they come from
(the genai-prices data version, an override file, a shipped correction, a fallback to another provider's list);
without MODEL, the shipped corrections and whether the reference has caught up with them. ``prices update`` and
``prices history``: :mod:`meterline.cli.prices_update`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timezone
from typing import Any

from meterline.cli._common import fail

# (label, RatePlan attribute, the class it is charged as when it has no own price)
_TOKEN_ROWS = (
    ("input", "input_mtok", None),
    ("output", "output_mtok", None),
    ("cache read", "cache_read_mtok", "input"),
    ("cache write (5m)", "cache_write_mtok", "input"),
    ("cache write (1h)", "cache_write_1h_mtok", "cache write (5m)"),
    ("reasoning output", "output_reasoning_mtok", "output"),
    ("citation output", "output_citation_mtok", "output"),
)
_FEE_LABELS = {
    "requests_kcount": "requests",
    "web_searches_kcount": "web searches",
    "storage_searches_kcount": "file searches",
    "code_executions_kcount": "code executions",
    "social_searches_kcount": "social searches",
}


def register(sub: Any) -> None:
    p = sub.add_parser(
        "prices",
        help="show the prices meterline applies to a model",
        description="Inspect and update meterline's prices. `prices check MODEL` prints the price components that "
        "will apply to a call and where they come from; `prices check` alone lists the shipped corrections; "
        "`prices update` fetches newer price data; `prices history` lists the price data used.",
    )
    actions = p.add_subparsers(dest="prices_command", metavar="ACTION")
    c = actions.add_parser("check", help="the price components for MODEL and their source; alone: the corrections")
    c.add_argument(
        "model",
        nargs="?",
        help="the model as the call names it, e.g. gpt-4o, groq/openai/gpt-oss-120b (left out: list the shipped "
        "corrections over the reference, flagging those it has caught up with)",
    )
    c.add_argument(
        "--provider",
        help="the provider the call goes to (openai, anthropic, bedrock, vertex_ai, groq, …); "
        "default: the model's routing prefix, else the provider whose model names match",
    )
    c.add_argument("--at", help="the call's instant, ISO 8601 (default: now); prices change by date and time of day")
    c.add_argument("--tier", help="the service tier the call reports: batch, flex, priority, …")
    c.add_argument("--prices", help="a price table (TOML/YAML/JSON; default $METERLINE_PRICES)")
    c.add_argument("--format", choices=("text", "json"), default="text")
    c.set_defaults(handler=run_check)
    from meterline.cli.prices_update import register_actions

    register_actions(actions)
    p.set_defaults(handler=lambda _args: (p.print_help(), 2)[1])


def _when(raw: str | None) -> datetime:
    if not raw:
        return datetime.now(timezone.utc)
    try:
        when = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--at: not an ISO 8601 time: {raw!r} (e.g. 2026-11-29T20:00:00Z)") from None
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


def _provider(model: str, given: str | None) -> str:
    if given:
        return given.strip()
    head = model.split("/", 1)[0] if "/" in model else ""
    if head:
        return head
    try:
        from genai_prices import data_snapshot

        return str(data_snapshot.get_snapshot().find_provider(model.lower(), None, None).id)
    except LookupError:
        return "unknown"


def _rate(value: Any) -> str:
    from meterline.pricing.pricer import Tiered

    if isinstance(value, Tiered):
        tiers = ", ".join(f"{p} above {start:,} input tokens" for start, p in value.tiers)
        return f"{value.base} (whole request: {tiers})"
    return str(value)


def _plain(value: Any) -> Any:
    from meterline.pricing.pricer import Tiered

    if isinstance(value, Tiered):
        return {"base": str(value.base), "tiers": [{"above_input_tokens": s, "price": str(p)} for s, p in value.tiers]}
    return None if value is None else str(value)


def run_check(args: argparse.Namespace) -> int:
    from meterline.pricing import Pricer, PriceTableError, load_price_table

    try:
        when = _when(args.at)
        table = args.prices or os.environ.get("METERLINE_PRICES")
        pricer = Pricer(load_price_table(table)) if table else Pricer()
    except (ValueError, PriceTableError) as exc:
        return fail(exc)
    if not args.model:
        from meterline.cli.prices_update import run_corrections

        return run_corrections(args, when if args.at else None)
    provider = _provider(args.model, args.provider)
    tier = args.tier.strip().lower() if args.tier else None
    plan = pricer.resolve(provider, args.model, when, tier)
    out = sys.stdout
    if plan is None:
        if args.format == "json":
            json.dump({"model": args.model, "provider": provider, "pricing_source": "unpriced"}, out, indent=2)
            out.write("\n")
        else:
            out.write(
                f"{args.model} under provider {provider}: no price (events are recorded 'unpriced', null costs).\n"
                "Add it to a price table (METERLINE_PRICES, see docs/guides/pricing.md) or check --provider.\n"
            )
        return 1
    if args.format == "json":
        json.dump(
            {
                "model": args.model,
                "provider": provider,
                "at": when.isoformat(),
                "service_tier": tier,
                "pricing_source": plan.source,
                "price_list": {
                    "source": plan.source.split(";", 1)[0],
                    "file": plan.origin,
                    "provider": plan.provider,
                    "model": plan.model_id,
                    "fallback": plan.fallback,
                    "service_tier_applied": plan.service_tier,
                },
                "valid_from": plan.valid_from.isoformat() if plan.valid_from else None,
                "valid_until": plan.valid_until.isoformat() if plan.valid_until else None,
                "usd_per_million_tokens": {attr: _plain(getattr(plan, attr)) for _, attr, _ in _TOKEN_ROWS},
                "fees_usd_per_thousand": {key: _plain(price) for key, price in plan.fees},
                "not_counted": list(plan.uncounted),
                "correction": _correction(plan),
            },
            out,
            indent=2,
        )
        out.write("\n")
        return 0
    lines = [f"model        {args.model}", f"provider     {provider}", f"at           {when.isoformat()}"]
    if tier:
        applied = "applied" if plan.service_tier else "no separate price for this tier: standard prices"
        lines.append(f"tier         {tier} ({applied})")
    if plan.origin is not None or plan.source == "override":
        lines.append(f"price list   override: entry {plan.model_id!r} from {plan.origin or 'settings'}")
    else:
        lines.append(f"price list   {plan.source.split(';', 1)[0]}: provider {plan.provider}, model {plan.model_id}")
    if plan.fallback:
        lines.append(
            f"fallback     not listed under {provider}: priced with {plan.fallback}'s price "
            f"(events say pricing_source={plan.source})"
        )
    found = _correction(plan)
    if found:
        lines.append(f"correction   {found['id']} [{found['kind']}]: {found['note']}")
        lines.append(f"             source {found['source_url']} (checked {found['checked']})")
        if plan.request_fees:
            fees = ", ".join(f"{k} ${v}" for k, v in plan.request_fees)
            lines.append(
                f"             request fee per 1,000 by search context size: {fees} "
                "(attribute meterline.search_context_size; default the first)"
            )
    lo = plan.valid_from.isoformat() if plan.valid_from else "always"
    hi = plan.valid_until.isoformat() if plan.valid_until else "no change scheduled"
    lines.append(f"valid        from {lo} until {hi}")
    lines.append("components   USD per 1M tokens")
    for label, attr, parent in _TOKEN_ROWS:
        value = getattr(plan, attr)
        shown = _rate(value) if value is not None else f"as {parent}" if parent else "0"
        lines.append(f"  {label:<18} {shown}")
    for key, price in plan.fees:
        lines.append(f"  {_FEE_LABELS.get(key, key):<18} {_rate(price)} per 1,000")
    if plan.uncounted:
        lines.append(
            "not counted  " + ", ".join(plan.uncounted) + " (meterline cannot count these units: a call that uses "
            "them is flagged ';partial:' in pricing_source)"
        )
    lines.append(f"pricing_source {plan.source}")
    out.write("\n".join(lines) + "\n")
    return 0


def _correction(plan: Any) -> dict[str, Any] | None:
    from meterline.pricing.corrections import CORRECTIONS

    for c in CORRECTIONS:
        if c.id == plan.correction:
            return c.to_dict()
    return None
