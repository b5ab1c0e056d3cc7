"""Budget counters shared by gateway processes: integer pico-USD in Redis, or in-process without Redis.

Two counters per budget and period: ``spent`` (settled real costs) and ``held`` (estimates reserved by
calls in flight). Keys: ``{prefix}:budget:{budget_id}:{period_start_us}:spent|held``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

logger = logging.getLogger("meterline")


class Counters(Protocol):
    shared: bool

    async def add(self, key: str, delta: int) -> int: ...

    async def get(self, key: str) -> int: ...

    async def init(self, key: str, value: int, ttl_s: int | None) -> None: ...

    async def close(self) -> None: ...


class LocalCounters:
    """Counters of this process only: with several proxy processes each enforces budgets alone."""

    shared = False

    def __init__(self) -> None:
        self._values: dict[str, int] = {}

    async def add(self, key: str, delta: int) -> int:
        value = self._values.get(key, 0) + delta  # no await in between: atomic on the event loop
        self._values[key] = value
        return value

    async def get(self, key: str) -> int:
        return self._values.get(key, 0)

    async def init(self, key: str, value: int, ttl_s: int | None) -> None:
        self._values.setdefault(key, value)

    async def close(self) -> None:
        return None


class RedisCounters:
    shared = True

    def __init__(self, url: str, prefix: str = "meterline") -> None:
        import redis.asyncio as aioredis

        self.prefix = prefix
        self._redis: Any = aioredis.from_url(url)
        self._loop: asyncio.AbstractEventLoop | None = None

    def _key(self, key: str) -> str:
        return f"{self.prefix}:{key}"

    async def add(self, key: str, delta: int) -> int:
        return int(await self._redis.incrby(self._key(key), delta))

    async def get(self, key: str) -> int:
        value = await self._redis.get(self._key(key))
        return int(value) if value is not None else 0

    async def init(self, key: str, value: int, ttl_s: int | None) -> None:
        await self._redis.set(self._key(key), value, nx=True, ex=ttl_s)

    async def close(self) -> None:
        await self._redis.aclose()


def counters_from_url(url: str | None, prefix: str = "meterline") -> Counters:
    if url:
        return RedisCounters(url, prefix)
    logger.warning(
        "meterline gateway: no METERLINE_REDIS_URL, budget counters are in-process: "
        "each proxy process (worker) enforces budgets on its own spend only"
    )
    return LocalCounters()
