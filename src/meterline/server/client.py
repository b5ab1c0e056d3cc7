"""Moved to :mod:`meterline.store.remote` (standard library only, below the server); this name stays."""

from __future__ import annotations

from meterline.store.remote import CollectorClient

__all__ = ["CollectorClient"]
