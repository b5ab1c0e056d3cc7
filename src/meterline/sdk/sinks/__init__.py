"""Sinks take priced batches from the recorder: SQLite (default), PostgreSQL, ClickHouse, HTTP collector."""

from __future__ import annotations

from meterline.core.config import DestinationError, destination_kind, sqlite_path
from meterline.sdk.sinks.base import Sink, SinkError


def sink_for(destination: str, *, api_key: str | None = None) -> Sink:
    """Build the sink for a destination string (see :mod:`meterline.core.config`)."""
    kind = destination_kind(destination)
    if kind == "sqlite":
        from meterline.sdk.sinks.sqlite import SQLiteSink

        return SQLiteSink(sqlite_path(destination))
    if kind == "postgresql":
        try:
            from meterline.sdk.sinks.postgres import PostgresSink
        except ImportError as exc:
            raise DestinationError(
                f"destination {destination!r} needs the PostgreSQL driver: pip install 'meterline[postgres]' ({exc})"
            ) from None
        sink: Sink = PostgresSink(destination)
        return sink
    if kind == "clickhouse":
        try:
            from meterline.sdk.sinks.clickhouse import ClickHouseSink
        except ImportError as exc:
            raise DestinationError(
                f"destination {destination!r} needs pip install 'meterline[clickhouse]' ({exc})"
            ) from None
        ch_sink: Sink = ClickHouseSink(destination)
        return ch_sink
    try:
        from meterline.sdk.sinks.http import HttpSink
    except ImportError as exc:
        raise DestinationError(f"destination {destination!r}: the HTTP sink is not available ({exc})") from None
    http_sink: Sink = HttpSink(destination, api_key=api_key)
    return http_sink


__all__ = ["Sink", "SinkError", "sink_for"]
