"""``meterline gateway --config gateway.yaml``: the real LiteLLM proxy with meterline wired in.

Sets ``LITELLM_LOCAL_MODEL_COST_MAP=True`` (no price-map fetch at start), adds the meterline callback to
``litellm_settings.callbacks`` when the config lacks it, points meterline at ``--database`` (else
``METERLINE_DESTINATION``), then runs LiteLLM's own server in this process. Needs the ``[gateway]`` extra.
"""

from __future__ import annotations

import argparse
import atexit
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from meterline.cli import add_destination_argument

CALLBACK = "meterline.gateway.callback.handler"
CALLBACK_NAMES = (CALLBACK, "meterline.integrations.litellm_proxy.handler")  # the older name: same object


def register(sub: Any) -> None:
    p = sub.add_parser("gateway", help="run the LiteLLM proxy with meterline metering and budgets")
    p.add_argument("--config", required=True, help="LiteLLM proxy config (YAML)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=4000)
    p.add_argument("--num-workers", type=int, default=1, help="uvicorn worker processes")
    add_destination_argument(p)
    p.add_argument("--api-key", default=None, help="collector API key (default: $METERLINE_API_KEY)")
    p.add_argument(
        "--budgets",
        default=None,
        help="database holding budget definitions (default: $METERLINE_BUDGETS, else the destination: "
        "its database, or the collector); 'off' disables enforcement",
    )
    p.add_argument("--redis", default=None, help="Redis URL for budget counters shared by proxy processes")
    p.add_argument("--keys", default=None, help="virtual keys for meterline.gateway.auth ($METERLINE_GATEWAY_KEYS)")
    p.add_argument("--no-meter", action="store_true", help="start the proxy without meterline (for benchmarks)")
    p.set_defaults(handler=run)


def prepare_config(path: Path, *, meter: bool = True) -> Path:
    """The config to start with: ``path`` itself, or a copy next to it with the callback added
    (next to it, because LiteLLM resolves custom modules relative to the config file)."""
    import yaml

    config = yaml.safe_load(path.read_text()) or {}
    if not isinstance(config, dict):
        raise SystemExit(f"meterline gateway: {path}: expected a YAML mapping")
    settings = config.setdefault("litellm_settings", {}) or {}
    config["litellm_settings"] = settings
    callbacks = settings.get("callbacks") or []
    if isinstance(callbacks, str):
        callbacks = [callbacks]
    if meter and any(name in callbacks for name in CALLBACK_NAMES):
        return path
    callbacks = [*callbacks, CALLBACK] if meter else [c for c in callbacks if c not in CALLBACK_NAMES]
    settings["callbacks"] = callbacks
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.meterline-", suffix=".yaml", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    atexit.register(lambda: Path(name).unlink(missing_ok=True))
    return Path(name)


def start_line(host: str, port: int, meter: bool = True) -> str:
    """The one line the gateway prints at start: where it listens, where events go, budgets, counters."""
    from meterline.core.config import resolve_destination
    from meterline.store.open import redact

    if not meter:
        return f"meterline gateway: http://{host}:{port} (metering off: --no-meter)"
    dest = redact(resolve_destination(None))
    budgets = os.environ.get("METERLINE_BUDGETS", "").strip()
    if budgets.lower() == "off":
        budget_text = "budgets off"
    else:
        budget_text = f"budgets on (definitions in {redact(budgets) if budgets else 'the destination'})"
    redis = os.environ.get("METERLINE_REDIS_URL", "").strip()
    counters = f"Redis counters at {redact(redis)}" if redis else "in-process counters"
    return f"meterline gateway: http://{host}:{port} -> events to {dest}; {budget_text}; {counters}"


def port_in_use(host: str, port: int) -> bool:
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is not "in use"
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def run(args: argparse.Namespace) -> int:
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    for flag, var in (
        (args.destination, "METERLINE_DESTINATION"),
        (args.api_key, "METERLINE_API_KEY"),
        (args.budgets, "METERLINE_BUDGETS"),
        (args.redis, "METERLINE_REDIS_URL"),
        (args.keys, "METERLINE_GATEWAY_KEYS"),
    ):
        if flag:
            os.environ[var] = flag
    path = Path(args.config)
    if not path.is_file():
        print(f"meterline gateway: no config file at {path}", file=sys.stderr)
        return 2
    if port_in_use(args.host, args.port):
        print(
            f"meterline gateway: {args.host}:{args.port} is already in use (another gateway or proxy?); "
            "pick another --port",
            file=sys.stderr,
        )
        return 2
    try:
        from litellm.proxy.proxy_cli import run_server
    except ImportError as exc:
        print(f"meterline gateway needs the LiteLLM proxy: pip install 'meterline[gateway]' ({exc})", file=sys.stderr)
        return 2
    config = prepare_config(path, meter=not args.no_meter)
    argv = ["--config", str(config), "--host", args.host, "--port", str(args.port)]
    if args.num_workers > 1:
        argv += ["--num_workers", str(args.num_workers)]
    print(start_line(args.host, args.port, meter=not args.no_meter), flush=True)
    run_server.main(args=argv, prog_name="meterline gateway", standalone_mode=False)
    return 0
