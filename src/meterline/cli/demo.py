"""``meterline demo``: real library traffic against the bundled fake provider, metered into SQLite, then a report.

Nothing leaves the machine: LiteLLM (and, when installed, the Anthropic SDK and boto3) talk HTTP to a local
fake provider that answers like OpenAI, Anthropic and Bedrock with realistic usage, cache tokens included.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from meterline.cli import add_destination_argument

CUSTOMERS = (("acme", "search"), ("globex", "support-bot"), ("initech", "search"), ("umbrella", "summarizer"))


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo", help="meter real LiteLLM/Anthropic/Bedrock traffic against a local fake provider", description=__doc__
    )
    add_destination_argument(p)
    p.add_argument("--api-key", default=None, help="collector API key, for an http(s):// destination")
    p.add_argument("--calls", type=int, default=40, help="LiteLLM chat calls to make (default 40)")
    p.add_argument("--serve", action="store_true", help="then run a collector with the dashboard over the data")
    p.add_argument("--port", type=int, default=8787, help="dashboard port with --serve (default 8787)")
    p.set_defaults(handler=run)


def _usage_header(**counts: int) -> dict[str, str]:
    import json

    return {"x-fake-usage": json.dumps(counts)}


def litellm_traffic(fake_url: str, calls: int) -> int:
    """LiteLLM calls: customers x products x models, streams, embeddings, a Router, one failure."""
    import litellm

    import meterline

    litellm.suppress_debug_info = True  # LiteLLM's Router prints a provider list while registering deployments
    openai_base = f"{fake_url}/v1"
    made = 0
    for i in range(calls):
        customer, product = CUSTOMERS[i % len(CUSTOMERS)]
        model = "openai/gpt-4o-mini" if i % 3 else "openai/gpt-4o"
        if i % 10 == 0:
            print(f"  LiteLLM chat calls {i + 1}-{min(i + 10, calls)} of {calls} …", flush=True)
        env = "staging" if i % 8 == 7 else "prod"  # `meterline report --filter environment=prod` (README)
        with meterline.metadata(
            subscriber_id=customer, product_id=product, organization_id=f"org-{customer}", environment=env
        ):
            litellm.completion(
                model=model,
                api_base=openai_base,
                api_key="sk-demo",
                messages=[{"role": "user", "content": f"Question {i}: what is the status of order {i * 7}?"}],
                extra_headers=_usage_header(input=200 + i * 10, output=40 + i, cache_read=100 if i % 4 == 0 else 0),
                usage_metadata={"task_type": "answer", "agent": "order-assistant"},
            )
            made += 1
    print("  LiteLLM: Anthropic with prompt caching, a stream, embeddings, a Router …", flush=True)
    # Anthropic through LiteLLM, with prompt-cache reads and writes
    with meterline.metadata(subscriber_id="acme", product_id="research-agent"):
        litellm.completion(
            model="anthropic/claude-3-5-sonnet-20240620",
            api_base=fake_url,
            api_key="sk-ant-demo",
            messages=[{"role": "user", "content": "Summarise the attached contract."}],
            extra_headers=_usage_header(input=120, output=300, cache_read=4000, cache_write=1500),
        )
        made += 1
        # a streamed reply, read to the end
        stream = litellm.completion(
            model="openai/gpt-4o-mini",
            api_base=openai_base,
            api_key="sk-demo",
            stream=True,
            messages=[{"role": "user", "content": "Write a haiku about invoices."}],
        )
        for _ in stream:
            pass
        made += 1
    # embeddings
    with meterline.metadata(subscriber_id="globex", product_id="search"):
        litellm.embedding(
            model="openai/text-embedding-3-small",
            api_base=openai_base,
            api_key="sk-demo",
            input=["refund policy", "shipping times", "warranty"],
        )
        made += 1
    # async calls through a Router
    from litellm.router import Router

    router = Router(
        model_list=[
            {
                "model_name": "fast",
                "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": openai_base, "api_key": "sk-demo"},
            }
        ]
    )

    async def routed() -> None:
        with meterline.metadata(subscriber_id="initech", product_id="summarizer"):
            # one call first: LiteLLM's lazy imports can race when its first async calls run concurrently
            await router.acompletion(model="fast", messages=[{"role": "user", "content": "Summarise ticket 0"}])
            await asyncio.gather(
                *(
                    router.acompletion(model="fast", messages=[{"role": "user", "content": f"Summarise ticket {n}"}])
                    for n in range(1, 5)
                )
            )

    asyncio.run(routed())
    made += 5
    return made


def failing_call(fake_url: str, fake: Any) -> None:
    """One call the provider refuses (HTTP 429): metered as status=error, no cost."""
    import litellm

    import meterline

    fake.fail_next(429)
    with meterline.metadata(subscriber_id="umbrella", product_id="summarizer"):
        try:
            litellm.completion(
                model="openai/gpt-4o-mini",
                api_base=f"{fake_url}/v1",
                api_key="sk-demo",
                num_retries=0,
                max_retries=0,
                messages=[{"role": "user", "content": "This one is rate limited."}],
            )
        except Exception as exc:  # noqa: BLE001 - the demo shows the error event, not the exception
            print(f"  (expected) provider refused one call: {type(exc).__name__}")


def _has_demo_events(destination: str | None, api_key: str | None) -> bool:
    """Whether a demo already metered into ``destination`` (its research-agent call for acme is there)."""
    from meterline.store.open import open_store
    from meterline.store.query import UsageQuery

    try:
        store = open_store(destination, api_key=api_key)
    except Exception:  # noqa: BLE001 - no store yet (or unreachable): the demo creates or reports it
        return False
    try:
        marker = UsageQuery(filters={"subscriber_id": ["acme"], "product_id": ["research-agent"]})
        return bool(store.usage(marker))
    except Exception:  # noqa: BLE001 - an empty or foreign database: meter the demo
        return False
    finally:
        store.close()


def run(args: argparse.Namespace) -> int:
    if args.serve and _has_demo_events(args.destination, args.api_key):
        # `meterline demo` then `meterline demo --serve` (as the demo's last line suggests): serve what is there;
        # metering a second round first doubled every figure on the dashboard
        print("meterline demo: the store holds a demo's events already; serving them (without --serve: one more round)")
        from meterline.core.config import resolve_destination

        return _dashboard(resolve_destination(args.destination), args)
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-map fetch over the network
    os.environ.setdefault("METERLINE_ENVIRONMENT", "prod")  # the environment of calls that do not name one
    print("meterline demo: loading LiteLLM (a few seconds) …", flush=True)
    try:
        import litellm  # noqa: F401
    except ImportError:
        print("meterline demo needs LiteLLM: pip install 'meterline[litellm]'", file=sys.stderr)
        return 2
    import meterline
    from meterline.cli import report
    from meterline.store.open import open_store
    from meterline.store.query import UsageQuery
    from meterline.testing import FakeProvider

    started = datetime.now(timezone.utc) - timedelta(seconds=1)
    t0 = time.monotonic()
    recorder = meterline.init(destination=args.destination, api_key=args.api_key)
    meterline.instrument()
    dest = meterline.sdk.api.settings.destination
    print(f"meterline demo: metering into {dest}")
    with FakeProvider() as fake:
        print(f"  fake provider (OpenAI, Anthropic, Bedrock APIs) at {fake.url}")
        made = litellm_traffic(fake.url, args.calls)
        failing_call(fake.url, fake)
        made += 1
        from meterline.cli._demo_anthropic import demo_traffic

        print("  Anthropic SDK (direct and Bedrock) and boto3 bedrock-runtime …", flush=True)
        try:  # Anthropic SDK and Bedrock traffic (needs the [anthropic] extra)
            made += demo_traffic(fake.url)
        except ImportError as exc:
            print(f"  (skipped Anthropic/Bedrock traffic: {exc})")
        print(f"  {made} calls made in {time.monotonic() - t0:.1f}s; writing the events …", flush=True)
        ok = meterline.flush(30)
    stats = recorder.stats()
    meterline.uninstrument()
    meterline.shutdown()
    print(
        f"  {stats['written']} events written, {stats['dropped_queue_full'] + stats['dropped_sink_failure']} "
        f"dropped{'' if ok else ' (flush timed out)'}\n"
    )
    store = open_store(dest, api_key=args.api_key)
    try:
        for title, group in (
            ("Spend by customer and model", ["subscriber_id", "model"]),
            ("Spend by product", ["product_id"]),
            ("Requests and errors by provider", ["provider", "status"]),
        ):
            rows = store.usage(UsageQuery(group_by=group, start=started))
            rows.sort(key=lambda r: (r["total_cost"], r["requests"]), reverse=True)
            print(f"{title}:")
            report.table(rows, group, sys.stdout)
            print()
    finally:
        store.close()
    from meterline.cli._demo_billing import sample_invoice

    sample_invoice(dest)  # billing: a sample invoice for one demo customer
    print("Next: `meterline report -g subscriber_id --bucket day`, `meterline export --format jsonl | head`.")
    return _dashboard(dest, args) if ok else 1


def _dashboard(dest: str, args: argparse.Namespace) -> int:
    """Print the dashboard URL over the demo data; with --serve, run that collector (local only, no key)."""
    url = f"http://127.0.0.1:{args.port}/"
    if not getattr(args, "serve", False):
        print(f"Dashboard: rerun with --serve (or `meterline serve --database {dest} --no-auth`), then open {url}")
        return 0
    import uvicorn

    from meterline.server.app import create_app
    from meterline.server.settings import Settings

    print(f"Dashboard over the demo data: {url}  (local only, no API key; Ctrl-C to stop)")
    uvicorn.run(create_app(Settings(database=dest, auth=False, port=args.port)), host="127.0.0.1", port=args.port)
    return 0
