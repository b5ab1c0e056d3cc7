"""Server-side bulk loads for the store benchmarks: N events generated inside PostgreSQL or ClickHouse by
the same arithmetic on the row number, so both engines hold the same data (checked by comparing answers)
without pushing millions of Python objects through a driver.

Event i: start in October 2026 (UTC) at a spread-out second, one of 5 models, one of 1,000 customers, prod
or staging, tokens and costs from fixed formulas (costs in pico-dollars, exact).
"""

from __future__ import annotations

from typing import Any

SPAN_S = 30 * 86_400
BASE_US = 1_790_812_800_000_000  # 2026-10-01T00:00:00Z
MODELS = ("gpt-4o-mini", "gpt-4o", "claude-haiku-4-5", "claude-sonnet-4-5", "gpt-4.1-nano")
PROVIDERS = ("openai", "openai", "anthropic", "anthropic", "openai")


def _exprs(i: str, mod: str, arr: str, pad: str) -> dict[str, str]:
    """Column -> SQL expression of the row number ``i`` (``mod``/``arr``/``pad`` are dialect helpers)."""
    m = f"{mod(i, '5')}"
    inp = f"(50 + {mod(f'{i} * 31', '3950')})"
    out = f"(10 + {mod(f'{i} * 17', '790')})"
    return {
        "schema_version": "1",
        "start_time": f"({BASE_US} + {mod(f'{i} * 2654435761', str(SPAN_S))} * 1000000)",
        "provider": arr(PROVIDERS, m),
        "model": arr(MODELS, m),
        "operation": "'chat'",
        "status": f"(CASE WHEN {mod(i, '50')} = 0 THEN 'error' ELSE 'success' END)",
        "input_tokens": inp,
        "cache_read_tokens": "0",
        "cache_write_tokens": "0",
        "cache_write_1h_tokens": "0",
        "output_tokens": out,
        "reasoning_tokens": "0",
        "total_tokens": f"({inp} + {out})",
        "usage_source": "'provider'",
        "input_cost": f"({inp} * 150000)",
        "cache_read_cost": "0",
        "cache_write_cost": "0",
        "output_cost": f"({out} * 600000)",
        "total_cost": f"({inp} * 150000 + {out} * 600000)",
        "currency": "'USD'",
        "subscriber_id": f"('cust-' || {pad(mod(f'{i} * 7919', '1000'))})",
        "environment": f"(CASE WHEN {mod(i, '2')} = 0 THEN 'prod' ELSE 'staging' END)",
        "integration": "'litellm'",
        "tags": "'[]'",
        "attributes": "'{}'",
    }


def postgres_fill(store: Any, n: int) -> None:
    def mod(a: str, b: str) -> str:
        return f"(({a})::bigint % {b})"

    def arr(values: tuple[str, ...], idx: str) -> str:
        return f"(ARRAY[{', '.join(repr(v) for v in values)}])[{idx} + 1]"

    def pad(x: str) -> str:
        return f"lpad({x}::text, 4, '0')"

    cols = _exprs("i", mod, arr, pad)
    from meterline.store import rollup as rollups

    with store.connection() as conn, conn.transaction():
        conn.execute(
            f"INSERT INTO events (id, stream, {', '.join(cols)}) SELECT md5(i::text)::uuid::text, false, "
            f"{', '.join(cols.values())} FROM generate_series(1::bigint, {int(n)}::bigint) AS i"
        )
        # the ids claimed as the store's insert claims them (store.event_ids)
        conn.execute("INSERT INTO event_ids (id) SELECT id FROM events ON CONFLICT DO NOTHING")
        for stmt in rollups.rebuild_statements(store.dialect):
            conn.execute(stmt)
    store.analyze()


def clickhouse_fill(store: Any, n: int) -> None:
    def mod(a: str, b: str) -> str:
        return f"(toInt64({a}) % {b})"

    def arr(values: tuple[str, ...], idx: str) -> str:
        return f"[{', '.join(repr(v) for v in values)}][{idx} + 1]"

    def pad(x: str) -> str:
        return f"leftPad(toString({x}), 4, '0')"

    cols = _exprs("(number + 1)", mod, arr, pad)
    chunk = 2_000_000  # keeps the engine's memory bounded on a small machine
    for lo in range(0, n, chunk):
        k = min(chunk, n - lo)
        store.command_clickhouse(
            f"INSERT INTO events (id, stream, {', '.join(cols)}) SELECT toString(generateUUIDv4(number)), 0, "
            f"{', '.join(cols.values())} FROM numbers({lo}, {k})"
        )
