"""A hand-made corpus of hostile requests for every collector route (tests/test_hostile_corpus.py).

Each case is (name, method, path, body bytes or None, extra headers). Bodies are raw bytes so the corpus
can hold what no JSON encoder would produce (invalid UTF-8, lone surrogates as escapes, 100,000-deep
nesting, truncated gzip). Paths are sent as written (percent-escapes included).
"""

from __future__ import annotations

import base64
import gzip
import json
import uuid
from typing import Any

Case = tuple[str, str, str, bytes | None, dict[str, str]]

GOOD = {"provider": "openai", "model": "gpt-4o-mini", "start_time": "2026-11-02T10:00:00Z", "input_tokens": 10}


def ev(**fields: Any) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), **GOOD, **fields}


def js(value: Any) -> bytes:
    return json.dumps(value).encode()


def batch(*events: Any) -> bytes:
    return js({"events": list(events)})


def deep(depth: int, open_: str = "[", close: str = "]", inner: str = "1") -> bytes:
    return (open_ * depth + inner + close * depth).encode()


def deep_obj(depth: int) -> bytes:
    return ('{"a":' * depth + "1" + "}" * depth).encode()


def cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8", "surrogatepass")).decode().rstrip("=")


# -- event field values, each sent in a batch with a good event (which must be stored) --------------
HOSTILE_FIELDS: list[dict[str, Any]] = [
    {"start_time": 1e20},
    {"start_time": -1e20},
    {"start_time": 1e308},
    {"start_time": "NaN"},
    {"start_time": "0001-01-01T00:00:00Z"},
    {"start_time": "0001-01-01T00:00:00+05:00"},
    {"start_time": "9999-12-31T23:59:59-05:00"},
    {"start_time": "9999-12-31T23:59:59Z"},
    {"start_time": "2026-13-45T99:99:99Z"},
    {"start_time": "x" * 100_000},
    {"start_time": True},
    {"start_time": [2026]},
    {"end_time": "9999-12-31T23:59:59.999999+14:00"},
    {"end_time": "1900-01-01T00:00:00Z"},
    {"input_cost": "1e30"},
    {"input_cost": "1e999999999"},
    {"input_cost": "-1e-999999999"},
    {"input_cost": "Infinity"},
    {"input_cost": "sNaN"},
    {"input_cost": "0x10"},
    {"input_cost": "1" * 5000},
    {"input_cost": 1e30},
    {"input_cost": 10**40},
    {"input_cost": {"amount": 1}},
    {"total_cost": "9000000.000000000001"},
    {"output_cost": "0.0000000000001"},
    {"input_cost": "5000000", "output_cost": "5000000"},
    {"input_tokens": 2**62},
    {"input_tokens": 2**63},
    {"input_tokens": 2**64 + 1},
    {"input_tokens": -(2**63) - 1},
    {"output_tokens": 10**4000},
    {"input_tokens": 1.5},
    {"input_tokens": "10"},
    {"total_tokens": 2**70},
    {"reasoning_tokens": 5, "output_tokens": 1},
    {"retry_number": 2**70},
    {"retry_number": -(2**70)},
    {"fallback_depth": 2**63},
    {"schema_version": 2**70},
    {"duration_ms": 1e308},
    {"duration_ms": -1e308},
    {"duration_ms": "fast"},
    {"time_to_first_token_ms": 1e300},
    {"response_quality_score": 1e308},
    {"response_quality_score": -1},
    {"subscriber_id": "\ud800"},
    {"subscriber_id": "ok\udfffok"},
    {"subscriber_id": "nul\x00byte"},
    {"subscriber_id": "x" * 2_000_000},
    {"model": "\x00"},
    {"provider": "\ud83d"},
    {"trace_id": "\x00" * 10},
    {"error_message": "e" * 100_000},
    {"output_text": "\x00"},
    {"output_text": "o" * 2_000_000},
    {"input_messages": [{"role": "user", "content": "\x00"}]},
    {"input_messages": [{"role": "user", "content": "\ud800"}]},
    {"input_messages": [{"\ud800": 1}]},
    {"input_messages": [{"content": "c" * 2_000_000}]},
    {"input_messages": 2**100},
    {"tags": ["\x00"]},
    {"tags": ["t"] * 1000},
    {"tags": "not-a-list"},
    {"attributes": {"\x00": 1}},
    {"attributes": {"k": "\ud800"}},
    {"attributes": {"k": 2**100}},
    {"attributes": {"k": {"nested": 1}}},
    {"attributes": {f"k{i}": i for i in range(1000)}},
    {"attributes": [1, 2]},
    {"id": "\x00"},
    {"id": "{" + "0" * 32 + "}"},
    {"id": "x" * 100_000},
    {"id": 12345},
    {"id": None},
    {"operation": "\ud800"},
    {"status": "bogus"},
    {"cache_hit": "yes"},
    {"stream": 1},
    {"\ud800": 1},
    {"\x00": 1},
    {"x" * 10_000: 1},
]


def _raw_event_with(fragment: str) -> bytes:
    """An event whose JSON text carries ``fragment`` verbatim (lone surrogate escapes, invalid numbers)."""
    base = json.dumps(ev())[:-1]
    return ('{"events": [' + base + ", " + fragment + "}]}").encode()


def ingest_cases() -> list[Case]:
    cases: list[Case] = []
    for fields in HOSTILE_FIELDS:
        name = "ingest " + ",".join(k.encode("unicode_escape").decode()[:20] for k in fields)
        body = json.dumps({"events": [ev(**fields), ev()]}, allow_nan=True).encode("utf-8", "surrogatepass")
        cases.append((name, "POST", "/v1/events", body, {}))
    raw = [
        ("lone surrogate escape", '"subscriber_id": "\\ud800"'),
        ("lone low surrogate escape", '"subscriber_id": "\\udfff\\udfff"'),
        ("NUL escape", '"subscriber_id": "\\u0000"'),
        ("NaN literal", '"duration_ms": NaN'),
        ("Infinity literal", '"duration_ms": Infinity'),
        ("huge exponent", '"duration_ms": 1e999999'),
        ("5000-digit int", '"input_tokens": ' + "9" * 5000),
        ("surrogate key", '"\\ud800": 1'),
        ("duplicate key", '"input_tokens": 1, "input_tokens": 2'),
        ("deep input_messages", '"input_messages": ' + deep(5000).decode()),
        ("deep attributes", '"attributes": ' + deep_obj(5000).decode()),
    ]
    cases += [(f"ingest raw {n}", "POST", "/v1/events", _raw_event_with(f), {}) for n, f in raw]
    whole = [
        ("deep array 1000", deep(1000)),
        ("deep array 100000", deep(100_000)),
        ("deep object 1000", deep_obj(1000)),
        ("deep events", b'{"events": ' + deep(3000) + b"}"),
        ("empty body", b""),
        ("not json", b"hello"),
        ("invalid utf-8", b'{"events": ["\xff\xfe"]}'),
        ("utf-16 body", '{"events": []}'.encode("utf-16")),
        ("null", b"null"),
        ("true", b"true"),
        ("number", b"1e999"),
        ("string", b'"events"'),
        ("events null", b'{"events": null}'),
        ("events object", b'{"events": {"a": 1}}'),
        ("events string", b'{"events": "x"}'),
        ("events of numbers", b'{"events": [1, 2.5, -1e308]}'),
        ("events of nulls", b'{"events": [null, null]}'),
        ("events of arrays", b'{"events": [[1], []]}'),
        ("events of strings", b'{"events": ["\\ud800", "\\u0000"]}'),
        ("bare array", js([ev(), ev()])),
        ("empty events", b'{"events": []}'),
        ("extra top-level keys", js({"events": [ev()], "other": 1})),
        ("no events key", js({"evnts": [ev()]})),
        ("too many events", js({"events": [ev() for _ in range(600)]})),
        ("same id twice", batch(*(lambda e: [e, e])(ev()))),
        ("trailing garbage", js({"events": []}) + b"garbage"),
        ("BOM", b"\xef\xbb\xbf" + js({"events": [ev()]})),
    ]
    cases += [(f"ingest {n}", "POST", "/v1/events", b, {}) for n, b in whole]
    gz = gzip.compress(js({"events": [ev()]}))
    cases += [
        ("ingest gzip ok", "POST", "/v1/events", gz, {"Content-Encoding": "gzip"}),
        ("ingest gzip truncated", "POST", "/v1/events", gz[:-10], {"Content-Encoding": "gzip"}),
        ("ingest gzip garbage", "POST", "/v1/events", b"\x1f\x8bnot gzip at all", {"Content-Encoding": "gzip"}),
        ("ingest gzip bomb", "POST", "/v1/events", gzip.compress(b" " * 50_000_000), {"Content-Encoding": "gzip"}),
        ("ingest deflate garbage", "POST", "/v1/events", b"xx", {"Content-Encoding": "deflate"}),
        ("ingest br", "POST", "/v1/events", js({"events": []}), {"Content-Encoding": "br"}),
        ("ingest encoding junk", "POST", "/v1/events", js({"events": []}), {"Content-Encoding": "gzip, gzip, x"}),
        ("ingest huge content-length", "POST", "/v1/events", b"{}", {"Content-Length-Override": "99999999999999"}),
        ("ingest text/plain", "POST", "/v1/events", batch(ev()), {"Content-Type": "text/plain"}),
        ("ingest form", "POST", "/v1/events", b"a=1&b=2", {"Content-Type": "application/x-www-form-urlencoded"}),
        ("ingest too large", "POST", "/v1/events", b'{"events": [' + b" " * 3_000_000 + b"]}", {}),
    ]
    return cases


def query_cases() -> list[Case]:
    times = [
        "1e20", "NaN", "nan", "inf", "0001-01-01T00:00:00Z", "0001-01-01T00:00:00%2B05:00",
        "9999-12-31T23:59:59-05:00", "9999-12-31T23:59:59%2B14:00", "2026-02-30", "%00", "x" * 5000,
        "2026-11-02T10:00:00Z", "1969-01-01", "2300-01-01", "%ED%A0%80", "2026-11-02T25:00",
    ]  # fmt: skip
    cases: list[Case] = []
    for t in times:
        for route in ("/v1/usage", "/v1/events"):
            cases.append((f"GET {route} start={t[:20]}", "GET", f"{route}?start={t}", None, {}))
            cases.append((f"GET {route} end={t[:20]}", "GET", f"{route}?end={t}", None, {}))
    usage = [
        "bucket=day&tz=Europe/Paris", "bucket=week&tz=Europe/Paris", "bucket=month&tz=Asia/Kolkata",
        "bucket=hour&tz=America/St_Johns", "bucket=day&tz=Pacific/Kiritimati", "bucket=day&tz=Etc/GMT%2B12",
        "bucket=year", "bucket=%00", "tz=%00", "tz=../../etc/passwd", "tz=" + "A" * 5000, "tz=Europe/Paris%00",
        "tz=%ED%A0%80", "tz=", "group_by=%00", "group_by=model,,,,", "group_by=" + ",".join(["model"] * 500),
        "group_by=id", "group_by=input_messages", "group_by=model%3BDROP%20TABLE%20events",
        "model=%00", "model=" + "m" * 5000, "model=%ED%A0%80", "subscriber_id=a%00b",
        "stream=maybe", "cache_hit=%00", "start=2026-11-03&end=2026-11-02", "start=2026-11-02&end=2026-11-02",
        "&".join(f"model=m{i}" for i in range(300)), "group_by=model&bucket=day&tz=Europe/Paris",
        "group_by=subscriber_id&bucket=month&tz=UTC", "start=2026-11-02T00:00:00Z&end=2026-11-03T00:00:00Z",
        "%ff=1", "model=%ff%fe", "start=2026-11-02T10:00:00.123456789Z",
    ]  # fmt: skip
    cases += [(f"GET /v1/usage?{q[:40]}", "GET", f"/v1/usage?{q}", None, {}) for q in usage]
    cursors = [
        cursor("1" * 30 + ":" + str(uuid.uuid4())),
        cursor("-" + "9" * 30 + ":x"),
        cursor("1:\x00"),
        cursor("\x00:\x00"),
        cursor("1:" + "x" * 1000),
        cursor("1:\ud800"),
        cursor("abc:def"),
        cursor(":"),
        cursor("9223372036854775808:x"),
        cursor("-9223372036854775809:x"),
        base64.urlsafe_b64encode(b"\xff\xfe:\x00").decode(),
        "%00",
        "!!!",
        "=" * 10,
        "A" * 10_000,
        "%ED%A0%80",
    ]
    cases += [(f"GET /v1/events cursor {i}", "GET", f"/v1/events?cursor={c}", None, {}) for i, c in enumerate(cursors)]
    limits = ["0", "-1", "1e3", "abc", "9" * 30, "1000000", "%00", "1.5", "", "2"]
    cases += [(f"GET /v1/events limit={n[:10]}", "GET", f"/v1/events?limit={n}", None, {}) for n in limits]
    cases += [
        ("GET /v1/events filters", "GET", "/v1/events?model=%00&subscriber_id=%ED%A0%80", None, {}),
        ("GET /v1/events unknown filter", "GET", "/v1/events?colour=red", None, {}),
    ]
    traces = ["%00", "x" * 5000, "%ED%A0%80", "a%2Fb", "..", "%20", "trace%00id", str(uuid.uuid4())]
    cases += [(f"GET /v1/traces/{t[:12]}", "GET", f"/v1/traces/{t}", None, {}) for t in traces]
    return cases


def budget_cases() -> list[Case]:
    def b(**fields: Any) -> dict[str, Any]:
        return {"name": "b" + uuid.uuid4().hex[:8], "scope": "subscriber", "scope_value": "acme",
                "limit_usd": "10", **fields}  # fmt: skip

    bodies: list[tuple[str, bytes]] = [
        ("limit 1e30", js(b(limit_usd="1e30"))),
        ("limit 1e999999999", js(b(limit_usd="1e999999999"))),
        ("limit NaN", js(b(limit_usd="NaN"))),
        ("limit sNaN", js(b(limit_usd="sNaN"))),
        ("limit Infinity", js(b(limit_usd="Infinity"))),
        ("limit -1", js(b(limit_usd="-1"))),
        ("limit 0", js(b(limit_usd="0"))),
        ("limit 1e-30", js(b(limit_usd="1e-30"))),
        ("limit 5000 digits", js(b(limit_usd="9" * 5000))),
        ("limit number", js(b(limit_usd=1e30))),
        ("limit null", js(b(limit_usd=None))),
        ("limit \\x00", js(b(limit_usd="\x00"))),
        ("scope_value NUL", js(b(scope_value="a\x00b"))),
        ("scope_value surrogate", js(b(scope_value="\ud800"))),
        ("scope_value huge", js(b(scope_value="s" * 100_000))),
        ("name NUL", js(b(name="n\x00"))),
        ("name surrogate", js(b(name="\ud800"))),
        ("name newline", js(b(name="abc\n"))),
        ("scope junk", js(b(scope="galaxy"))),
        ("period junk", js(b(period="\x00"))),
        (
            "thresholds inf",
            b'{"name": "t1", "scope": "team", "scope_value": "x", "limit_usd": "1", "thresholds": [1e308]}',
        ),
        ("thresholds huge", js(b(thresholds=[10**30]))),
        ("thresholds nested", js(b(thresholds=[[1]]))),
        ("thresholds many", js(b(thresholds=list(range(1, 5000))))),
        ("thresholds string", js(b(thresholds="50,x"))),
        ("webhook NUL", js(b(webhook_url="http://x/\x00"))),
        ("webhook ftp", js(b(webhook_url="ftp://x"))),
        ("webhook huge", js(b(webhook_url="http://" + "h" * 100_000))),
        ("hard string", js(b(hard="yes"))),
        ("deep body", deep_obj(5000)),
        ("deep array body", deep(100_000)),
        ("bare array", js([b()])),
        ("not json", b"not json"),
        ("empty", b""),
        ("invalid utf-8", b'{"name": "\xff"}'),
        ("surrogate escape", b'{"name": "\\ud800", "scope": "team", "scope_value": "\\udfff", "limit_usd": "1"}'),
        ("missing fields", b"{}"),
        ("ok", js(b())),
    ]
    cases: list[Case] = [(f"POST /v1/budgets {n}", "POST", "/v1/budgets", body, {}) for n, body in bodies]
    for ident in ("%00", "x" * 5000, "%ED%A0%80", "nope", "a%2Fb"):
        cases.append((f"GET /v1/budgets/{ident[:10]}", "GET", f"/v1/budgets/{ident}", None, {}))
        cases.append((f"DELETE /v1/budgets/{ident[:10]}", "DELETE", f"/v1/budgets/{ident}", None, {}))
    cases += [
        ("GET /v1/budgets", "GET", "/v1/budgets", None, {}),
        ("GET /v1/budgets/status", "GET", "/v1/budgets/status", None, {}),
        ("GET /v1/budgets/check", "GET", "/v1/budgets/check", None, {}),
    ]
    return cases


def key_cases() -> list[Case]:
    bodies = [
        ("scope junk", js({"scope": "god"})),
        ("scope NUL", js({"scope": "\x00"})),
        ("name NUL", js({"scope": "read", "name": "k\x00"})),
        ("name surrogate", b'{"scope": "read", "name": "\\ud800"}'),
        ("name huge", js({"scope": "read", "name": "n" * 1_000_000})),
        ("deep", deep_obj(3000)),
        ("array", js([{"scope": "read"}])),
        ("empty", b""),
        ("scope number", js({"scope": 1})),
        ("ok", js({"scope": "read", "name": "corpus"})),
    ]
    cases: list[Case] = [(f"POST /v1/keys {n}", "POST", "/v1/keys", body, {}) for n, body in bodies]
    for ident in ("%00", "x" * 5000, "%ED%A0%80", "nope"):
        cases.append((f"DELETE /v1/keys/{ident[:10]}", "DELETE", f"/v1/keys/{ident}", None, {}))
    cases.append(("GET /v1/keys", "GET", "/v1/keys", None, {}))
    return cases


def misc_cases() -> list[Case]:
    return [
        ("PUT /v1/events", "PUT", "/v1/events", b"{}", {}),
        ("PATCH /v1/usage", "PATCH", "/v1/usage", b"{}", {}),
        ("DELETE /v1/events", "DELETE", "/v1/events", None, {}),
        ("POST /v1/usage", "POST", "/v1/usage", b"{}", {}),
        ("GET unknown", "GET", "/v1/nothing", None, {}),
        ("GET %00 path", "GET", "/v1/%00", None, {}),
        ("GET long path", "GET", "/" + "p" * 8000, None, {}),
        ("GET /metrics", "GET", "/metrics", None, {}),
        ("GET /readyz", "GET", "/readyz", None, {}),
        ("GET /healthz", "GET", "/healthz", None, {}),
        ("GET /openapi.json", "GET", "/openapi.json", None, {}),
        ("no key", "GET", "/v1/usage", None, {"Authorization": ""}),
        ("bad key", "GET", "/v1/usage", None, {"Authorization": "Bearer nope"}),
        ("huge key", "GET", "/v1/usage", None, {"Authorization": "Bearer " + "k" * 20_000}),
        ("basic auth", "GET", "/v1/usage", None, {"Authorization": "Basic Zm9vOmJhcg=="}),
        ("latin-1 key", "GET", "/v1/usage", None, {"Authorization": "Bearer cl\xe9"}),
        ("x-api-key junk", "GET", "/v1/events", None, {"Authorization": "", "x-api-key": "\xff\xfe"}),
        ("key in query", "GET", "/v1/usage?api_key=secret", None, {}),
    ]


def all_cases() -> list[Case]:
    return [*ingest_cases(), *query_cases(), *budget_cases(), *key_cases(), *misc_cases()]
