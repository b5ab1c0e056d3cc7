"""A local fake of the OpenAI, Anthropic and Bedrock runtime HTTP APIs, for tests, demos and benchmarks.

Standard library only. The real SDKs (openai, anthropic, boto3/botocore) parse its answers, streams
included. Usage is set in meterline's additive terms and rendered in each provider's own shape; without
an override it is deterministic (see :func:`meterline.testing.default_usage`):

* ``input``  = ceil(characters of all request text / 4) (system, message contents, prompt, input);
* ``output`` = number of whitespace-separated words of the reply text;
* cache and reasoning counts 0.

Per-request overrides by header: ``x-fake-usage`` (JSON object with set_usage's keys),
``x-fake-tool-use: 1``, ``x-fake-stop: max_tokens|stop_sequence``, ``x-fake-status: 503``,
``x-fake-reply-words: N`` (a reply of N words, streamed as N chunks).

Run standalone: ``python -m meterline.testing.fake_provider --port 8999``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from meterline.testing import _anthropic, _bedrock, _openai, _responses
from meterline.testing._call import Call
from meterline.testing._state import (
    STOP_VALUES,
    Failure,
    RecordedRequest,
    Reply,
    State,
    StreamFailure,
    default_usage,
    usage_from_mapping,
)

_OPENAI_ROUTES = {
    "chat/completions": _openai.chat,
    "completions": _openai.completion,
    "embeddings": _openai.embeddings,
    "responses": _responses.responses,
}
_BEDROCK = re.compile(r"^/model/(?P<model>.+)/(?P<op>invoke|invoke-with-response-stream|converse|converse-stream)$")
_AZURE = re.compile(r"^/openai/deployments/(?P<deployment>[^/]+)/(?P<op>chat/completions|completions|embeddings)$")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    state: State

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients dropping keep-alive or abandoned streams are normal here; report anything else.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: benchmarks measure the client, not connection set-up
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        state = self.server.state
        raw_path, _, query = self.path.partition("?")
        headers = {k.lower(): v for k, v in self.headers.items()}
        recorded = state.record(self.command, self.path, headers, self._read_body())
        family = _family(raw_path)
        try:
            call = _make_call(self, state, raw_path, query, headers, recorded)
        except ValueError as exc:
            _send_error(self, family, 400, str(exc), None, None)
            return
        forced = headers.get("x-fake-status")
        if forced:
            _send_error(self, family, int(forced), f"forced by x-fake-status: {forced}", None, call)
            return
        failure = state.take_failure(self.path)
        if failure is not None:
            message = f"fake failure (status {failure.status})"
            _send_error(self, family, failure.status, message, failure, call)
            return
        _dispatch(self, family, raw_path, call)


def _family(path: str) -> str:
    if path.startswith("/model/"):
        return "bedrock"
    if path.startswith("/v1/messages") or path.startswith("/messages"):
        return "anthropic"
    return "openai"


def _make_call(
    handler: _Handler, state: State, path: str, query: str, headers: dict[str, str], req: RecordedRequest
) -> Call:
    with state.lock:
        usage_cfg, reply = state.usage, state.reply
    if "x-fake-reply-words" in headers:  # a reply of N words: N stream chunks (benchmarks of per-chunk cost)
        words = int(headers["x-fake-reply-words"])
        if not 1 <= words <= 100_000:
            raise ValueError(f"x-fake-reply-words must be 1..100000; got {words}")
        reply = Reply(" ".join(f"w{i}" for i in range(words)), reply.tool_use, reply.stop)
    if "x-fake-tool-use" in headers:
        reply = Reply(reply.text, headers["x-fake-tool-use"].strip().lower() in ("1", "true", "yes"), reply.stop)
    if "x-fake-stop" in headers:
        stop = headers["x-fake-stop"].strip() or None
        if stop not in STOP_VALUES:
            raise ValueError(f"x-fake-stop must be one of max_tokens, stop_sequence; got {stop!r}")
        reply = Reply(reply.text, reply.tool_use, stop)
    usage = default_usage(req.body, reply.text)
    if usage_cfg is not None:
        usage = usage_from_mapping(usage_cfg, usage)
    if "x-fake-usage" in headers:
        try:
            raw = json.loads(headers["x-fake-usage"])
        except ValueError as exc:
            raise ValueError(f"x-fake-usage is not valid JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise ValueError("x-fake-usage must be a JSON object")
        usage = usage_from_mapping(raw, usage)
    return Call(handler, state, path, query, headers, req.body, usage, reply)


def _send_error(
    handler: _Handler, family: str, status: int, message: str, failure: Failure | None, call: Call | None
) -> None:
    headers: dict[str, str] = {}
    if failure is not None and failure.retry_after is not None:
        ra = failure.retry_after
        headers["retry-after"] = str(int(ra)) if float(ra).is_integer() else str(ra)
    body: Any
    if failure is not None and failure.body is not None:
        body = failure.body
    elif family == "anthropic":
        body = _anthropic.error_body(status, message)
    elif family == "bedrock":
        body = {"message": message}
    else:
        body = _openai.error_body(status, message)
    if family == "bedrock":
        headers["x-amzn-ErrorType"] = _bedrock.error_type(status)
        headers["x-amzn-RequestId"] = "fake-request-id"
    elif family == "anthropic":
        headers["request-id"] = call.request_id if call else "req_fake"
    else:
        headers["x-request-id"] = call.request_id if call else "req_fake"
    if call is not None:
        headers.update(call.extra_headers)
    payload = (
        body if isinstance(body, bytes) else (body.encode() if isinstance(body, str) else json.dumps(body).encode())
    )
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(payload)))
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(payload)
    handler.wfile.flush()


def _dispatch(handler: _Handler, family: str, path: str, call: Call) -> None:
    if family == "bedrock":
        match = _BEDROCK.match(path)
        if match:
            _bedrock.handle(call, unquote(match["model"]), match["op"])
            return
    elif family == "anthropic":
        if path.endswith("/count_tokens"):
            _anthropic.count_tokens(call)
        else:
            _anthropic.messages(call)
        return
    else:
        azure = _AZURE.match(path)
        if azure:
            call.body.setdefault("model", azure["deployment"])
            _OPENAI_ROUTES[azure["op"]](call)
            return
        route = path.removeprefix("/v1").strip("/")
        if route == "models" and handler.command == "GET":
            _openai.models(call)
            return
        if route in _OPENAI_ROUTES and handler.command == "POST":
            _OPENAI_ROUTES[route](call)
            return
    _send_error(handler, family, 404, f"no fake route for {handler.command} {path}", None, call)


class FakeProvider:
    """The fake server; a context manager (or ``start()``/``stop()``). See the module docstring."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host, self._port = host, port
        self._state = State()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> FakeProvider:
        if self._server is None:
            server = _Server((self._host, self._port), _Handler)
            server.state = self._state
            self._server = server
            self._thread = threading.Thread(target=server.serve_forever, name="meterline-fake-provider", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses -----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeProvider is not started (use start() or a with block)")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    @property
    def bedrock_endpoint_url(self) -> str:
        return self.url

    # -- recorded traffic and behaviour --------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        with self._state.lock:
            return list(self._state.requests)

    def clear(self) -> None:
        self._state.reset()

    def set_usage(
        self,
        input: int | None = None,
        output: int | None = None,
        cache_read: int = 0,
        cache_write: int = 0,
        cache_write_1h: int = 0,
        reasoning: int = 0,
    ) -> None:
        """Usage for every following request (``None`` keeps the default count for that field)."""
        raw = {"input": input, "output": output, "cache_read": cache_read, "cache_write": cache_write}
        raw |= {"cache_write_1h": cache_write_1h, "reasoning": reasoning}
        usage_from_mapping(raw, default_usage({}))  # validate now, naming the bad field
        if cache_write_1h > cache_write:
            raise ValueError(f"cache_write_1h ({cache_write_1h}) must not exceed cache_write ({cache_write})")
        with self._state.lock:
            self._state.usage = raw

    def set_reply(self, text: str | None = None, tool_use: bool = False, stop: str | None = None) -> None:
        if stop not in STOP_VALUES:
            raise ValueError(f"stop must be None, 'max_tokens' or 'stop_sequence'; got {stop!r}")
        reply = Reply(text, tool_use, stop) if text is not None else Reply(tool_use=tool_use, stop=stop)
        with self._state.lock:
            self._state.reply = reply

    def fail_next(
        self,
        status: int = 500,
        times: int = 1,
        body: Any = None,
        retry_after: float | None = None,
        path_contains: str | None = None,
    ) -> None:
        """The next ``times`` requests (whose path contains ``path_contains``, if given) fail with ``status``
        in the provider's error shape (or ``body`` verbatim)."""
        if times < 1:
            raise ValueError(f"times must be >= 1, got {times}")
        with self._state.lock:
            self._state.failures.append(Failure(status, times, body, retry_after, path_contains))

    def fail_stream_after(self, n_events: int, times: int = 1, mode: str = "disconnect") -> None:
        """The next ``times`` streams stop after ``n_events`` events: the connection drops (``disconnect``)
        or an error event is sent (``error_event``: Anthropic SSE error, OpenAI error chunk, Bedrock
        modelStreamErrorException)."""
        if mode not in ("disconnect", "error_event"):
            raise ValueError(f"mode must be 'disconnect' or 'error_event', got {mode!r}")
        if n_events < 0 or times < 1:
            raise ValueError(f"n_events must be >= 0 and times >= 1 (got {n_events}, {times})")
        with self._state.lock:
            self._state.stream_failures.append(StreamFailure(n_events, times, mode))

    def delay(self, seconds: float, first_token: float | None = None, between_events: float = 0.0) -> None:
        """Wait ``seconds`` before a JSON response; before a stream's first event wait ``first_token``
        (default: ``seconds``), and ``between_events`` between a stream's events."""
        with self._state.lock:
            self._state.delay_s, self._state.first_token_s = seconds, first_token
            self._state.between_events_s = between_events


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="meterline fake OpenAI/Anthropic/Bedrock provider")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8999)
    args = parser.parse_args(argv)
    fake = FakeProvider(args.host, args.port).start()
    print(fake.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
    return 0
