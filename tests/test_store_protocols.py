"""The typed store (``meterline.store.base``): each store opens its own transaction and says what it keeps, so code
above ``store/`` never asks which engine it is on; ``SQLStore`` has one home and its old import paths still work."""

from __future__ import annotations

from pathlib import Path

import pytest

from meterline.store import base, sql
from meterline.store.backend import open_stores


def test_sqlstore_is_defined_once_and_importable_from_its_old_places() -> None:
    from meterline.budgets.store import SQLStore as from_budgets
    from meterline.store.keys import SQLStore as from_keys
    from meterline.store.open import UsageReader

    assert from_budgets is from_keys is base.SQLStore
    assert UsageReader is base.UsageReader


def test_a_transaction_commits_or_rolls_back_through_the_store(any_database: str) -> None:
    writer, reader = open_stores(any_database, pool_size=1)
    try:
        writer.execute("CREATE TABLE IF NOT EXISTS proto_t (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
        with sql.transaction(writer) as tx:  # the old entry point: calls writer.transaction()
            tx.run("INSERT INTO proto_t (k, v) VALUES (?, ?)", ("a", "1"))
        with pytest.raises(RuntimeError), writer.transaction() as tx:
            tx.run("INSERT INTO proto_t (k, v) VALUES (?, ?)", ("b", "2"))
            raise RuntimeError("rolled back")
        assert writer.fetch("SELECT k, v FROM proto_t ORDER BY k") == [("a", "1")]
    finally:
        writer.close()
        if reader is not writer:
            reader.close()


def test_what_each_store_keeps(any_database: str) -> None:
    writer, reader = open_stores(any_database, pool_size=1)
    try:
        clickhouse = any_database.startswith("chdb://")
        assert writer.keeps_billing_rollup is not clickhouse  # ClickHouse: billing sums events FINAL
        assert writer.meta_apart is clickhouse  # ClickHouse: keys, budgets, billing… in its metadata database
        assert writer.read_dialect.split_sums is any_database.startswith("sqlite:")
        assert sql.on_clickhouse(writer) is clickhouse
    finally:
        writer.close()
        if reader is not writer:
            reader.close()


def test_listings_read_in_the_events_dialect(tmp_path: Path) -> None:
    writer, reader = open_stores(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        cols, rows = reader.read("SELECT COUNT(*) AS n FROM events", ())
        assert (cols, rows) == (["n"], [(0,)])
    finally:
        writer.close()
        reader.close()
