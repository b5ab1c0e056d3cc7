"""``meterline serve``: run the collector (FastAPI on uvicorn)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from meterline.cli import add_destination_argument

_SETTINGS_ENV = "METERLINE_SERVE_SETTINGS"  # hands the merged settings to uvicorn worker processes


def register(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="run the collector (HTTP ingest + query API)",
        description="Run the meterline collector. Settings: flags > METERLINE_* environment > --config file.",
    )
    add_destination_argument(p)
    p.add_argument("--config", help="TOML or YAML settings file (env METERLINE_CONFIG)")
    p.add_argument("--host", help="bind address (default 127.0.0.1; env METERLINE_HOST)")
    p.add_argument("--port", type=int, help="port (default 8787; 0 picks a free one; env METERLINE_PORT)")
    p.add_argument(
        "--no-auth",
        dest="auth",
        action="store_const",
        const=False,
        default=None,
        help="accept requests without an API key (only on a loopback address: local demos)",
    )
    p.add_argument("--workers", type=int, help="uvicorn worker processes (PostgreSQL only)")
    p.add_argument("--max-body-bytes", type=int, help="largest request body, after gzip (default 16 MiB)")
    p.add_argument("--max-batch-events", type=int, help="most events per POST /v1/events (default 10000)")
    p.add_argument(
        "--header-timeout",
        type=float,
        dest="header_timeout_seconds",
        help="seconds a connection has to send a complete request head (default 10; 408 or close after)",
    )
    p.add_argument(
        "--keep-alive",
        type=int,
        dest="keep_alive_seconds",
        help="seconds an idle keep-alive connection stays open (default 5)",
    )
    p.add_argument(
        "--max-request-line-bytes", type=int, help="longest request line, URL included (default 16384; 414 beyond)"
    )
    p.add_argument(
        "--max-header-bytes",
        type=int,
        help="largest request head, request line and headers (default 65536; 431 beyond)",
    )
    p.add_argument("--log-level", help="uvicorn log level (default info)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from meterline.server.app import create_app
        from meterline.server.settings import SettingsError, load_settings
    except ImportError as exc:
        print(f"meterline: error: the collector needs pip install 'meterline[server]' ({exc})", file=sys.stderr)
        return 2
    flags = {
        "database": args.destination,
        "host": args.host,
        "port": args.port,
        "auth": args.auth,
        "workers": args.workers,
        "max_body_bytes": args.max_body_bytes,
        "max_batch_events": args.max_batch_events,
        "log_level": args.log_level,
        "header_timeout_seconds": args.header_timeout_seconds,
        "keep_alive_seconds": args.keep_alive_seconds,
        "max_request_line_bytes": args.max_request_line_bytes,
        "max_header_bytes": args.max_header_bytes,
    }
    try:
        settings = load_settings(flags, config_file=args.config)
    except (SettingsError, ValueError) as exc:
        print(f"meterline: error: {exc}", file=sys.stderr)
        return 2
    if not settings.auth:
        print("meterline: WARNING: --no-auth: every request is accepted without an API key", file=sys.stderr)
    from meterline.server.connections import uvicorn_options

    options = uvicorn_options(settings)  # header timeout, keep-alive, request line and head limits
    if settings.workers > 1:
        import dataclasses

        os.environ[_SETTINGS_ENV] = json.dumps(dataclasses.asdict(settings))
        uvicorn.run(
            "meterline.cli.serve:app_from_environment",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level=settings.log_level,
            **options,
        )
        return 0
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level, **options)
    return 0


def app_from_environment() -> Any:
    """uvicorn factory for worker processes: the settings the parent merged."""
    from meterline.server.app import create_app
    from meterline.server.connections import configure
    from meterline.server.settings import Settings

    settings = Settings(**json.loads(os.environ[_SETTINGS_ENV]))
    configure(settings)  # this worker's connections get the parent's limits
    return create_app(settings)
