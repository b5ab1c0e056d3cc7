"""Schemathesis over every operation of the collector's OpenAPI schema, on SQLite and PostgreSQL, against
a real collector over HTTP: no 5xx, every status and body as declared, 405 answers carry ``Allow``.

Bounded for CI time (``MAX_EXAMPLES`` per operation, about a minute for both stores); raise it locally
with ``METERLINE_SCHEMATHESIS_EXAMPLES=300``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

if os.environ.get("CI", "").lower() == "true":
    import schemathesis  # CI installs [dev]: a missing schemathesis is a failure, not a skip
else:
    schemathesis = pytest.importorskip("schemathesis", reason="not installed (pip install 'meterline[dev]')")
from hypothesis import HealthCheck, settings
from schemathesis import checks

from collector_support import ThreadCollector
from meterline.store import keys as key_store

MAX_EXAMPLES = int(os.environ.get("METERLINE_SCHEMATHESIS_EXAMPLES", "25"))
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
    checks.unsupported_method,  # 405 for a method the path does not have, with Allow listing those it has
    checks.allow_header_conformance,
]


@pytest.fixture
def collector(database: str) -> Iterator[ThreadCollector]:
    with ThreadCollector(database=database, max_batch_events=200, max_body_bytes=1_000_000) as c:
        c.admin_key = key_store.create_key(c.app.state.writer, "admin", "schemathesis")[0]  # type: ignore[attr-defined]
        yield c


@pytest.fixture
def api_schema(collector: ThreadCollector) -> Any:
    schema = schemathesis.openapi.from_url(collector.url + "/openapi.json")
    schema.config.base_url = collector.url
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_every_operation_keeps_its_contract(case: Any, collector: ThreadCollector) -> None:
    headers = {"Authorization": f"Bearer {collector.admin_key}"}  # type: ignore[attr-defined]
    case.call_and_validate(base_url=collector.url, headers=headers, checks=CHECKS)
