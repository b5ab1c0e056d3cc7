"""ClickHouse sink: batches from the recorder straight into a ClickHouse store (server or embedded chdb)."""

from __future__ import annotations

from collections.abc import Sequence

from meterline.core.event import UsageEvent
from meterline.sdk.sinks.base import SinkError
from meterline.store.clickhouse import ClickHouseError, ClickHouseStore, describe


class ClickHouseSink:
    def __init__(self, destination: str) -> None:
        import clickhouse_connect  # noqa: F401 - a missing driver is a configuration error, said at init()

        self.destination = destination
        self._store: ClickHouseStore | None = None

    @property
    def description(self) -> str:
        return describe(self.destination)  # never a password

    def write(self, events: Sequence[UsageEvent]) -> int:
        try:
            if self._store is None:  # opened on first write, on the recorder's thread: init() does no I/O
                self._store = ClickHouseStore(self.destination)
            self._store.insert(events)
        except ClickHouseError as exc:  # cannot connect or open: may pass
            raise SinkError(str(exc), retryable=True) from exc
        except Exception as exc:
            from clickhouse_connect.driver.exceptions import OperationalError

            if isinstance(exc, OperationalError):  # the server is unreachable: retry or spool the batch
                raise SinkError(f"{self.description}: {exc}", retryable=True, data_fault=False) from exc
            # ClickHouse refused the statement: unclear whether one event's value is to blame, so the recorder
            # retries, then splits the batch and blames an event only when its batch-mates went through
            raise SinkError(f"{self.description}: {exc}", retryable=True, data_fault=None) from exc
        return 0

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
