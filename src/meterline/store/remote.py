"""``CollectorClient``: read a collector over HTTP (``meterline report --database http://…``).

Standard library only (it lives with the stores, below the server), so reading a collector needs no server
dependencies. Same read API as the
stores where it makes sense: ``usage``, ``events``, ``iter_events``, ``trace``, ``close``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from meterline.core.config import DestinationError
from meterline.core.errors import error_detail
from meterline.core.event import COST_FIELDS, UsageEvent, format_time
from meterline.store.query import QueryError, UsageQuery
from meterline.store.reads import EventPages


class CollectorClient(EventPages):
    def __init__(self, base_url: str, api_key: str | None = None, *, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout

    def _request(self, method: str, path: str, params: Sequence[tuple[str, str]] = (), body: Any = None) -> Any:
        url = self.base_url + path + ("?" + urllib.parse.urlencode(list(params)) if params else "")
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = error_detail(exc.read())
            if exc.code == 400:
                raise QueryError(detail) from None
            if exc.code == 404:
                raise LookupError(detail) from None
            raise DestinationError(f"{self.base_url} answered {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise DestinationError(f"cannot reach the collector at {self.base_url}: {exc}") from None

    def health(self) -> dict[str, Any]:
        """The collector's ``/healthz`` answer (no key needed); DestinationError when nothing answers."""
        doc = self._request("GET", "/healthz")
        return doc if isinstance(doc, dict) else {}

    def check_ingest_key(self) -> None:
        """DestinationError when the collector refuses this key for sending events (or none is set): posts an
        empty batch, which stores nothing."""
        try:
            self._request("POST", "/v1/events", body={"events": []})
        except QueryError:
            return  # past authentication: the empty batch itself was refused

    @staticmethod
    def _range(start: datetime | None, end: datetime | None) -> list[tuple[str, str]]:
        out = []
        if start is not None:
            out.append(("start", format_time(start)))
        if end is not None:
            out.append(("end", format_time(end)))
        return out

    @staticmethod
    def _filters(filters: Mapping[str, str | Sequence[str]] | None) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for dim, value in (filters or {}).items():
            values = [value] if isinstance(value, (str, bool)) else list(value)
            out += [(dim, str(v).lower() if isinstance(v, bool) else str(v)) for v in values]
        return out

    def usage(self, q: UsageQuery) -> list[dict[str, Any]]:
        q.validate()
        params = [("group_by", ",".join(q.group_by)), ("tz", q.tz)] if q.group_by else [("tz", q.tz)]
        if q.bucket:
            params.append(("bucket", q.bucket))
        params += self._range(q.start, q.end) + self._filters(q.filters)
        doc = self._request("GET", "/v1/usage", params)
        rows: list[dict[str, Any]] = doc["rows"]
        for r in rows:
            for c in COST_FIELDS:
                if r.get(c) is not None:
                    r[c] = Decimal(r[c])
            if "bucket" in r:
                r["bucket"] = datetime.fromisoformat(r["bucket"])
        return rows

    def events(
        self,
        *,
        filters: Mapping[str, str | Sequence[str]] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> tuple[list[UsageEvent], str | None]:
        params = [("limit", str(limit)), *self._range(start, end), *self._filters(filters)]
        if cursor:
            params.append(("cursor", cursor))
        doc = self._request("GET", "/v1/events", params)
        return [UsageEvent.from_wire(e) for e in doc["events"]], doc.get("next_cursor")

    def trace(self, trace_id: str) -> list[UsageEvent]:
        try:
            doc = self._request("GET", f"/v1/traces/{urllib.parse.quote(trace_id, safe='')}")
        except LookupError:
            return []
        return [UsageEvent.from_wire(e) for e in doc["events"]]

    def count(self) -> int:
        """How many events the collector holds (``meterline doctor``)."""
        rows = self.usage(UsageQuery())
        return int(rows[0]["requests"]) if rows else 0

    # -- keys (admin) ---------------------------------------------------------------------------
    def create_key(
        self, scope: str, name: str | None = None, *, style: str = "meterline"
    ) -> tuple[str, dict[str, Any]]:
        doc = self._request("POST", "/v1/keys", body={"scope": scope, "name": name, "style": style})
        return str(doc.pop("key")), doc

    def list_keys(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._request("GET", "/v1/keys")
        return result

    def revoke_key(self, key_id: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self._request("DELETE", f"/v1/keys/{urllib.parse.quote(key_id, safe='')}")
        except LookupError:
            return None
        return result

    def close(self) -> None:
        pass
