"""The read API every event store shares (SQLite, PostgreSQL) and the paging the collector client shares.

Subclasses supply ``_fetch(sql, params) -> (columns, rows)``, ``execute``, ``fetch`` and a ``dialect``; the SQL
itself comes from :mod:`meterline.store.query` and :mod:`meterline.store.rollup`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from meterline.core.event import UsageEvent
from meterline.store import query as queries
from meterline.store import rollup as rollups
from meterline.store.schema import COLUMN_NAMES, row_to_event

_START = COLUMN_NAMES.index("start_time")


class EventPages:
    """``iter_events`` and ``trace`` on top of a cursor-paged ``events``."""

    def events(
        self,
        *,
        filters: Mapping[str, str | Sequence[str]] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> tuple[list[UsageEvent], str | None]:
        raise NotImplementedError

    def iter_events(
        self,
        *,
        filters: Mapping[str, str | Sequence[str]] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        page_size: int = 1000,
    ) -> Iterator[UsageEvent]:
        cursor: str | None = None
        while True:
            page, cursor = self.events(filters=filters, start=start, end=end, cursor=cursor, limit=page_size)
            yield from page
            if cursor is None:
                return

    def trace(self, trace_id: str) -> list[UsageEvent]:
        return list(self.iter_events(filters={"trace_id": trace_id}))


class SQLReads(EventPages):
    dialect: queries.Dialect
    _rollup_ready: bool = True  # the daily rollup is complete and may answer usage queries

    def _fetch(self, sql: str, params: Sequence[Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
        raise NotImplementedError

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        raise NotImplementedError

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    @property
    def read_dialect(self) -> queries.Dialect:
        """The dialect of the event reads (ClickHouse's store keeps ``dialect`` for its metadata SQL)."""
        return self.dialect

    def read(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], list[tuple[Any, ...]]]:
        """(column names, rows) of one query in ``read_dialect``, on the events' database (listings)."""
        return self._fetch(sql, params)

    def usage(self, q: queries.UsageQuery) -> list[dict[str, Any]]:
        q.validate()
        dialect = self.read_dialect
        dim = rollups.usable(q) if self._rollup_ready else None
        if dim is not None:  # answered from the daily rollup
            sql, params, plan = rollups.usage_sql(q, dim, dialect)
            cols, rows = self._fetch(sql, params)
            if not rows:  # an empty result may come without column names (ClickHouse)
                return []
            return queries.shape_usage_rows(q, cols, rollups.decode_rows(q, cols, rows), plan)
        sql, params, plan = queries.usage_sql(q, dialect)
        cols, rows = self._fetch(sql, params)
        return queries.shape_usage_rows(q, cols, rows, plan)

    def events(
        self,
        *,
        filters: Mapping[str, str | Sequence[str]] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> tuple[list[UsageEvent], str | None]:
        """A page of events in time order and the cursor of the next page (None at the end)."""
        sql, params = queries.events_sql(
            self.read_dialect, filters=filters, start=start, end=end, cursor=cursor, limit=limit
        )
        _, rows = self._fetch(sql, params)
        next_cursor = None
        if len(rows) == limit:
            last = rows[-1]
            next_cursor = queries.encode_cursor(int(last[_START]), str(last[0]))
        page = [row_to_event(r) for r in rows]
        from meterline.store.content import attach

        attach(self, page)  # captured content, kept in its own table
        return page, next_cursor

    def count(self) -> int:
        _, rows = self._fetch(f"SELECT COUNT(*) FROM {self.read_dialect.events_from}", ())
        return int(rows[0][0])
