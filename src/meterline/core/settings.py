"""Every ``METERLINE_*`` environment variable, in one registry: its default, what it does, which part reads it.

This module only describes the settings; each part still reads its own variables where it always did (the
SDK in :mod:`meterline.sdk.api`, the collector in :mod:`meterline.server.settings`, the gateway in
:mod:`meterline.gateway.enforcer`, …). ``tests/test_configuration_reference.py`` holds the two together: a
name read anywhere in ``src/meterline`` that is missing here fails it, and so does a name listed here that
nothing reads. ``docs/reference/configuration.md`` is generated from this registry::

    python -m meterline.core.settings > docs/reference/configuration.md

Core module, rank 0: imports nothing of meterline.
"""

from __future__ import annotations

import dataclasses
import sys

# the parts that read a setting ("internal": set by meterline itself for its own child processes)
PARTS = ("sdk", "collector", "gateway", "cli", "internal", "tests-only")


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str  # the environment variable
    default: str  # what applies when it is unset, in words
    doc: str  # what it does (Markdown)
    read_by: tuple[str, ...]  # parts, from PARTS
    read_in: tuple[str, ...]  # where it is read: paths under src/meterline (tests/, bench/, .ci/ for tests-only)
    section: str
    fallbacks: tuple[str, ...] = ()  # other variables read when this one is unset, in order


# a paragraph under a section's heading in the reference
SECTION_NOTES = {
    "Collector (`meterline serve`)": "A `meterline serve` flag wins over the variable, the variable over the "
    "`--config` file (`METERLINE_CONFIG`), which wins over the default. The name in parentheses is the key in "
    "that file (the variable is `METERLINE_` + the key in upper case).",
    "Metadata fallbacks": "Lowest precedence: per-call `usage_metadata=` > innermost scope > outer scope > "
    "these variables. The first one set wins.",
}

SETTINGS: tuple[Setting, ...] = (
    # -- where events go ---------------------------------------------------------------------------------------
    Setting(
        "METERLINE_DESTINATION",
        "`sqlite:///<user data dir>/meterline.db`",
        "Where events go and where every command reads them: `sqlite:///file.db`, `postgresql://…`, "
        "`clickhouse://…`, `chdb:///dir` or `http(s)://collector`. A `--database`/`--destination` flag or "
        "`init(destination=…)` wins over it.",
        ("sdk", "collector", "gateway", "cli"),
        ("core/config.py", "sdk/api.py", "cli/gateway.py"),
        "Destination and store",
    ),
    Setting(
        "METERLINE_DATABASE",
        "unset (then `METERLINE_DESTINATION`)",
        "The collector's store (`database`), read before `METERLINE_DESTINATION`.",
        ("collector",),
        ("server/settings.py",),
        "Destination and store",
        ("METERLINE_DESTINATION",),
    ),
    Setting(
        "METERLINE_API_KEY",
        "unset",
        "The API key sent to an HTTP collector destination (`init(api_key=…)` and `--api-key` win over it). "
        "The gateway also uses it to read budgets from a collector.",
        ("sdk", "gateway", "cli"),
        ("sdk/api.py", "store/open.py", "cli/budgets.py", "cli/gateway.py", "gateway/enforcer.py"),
        "Destination and store",
    ),
    Setting(
        "METERLINE_HOME",
        "the platform's user data dir (`~/.local/share/meterline` on Linux)",
        "Moves meterline's data directory: the default SQLite file, the spool, the durable log, dead letters, "
        "the per-installation hash salt.",
        ("sdk", "collector", "gateway", "cli"),
        ("core/config.py",),
        "Destination and store",
    ),
    Setting(
        "METERLINE_META_DATABASE",
        "`<dir>/<database>-meta.db` for chdb, else `meterline-meta.db` in the user data dir",
        "For a ClickHouse destination without a `meta=` parameter: the SQL database (SQLite or PostgreSQL) that "
        "keeps keys, budgets and billing next to ClickHouse.",
        ("sdk", "collector", "gateway", "cli"),
        ("store/clickhouse.py",),
        "Destination and store",
    ),
    # -- delivery ----------------------------------------------------------------------------------------------
    Setting(
        "METERLINE_DURABILITY",
        "`memory`",
        "`memory` or `disk` (as `init(durability=…)`): with `disk` every event goes to an append-only log "
        "first, so a killed process loses at most one fsync interval.",
        ("sdk",),
        ("sdk/api.py",),
        "Delivery",
    ),
    Setting(
        "METERLINE_FSYNC_INTERVAL_MS",
        "`50`",
        "Durable mode's group-commit interval in milliseconds (1 to 60000); `init(fsync_interval_ms=…)` wins.",
        ("sdk",),
        ("sdk/delivery/durable.py",),
        "Delivery",
    ),
    # -- metadata ----------------------------------------------------------------------------------------------
    Setting(
        "METERLINE_ENVIRONMENT",
        "unset",
        "Fallback `environment` of events that do not name one.",
        ("sdk",),
        ("core/metadata.py",),
        "Metadata fallbacks",
        ("ENVIRONMENT", "DEPLOYMENT_ENV"),
    ),
    Setting(
        "METERLINE_REGION",
        "unset",
        "Fallback `region` of events.",
        ("sdk",),
        ("core/metadata.py",),
        "Metadata fallbacks",
        ("AWS_REGION", "AZURE_REGION", "GCP_REGION", "GOOGLE_CLOUD_REGION"),
    ),
    Setting(
        "METERLINE_CREDENTIAL_ALIAS",
        "unset",
        "Fallback `credential_alias` of events.",
        ("sdk",),
        ("core/metadata.py",),
        "Metadata fallbacks",
    ),
    Setting(
        "METERLINE_TRACE_TYPE",
        "unset",
        "Fallback `trace_type` of events (≤ 128 characters).",
        ("sdk",),
        ("core/metadata.py",),
        "Metadata fallbacks",
    ),
    Setting(
        "METERLINE_TRACE_NAME",
        "unset",
        "Fallback `trace_name` of events (≤ 256 characters).",
        ("sdk",),
        ("core/metadata.py",),
        "Metadata fallbacks",
    ),
    Setting(
        "METERLINE_PARENT_TRANSACTION_ID",
        "unset",
        "Fallback `parent_transaction_id` of events.",
        ("sdk",),
        ("core/metadata.py",),
        "Metadata fallbacks",
    ),
    Setting(
        "METERLINE_TRANSACTION_NAME",
        "unset",
        "Fallback `transaction_name` of events.",
        ("sdk",),
        ("core/metadata.py",),
        "Metadata fallbacks",
    ),
    Setting(
        "METERLINE_RETRY_NUMBER",
        "unset",
        "Fallback `retry_number` of events.",
        ("sdk",),
        ("core/metadata.py",),
        "Metadata fallbacks",
    ),
    Setting(
        "METERLINE_SELECTIVE_METERING",
        "off",
        "`true`/`1`/`yes`/`on`: only calls inside `with meterline.meter():` are metered. Read on every call, so a "
        "change takes effect at once.",
        ("sdk",),
        ("sdk/scopes.py",),
        "Metadata fallbacks",
    ),
    Setting(
        "METERLINE_HASH_SALT",
        "a random salt generated once per installation (`hash_salt` in the data dir)",
        "The salt of `credential_hash` (a credential's value is never stored, only this salted hash). Hosts "
        "that must produce the same hashes share one value.",
        ("sdk", "collector", "gateway"),
        ("core/metadata.py",),
        "Metadata fallbacks",
    ),
    # -- content ------------------------------------------------------------------------------------------------
    Setting(
        "METERLINE_CAPTURE_CONTENT",
        "off",
        "Store prompts and replies (`init(capture_content=…)` wins).",
        ("sdk", "gateway"),
        ("sdk/api.py",),
        "Content capture and redaction",
    ),
    Setting(
        "METERLINE_CAPTURE_HEADERS",
        "off",
        "With content capture: also the request headers (credential headers always masked).",
        ("sdk", "gateway"),
        ("sdk/api.py",),
        "Content capture and redaction",
    ),
    Setting(
        "METERLINE_CAPTURE_RAW_REQUEST",
        "off",
        "With content capture: also the raw request body.",
        ("sdk", "gateway"),
        ("sdk/api.py",),
        "Content capture and redaction",
    ),
    Setting(
        "METERLINE_REDACT",
        "`all`",
        "Redaction presets for captured content: `all`, `none`, or a comma list of `emails`, `phones`, `cards`, "
        "`secrets`, `ips`.",
        ("sdk", "gateway"),
        ("sdk/api.py", "sdk/redaction.py"),
        "Content capture and redaction",
    ),
    Setting(
        "METERLINE_REDACT_PATTERNS",
        "unset",
        "Extra redaction regexes, as a JSON list of strings.",
        ("sdk", "gateway"),
        ("sdk/api.py",),
        "Content capture and redaction",
    ),
    Setting(
        "METERLINE_CONTENT_MAX_BYTES",
        "`65536` (64 KiB)",
        "The cap on an event's captured content, in bytes.",
        ("sdk", "gateway"),
        ("sdk/api.py",),
        "Content capture and redaction",
    ),
    # -- pricing and telemetry ---------------------------------------------------------------------------------
    Setting(
        "METERLINE_PRICES",
        "unset (genai-prices only)",
        "A price table file (TOML, YAML or JSON) whose entries win over genai-prices. The collector prices "
        "events that arrive without a cost with it; `meterline prices` and `meterline reprice` read it when "
        "`--prices` is not given.",
        ("sdk", "collector", "gateway", "cli"),
        ("sdk/api.py", "server/app.py", "cli/prices.py", "cli/reprice.py"),
        "Pricing and OpenTelemetry",
    ),
    Setting(
        "METERLINE_PRICES_DIR",
        "`<user data dir>/prices`",
        "Where `meterline prices update` (and the periodic refresh) keep the validated price data that every later "
        "process loads; without a copy there the packaged genai-prices data applies.",
        ("sdk", "collector", "gateway", "cli"),
        ("pricing/data.py",),
        "Pricing and OpenTelemetry",
    ),
    Setting(
        "METERLINE_PRICES_URL",
        "genai-prices' own update URL",
        "Where `meterline prices update` (without `--from`) and the periodic refresh fetch newer price data "
        "(genai-prices' `data.json` format), e.g. a mirror inside your network.",
        ("collector", "cli"),
        ("pricing/data.py",),
        "Pricing and OpenTelemetry",
    ),
    Setting(
        "METERLINE_PRICES_REFRESH",
        "unset (off)",
        "Opt-in periodic price data refresh: an interval (`24h`, `30m`, seconds; `true` = daily). Each fetch is "
        "validated and only then swapped in; a refused or failed fetch keeps the prices in use.",
        ("collector",),
        ("pricing/data.py",),
        "Pricing and OpenTelemetry",
    ),
    Setting(
        "METERLINE_OTLP_ENDPOINT",
        "unset (no span export)",
        "Export each metered call as an OpenTelemetry gen_ai span over OTLP/HTTP to this endpoint, e.g. "
        "`http://otel-collector:4318` (`init(otlp_endpoint=…)` wins).",
        ("sdk", "gateway"),
        ("sdk/otel.py",),
        "Pricing and OpenTelemetry",
    ),
    Setting(
        "METERLINE_OTLP_HEADERS",
        "unset",
        "Headers for the OTLP export, `k1=v1,k2=v2` (the `OTEL_EXPORTER_OTLP_HEADERS` form).",
        ("sdk", "gateway"),
        ("sdk/otel.py",),
        "Pricing and OpenTelemetry",
    ),
    # -- collector ----------------------------------------------------------------------------------------------
    Setting(
        "METERLINE_CONFIG",
        "unset",
        "A TOML or YAML file with the collector settings below, at the top level or under `[server]` "
        "(`--config` wins).",
        ("collector",),
        ("server/settings.py",),
        "Collector (`meterline serve`)",
    ),
    Setting(
        "METERLINE_HOST",
        "`127.0.0.1`",
        "Bind address (`host`).",
        ("collector",),
        ("server/settings.py",),
        "Collector (`meterline serve`)",
    ),
    Setting(
        "METERLINE_PORT",
        "`8787`",
        "Port; `0` picks a free one (`port`).",
        ("collector",),
        ("server/settings.py",),
        "Collector (`meterline serve`)",
    ),
    Setting(
        "METERLINE_AUTH",
        "`true`",
        "`false`: accept requests without an API key; refused unless the host is a loopback address (`auth`; "
        "the flag is `--no-auth`).",
        ("collector",),
        ("server/settings.py",),
        "Collector (`meterline serve`)",
    ),
    Setting(
        "METERLINE_MAX_BODY_BYTES",
        "`16777216` (16 MiB)",
        "Largest request body, after gzip decompression (`max_body_bytes`).",
        ("collector",),
        ("server/settings.py",),
        "Collector (`meterline serve`)",
    ),
    Setting(
        "METERLINE_MAX_BATCH_EVENTS",
        "`10000`",
        "Most events per `POST /v1/events` (`max_batch_events`).",
        ("collector",),
        ("server/settings.py",),
        "Collector (`meterline serve`)",
    ),
    Setting(
        "METERLINE_MAX_PAGE_SIZE",
        "`1000`",
        "Most events per `GET /v1/events` page (`max_page_size`).",
        ("collector",),
        ("server/settings.py",),
        "Collector (`meterline serve`)",
    ),
    Setting(
        "METERLINE_KEY_CACHE_SECONDS",
        "`5.0`",
        "How long a verified API key is trusted without asking the database (`key_cache_seconds`): a revoked "
        "key stops working within this time.",
        ("collector",),
        ("server/settings.py",),
        "Collector (`meterline serve`)",
    ),
    Setting(
        "METERLINE_POOL_SIZE",
        "`8`",
        "PostgreSQL connections per collector process (`pool_size`).",
        ("collector",),
        ("server/settings.py",),
        "Collector (`meterline serve`)",
    ),
    Setting(
        "METERLINE_WORKERS",
        "`1`",
        "Uvicorn worker processes; PostgreSQL only, SQLite has one writer (`workers`).",
        ("collector",),
        ("server/settings.py",),
        "Collector (`meterline serve`)",
    ),
    Setting(
        "METERLINE_LOG_LEVEL",
        "`info`",
        "Uvicorn log level (`log_level`).",
        ("collector",),
        ("server/settings.py",),
        "Collector (`meterline serve`)",
    ),
    Setting(
        "METERLINE_DASHBOARD_SECRET",
        "one generated per installation and kept in the database",
        "Signs dashboard sessions and customer share links (`dashboard_secret`). Replicas share the database, "
        "so they share the generated one.",
        ("collector",),
        ("server/settings.py",),
        "Collector (`meterline serve`)",
    ),
    Setting(
        "METERLINE_HEADER_TIMEOUT_SECONDS",
        "`10`",
        "Seconds a connection has to send a complete request head, from its opening or from the previous "
        "response (`header_timeout_seconds`; flag `--header-timeout`): after it the connection is closed, with a "
        "`408` when part of a head had arrived.",
        ("collector",),
        ("server/settings.py",),
        "Collector (`meterline serve`)",
    ),
    Setting(
        "METERLINE_KEEP_ALIVE_SECONDS",
        "`5`",
        "Seconds an idle keep-alive connection stays open between requests (`keep_alive_seconds`; flag "
        "`--keep-alive`; uvicorn's `timeout_keep_alive`).",
        ("collector",),
        ("server/settings.py",),
        "Collector (`meterline serve`)",
    ),
    Setting(
        "METERLINE_MAX_REQUEST_LINE_BYTES",
        "`16384`",
        "Longest request line: method, URL with its query string, version (`max_request_line_bytes`): a longer "
        "one is answered `414 URI Too Long`.",
        ("collector",),
        ("server/settings.py",),
        "Collector (`meterline serve`)",
    ),
    Setting(
        "METERLINE_MAX_HEADER_BYTES",
        "`65536`",
        "Largest request head, the request line and every header (`max_header_bytes`): a larger one is answered "
        "`431 Request Header Fields Too Large`.",
        ("collector",),
        ("server/settings.py",),
        "Collector (`meterline serve`)",
    ),
    Setting(
        "METERLINE_FORWARD",
        "unset (no continuous export)",
        "Continuous exports from the collector: one or more `FORMAT+URL?options` specs separated by spaces or "
        "`;`, e.g. `lago+https://api.getlago.com?charge_by=subscriber_id`. Formats `lago`, `openmeter`, "
        "`stripe`; the target's key comes from `LAGO_API_KEY`, `OPENMETER_API_KEY` or `STRIPE_API_KEY` (or the "
        "variable named by `api_key_env`). Every replica may carry it: one at a time forwards each target "
        "(`METERLINE_FORWARD_LEASE_SECONDS`).",
        ("collector",),
        ("server/api/forwarding.py",),
        "Collector (`meterline serve`)",
    ),
    Setting(
        "METERLINE_FORWARD_LEASE_SECONDS",
        "`60`",
        "The lease of each `METERLINE_FORWARD` target, in seconds: replicas sharing one database take turns "
        "through a lease row per export cursor, and only its holder sends (renewed before each send). A holder "
        "that stops releases it; one that dies is replaced within this TTL plus one `poll_seconds`. Keep it "
        "longer than the slowest send (a Stripe batch is 100 paced requests).",
        ("collector",),
        ("server/api/forwarding.py",),
        "Collector (`meterline serve`)",
    ),
    Setting(
        "METERLINE_STRIPE_RATE",
        "900 with a live key (`sk_live_…`, `rk_live_…`), else 20",
        "Requests per second the Stripe export (`meterline export --format stripe`, a `stripe+…` forwarder) "
        "paces its meter events at; `0` turns pacing off. Stripe allows 1,000 meter-event calls/s in live mode; "
        "a sandbox's basic limit is 25 requests/s for all of its calls.",
        ("cli", "collector"),
        ("interop/export/stripe.py",),
        "Collector (`meterline serve`)",
    ),
    # -- gateway ------------------------------------------------------------------------------------------------
    Setting(
        "METERLINE_BUDGETS",
        "the destination (its database, or the collector with `METERLINE_API_KEY`)",
        "Where the gateway reads budget definitions and wallets: a database URL, or `off` to disable "
        "enforcement (`meterline gateway --budgets`).",
        ("gateway",),
        ("gateway/enforcer.py", "cli/gateway.py"),
        "Gateway (LiteLLM proxy)",
    ),
    Setting(
        "METERLINE_BUDGETS_REFRESH_S",
        "`5`",
        "Seconds between re-reads of budget definitions, spend and wallet balances.",
        ("gateway",),
        ("gateway/enforcer.py",),
        "Gateway (LiteLLM proxy)",
    ),
    Setting(
        "METERLINE_REDIS_URL",
        "unset (in-process counters)",
        "Redis for budget and wallet counters shared by every gateway replica (`meterline gateway --redis`).",
        ("gateway",),
        ("gateway/enforcer.py", "cli/gateway.py"),
        "Gateway (LiteLLM proxy)",
    ),
    Setting(
        "METERLINE_REDIS_PREFIX",
        "`meterline`",
        "Key prefix of the gateway's Redis counters.",
        ("gateway",),
        ("gateway/enforcer.py",),
        "Gateway (LiteLLM proxy)",
    ),
    Setting(
        "METERLINE_GATEWAY_RESERVE_USD",
        "`0.01`",
        "What a call reserves against its budgets when its model is unknown (no price to estimate with).",
        ("gateway",),
        ("gateway/enforcer.py",),
        "Gateway (LiteLLM proxy)",
    ),
    Setting(
        "METERLINE_GATEWAY_HOLD_TTL_S",
        "`600`",
        "Lease of a reservation in seconds: a process that dies mid-call leaks nothing after it.",
        ("gateway",),
        ("gateway/enforcer.py",),
        "Gateway (LiteLLM proxy)",
    ),
    Setting(
        "METERLINE_GATEWAY_ADMIT_WAIT_S",
        "`10`",
        "How long a call may wait for reservations in flight to settle before it is refused.",
        ("gateway",),
        ("gateway/enforcer.py",),
        "Gateway (LiteLLM proxy)",
    ),
    Setting(
        "METERLINE_GATEWAY_KEYS",
        "unset",
        'Virtual keys without a database: a YAML file path or inline JSON `{"keys": {…}}` binding each key to '
        "an identity and limits (`meterline gateway --keys`).",
        ("gateway",),
        ("gateway/auth.py", "cli/gateway.py"),
        "Gateway (LiteLLM proxy)",
    ),
    Setting(
        "METERLINE_GATEWAY_ALLOW_OVERRIDE",
        "off",
        "Let caller headers (`x-meterline-*`, `x-revenium-*`) and body metadata override the identity bound to "
        "the key (by default key-bound identity wins).",
        ("gateway",),
        ("gateway/callback.py",),
        "Gateway (LiteLLM proxy)",
    ),
    Setting(
        "METERLINE_GATEWAY_TRUST_CALLER_IDENTITY",
        "off",
        "Let callers name the team, organization, user or key alias their key does not bind (the master key, a "
        "key without a team) through headers or body metadata. Off: those fields stay empty, so a caller cannot "
        "charge another team or organization; values the key binds always win unless "
        "`METERLINE_GATEWAY_ALLOW_OVERRIDE` is on.",
        ("gateway",),
        ("gateway/callback.py",),
        "Gateway (LiteLLM proxy)",
    ),
    Setting(
        "METERLINE_GATEWAY_DRAIN_S",
        "`10`",
        "Seconds the gateway waits at shutdown for LiteLLM's logging worker and for meterline's flush.",
        ("gateway",),
        ("gateway/callback.py",),
        "Gateway (LiteLLM proxy)",
    ),
    # -- diagnostics and internals ------------------------------------------------------------------------------
    Setting(
        "METERLINE_RAISE_INTERNAL",
        "off",
        "`1`/`true`/`yes`: a meterline internal error on the caller's thread is re-raised instead of logged and "
        "counted. An explicit switch for debugging meterline itself; off under pytest too.",
        ("sdk", "gateway"),
        ("core/errors.py",),
        "Diagnostics",
    ),
    Setting(
        "METERLINE_SERVE_SETTINGS",
        "set by `meterline serve`",
        "The merged collector settings (JSON), handed to uvicorn worker processes. Not for users.",
        ("internal",),
        ("cli/serve.py",),
        "Internal (set by meterline for its own child processes)",
    ),
    Setting(
        "_METERLINE_PARENT_INIT",
        "set by `init()`",
        "The parent's destination, durability and spool dir (JSON), so `multiprocessing` spawn children send "
        "where the parent does; never set for a destination holding a password. Not for users.",
        ("internal",),
        ("sdk/api.py",),
        "Internal (set by meterline for its own child processes)",
    ),
    # -- tests, benchmarks, CI ----------------------------------------------------------------------------------
    Setting(
        "METERLINE_TEST_PG",
        "`postgresql://postgres@127.0.0.1:5432/test`",
        "The PostgreSQL admin URL the tests and benchmarks create their databases with.",
        ("tests-only",),
        ("tests/conftest.py", "bench/bench_collector.py"),
        "Tests, benchmarks and CI",
    ),
    Setting(
        "METERLINE_TEST_CLICKHOUSE_URL",
        "unset (the live ClickHouse tests skip)",
        "A live ClickHouse server for `tests/test_clickhouse_live.py`.",
        ("tests-only",),
        ("tests/test_clickhouse_live.py",),
        "Tests, benchmarks and CI",
    ),
    Setting(
        "METERLINE_REVENIUM_PYTHON",
        "`/tmp/meterline-venv-revenium/bin/python`",
        "The Python of the venv holding revenium-python-sdk, for `tests/test_interop_revenium.py` (`.ci/run` "
        "builds it).",
        ("tests-only",),
        ("tests/test_interop_revenium.py", ".ci/run"),
        "Tests, benchmarks and CI",
    ),
    Setting(
        "METERLINE_SCHEMATHESIS_EXAMPLES",
        "`25`",
        "Examples per operation in `tests/test_collector_schemathesis.py`.",
        ("tests-only",),
        ("tests/test_collector_schemathesis.py",),
        "Tests, benchmarks and CI",
    ),
    Setting(
        "METERLINE_SCREENSHOTS",
        "unset",
        "A directory: the dashboard browser test saves one PNG per page there (`docs/screenshots/`).",
        ("tests-only",),
        ("tests/test_dashboard_browser.py",),
        "Tests, benchmarks and CI",
    ),
    Setting(
        "METERLINE_CHROMIUM",
        "`/usr/bin/chromium`",
        "The browser the dashboard browser tests drive.",
        ("tests-only",),
        ("tests/test_dashboard_browser.py",),
        "Tests, benchmarks and CI",
    ),
    Setting(
        "METERLINE_CHROMEDRIVER",
        "`/usr/bin/chromedriver`",
        "The WebDriver of that browser.",
        ("tests-only",),
        ("tests/test_dashboard_browser.py",),
        "Tests, benchmarks and CI",
    ),
    Setting(
        "METERLINE_BENCH_REVENIUM_VENV",
        "`~/.cache/meterline-bench/revenium`",
        "Where `bench/bench_overhead.py` creates the revenium-python-sdk venv it compares with.",
        ("tests-only",),
        ("bench/bench_overhead.py",),
        "Tests, benchmarks and CI",
    ),
    Setting(
        "METERLINE_CI_CACHE",
        "`~/.cache/meterline-ci`",
        "Where `.ci/version_matrix.sh` keeps the floor/latest venvs.",
        ("tests-only",),
        (".ci/version_matrix.sh",),
        "Tests, benchmarks and CI",
    ),
)

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def reference_markdown() -> str:
    """``docs/reference/configuration.md``: every setting, grouped by section, as Markdown tables."""
    lines = [
        "# Configuration reference",
        "",
        "Every `METERLINE_*` environment variable meterline reads. Generated from the registry in",
        "`src/meterline/core/settings.py`; do not edit by hand. Regenerate with:",
        "",
        "```bash",
        "python -m meterline.core.settings > docs/reference/configuration.md",
        "```",
        "",
        "`tests/test_configuration_reference.py` fails when a variable read in `src/meterline` is missing from the",
        "registry, when the registry lists one nothing reads, or when this page differs from the registry.",
        "",
        "Precedence, everywhere: an explicit argument or command-line flag, then the variable, then the default.",
        "For the collector: flags > environment > `--config` file > defaults. *Read by*: `sdk` (the library in",
        "your app, also inside the gateway), `collector` (`meterline serve`), `gateway` (`meterline gateway`, the",
        "LiteLLM proxy callback), `cli` (the `meterline` commands), `internal` (set by meterline itself),",
        "`tests-only` (the test suite, benchmarks and CI).",
        "",
    ]
    sections: list[str] = []
    for setting in SETTINGS:
        if setting.section not in sections:
            sections.append(setting.section)
    for section in sections:
        lines += [f"## {section}", ""]
        if section in SECTION_NOTES:
            lines += [SECTION_NOTES[section], ""]
        lines += ["| variable | default | read by | what it does |", "|---|---|---|---|"]
        for s in (s for s in SETTINGS if s.section == section):
            doc = s.doc
            if s.fallbacks:
                doc += " When unset: " + ", then ".join(f"`{f}`" for f in s.fallbacks) + "."
            lines.append(f"| `{s.name}` | {_cell(s.default)} | {', '.join(s.read_by)} | {_cell(doc)} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(reference_markdown())
