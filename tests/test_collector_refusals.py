"""Refusals that used to be 500s or FastAPI's generic body (the hardening issue):

- ``GET /v1/usage?group_by=model,model,…`` answered 500 from ~1,700 repeats on PostgreSQL (1,999 on SQLite):
  a dimension named twice is a 400 naming it, and more than ``MAX_GROUP_BY`` dimensions a 400 saying the bound.
- 401/403 on the compatible-ingest routes were FastAPI's ``{"detail": …}``: they now use each client's own
  error format, like the 400s of those routes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from collector_support import ThreadCollector, request, wire_event
from interop_support import Collector, collector_fixture  # noqa: F401 - fixture
from meterline.store import keys as key_store
from meterline.store.query import MAX_GROUP_BY


@pytest.fixture
def usage_collector(database: str) -> Iterator[tuple[str, str]]:
    with ThreadCollector(database=database) as c:
        key, _ = key_store.create_key(c.app.state.writer, "admin")
        status, _ = request(
            c.url + "/v1/events", "POST", {"events": [wire_event(), wire_event(model="gpt-4o")]}, key=key
        )
        assert status == 200
        yield c.url, key


@pytest.mark.parametrize("repeats", [2, 1_700, 2_000])
def test_group_by_a_dimension_repeated_is_a_400(usage_collector: tuple[str, str], repeats: int) -> None:
    url, key = usage_collector
    status, body = request(f"{url}/v1/usage?group_by=" + ",".join(["model"] * repeats), key=key)
    assert status == 400, body
    if repeats <= MAX_GROUP_BY:
        assert body["detail"] == "group_by: dimension 'model' is named twice; name each dimension once"
    else:
        assert body["detail"] == f"group_by: at most {MAX_GROUP_BY} dimensions; got {repeats}"
    # repeated as separate parameters, too
    status, body = request(f"{url}/v1/usage?group_by=provider&group_by=model&group_by=provider", key=key)
    assert (status, body["detail"]) == (400, "group_by: dimension 'provider' is named twice; name each dimension once")


def test_group_by_up_to_the_bound_of_distinct_dimensions_answers(usage_collector: tuple[str, str]) -> None:
    url, key = usage_collector
    dims = ["model", "provider", "operation", "status", "stream", "environment", "team_id", "agent", "region"]
    dims.append("subscriber_id")
    assert len(dims) == MAX_GROUP_BY
    status, body = request(f"{url}/v1/usage?group_by={','.join(dims)}", key=key)
    assert status == 200, body
    assert body["group_by"] == dims and sorted(r["model"] for r in body["rows"]) == ["gpt-4o", "gpt-4o-mini"]
    status, body = request(f"{url}/v1/usage?group_by={','.join([*dims, 'product_id'])}", key=key)
    assert (status, body["detail"]) == (400, f"group_by: at most {MAX_GROUP_BY} dimensions; got {MAX_GROUP_BY + 1}")


# -- compatible ingest: 401/403 in each client's format ----------------------------------------------------------
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
ROUTES = [
    ("/meter/v2/ai/completions", {"transactionId": "t"}),
    ("/lago/api/v1/events", {"event": {}}),
    ("/lago/api/v1/events/batch", {"events": []}),
    ("/openmeter/api/v1/events", {}),
    ("/v1/traces", {}),
]


def _shape(path: str, status: int, body: Any) -> None:
    """``body`` is ``path``'s client's error body for ``status``, in that client's exact shape."""
    reason = {401: "Unauthorized", 403: "Forbidden"}[status]
    assert isinstance(body, dict), body
    message = body.get("message") or body.get("detail")
    assert isinstance(message, str) and message, body
    if path.startswith("/meter/"):  # Revenium: Spring's error body
        assert set(body) == {"timestamp", "status", "error", "message", "path"}, body
        assert TIMESTAMP.fullmatch(body["timestamp"]), body
        assert (body["status"], body["error"], body["path"]) == (status, reason, path)
    elif path.startswith("/lago/"):  # Lago: {status, error[, code]} (+ meterline's explanation in message)
        want = {401: {"status", "error", "message"}, 403: {"status", "error", "code", "message"}}[status]
        assert set(body) == want, body
        assert (body["status"], body["error"]) == (status, reason)
        if status == 403:
            assert body["code"] == "insufficient_scope"
    elif path.startswith("/openmeter/"):  # OpenMeter: RFC 7807 problem+json
        assert body == {"type": "about:blank", "title": reason, "status": status, "detail": message}, body
    else:  # OTLP/HTTP: a google.rpc.Status in JSON
        assert body == {"code": status, "message": message}, body


@pytest.mark.parametrize(("path", "payload"), ROUTES)
def test_compatible_routes_answer_401_and_403_in_their_clients_format(
    collector: Collector, path: str, payload: Any
) -> None:
    url = f"{collector.url}{path}"
    for headers in ({}, {"Authorization": "Bearer ml_i_not-a-real-key"}, {"x-api-key": "hak_i_unknown"}):
        status, body = request(url, "POST", payload, headers=headers)
        assert status == 401, body
        _shape(path, 401, body)
    status, body = request(url, "POST", payload, headers={"Authorization": "Bearer ml_i_not-a-real-key"})
    assert "unknown or revoked API key" in (body.get("message") or body.get("detail"))
    read_key, _ = key_store.create_key(collector.tc.app.state.writer, "read")
    status, body = request(url, "POST", payload, key=read_key)
    assert status == 403, body
    _shape(path, 403, body)
    assert "scope 'read'" in (body.get("message") or body.get("detail"))


def test_compatible_401_keeps_www_authenticate_and_content_types(collector: Collector) -> None:
    import urllib.error
    import urllib.request

    for path, ctype in (
        ("/openmeter/api/v1/events", "application/problem+json"),
        ("/meter/v2/ai/completions", "application/json"),
        ("/v1/traces", "application/json"),
    ):
        req = urllib.request.Request(f"{collector.url}{path}", data=b"{}", method="POST")
        req.add_header("Content-Type", "application/json")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=10)
        assert err.value.code == 401
        assert err.value.headers["WWW-Authenticate"] == "Bearer"
        assert err.value.headers["Content-Type"].startswith(ctype)
    # OTLP protobuf clients get a protobuf google.rpc.Status
    pytest.importorskip("google.rpc.status_pb2")
    from google.rpc.status_pb2 import Status

    req = urllib.request.Request(f"{collector.url}/v1/traces", data=b"", method="POST")
    req.add_header("Content-Type", "application/x-protobuf")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 401 and err.value.headers["Content-Type"] == "application/x-protobuf"
    status = Status.FromString(err.value.read())
    assert status.code == 401 and "missing API key" in status.message


def test_the_native_api_keeps_detail_bodies(collector: Collector) -> None:
    status, body = request(f"{collector.url}/v1/events", "POST", {"events": []})
    assert status == 401 and set(body) == {"detail"}
