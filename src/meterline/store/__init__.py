"""Event stores: the only place where SQL lives."""

from __future__ import annotations

from meterline.store.query import QueryError, UsageQuery
from meterline.store.sqlite import SQLiteStore

__all__ = ["QueryError", "SQLiteStore", "UsageQuery"]
