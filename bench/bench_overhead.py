"""Caller overhead on every path, side by side: bare vs meterline vs the revenium-python-sdk middleware.

    PYTHONPATH=src python bench/bench_overhead.py [--calls 300] [--rounds 5] [--no-revenium] [--paths a,b]

One local FakeProvider (OpenAI, Anthropic, Bedrock APIs) serves every call over real HTTP. Each side runs in
its own process, one after the other, against that same fake:

* meterline (capture_content off, then on): bare and metered blocks alternate (``instrument()`` /
  ``uninstrument()`` between blocks), so both see the same machine state;
* revenium-python-sdk 0.12 (installed in its own venv by this script, ``~/.cache/meterline-bench/revenium``): its
  middlewares patch at import and cannot be removed, so that process times every path bare first, then imports
  the middlewares and times them again. Its metering endpoint is a local stub that answers 200.

Per path: p50, p99 and mean per call (µs) bare and metered, the added time and the ratio; by default each call is
timed in CPU time of the caller's thread (``--clock thread``: preemption on a loaded machine and work on other
threads, such as meterline's recorder, do not count; ``--clock wall`` for perf_counter). Streams also give the
added cost per chunk from a 1,000-chunk reply, and a second table times each stream wrapper in isolation (1,000
of the SDK's own chunk objects through it vs the bare iterator). The Revenium stub counts the metering requests
each path produced ("not metered": it has no middleware for that path). Goals (issue 18): LiteLLM <= 20 µs
added p50; every SDK path <= 50 µs or <= 3 % added p50 (the larger); streams <= 0.2 µs per chunk; p99 added
<= 2x the p50 added.
Absolute times differ 3x between machines; compare the columns of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SRC = str(ROOT / "src")
REVENIUM_VENV = Path(os.environ.get("METERLINE_BENCH_REVENIUM_VENV", Path.home() / ".cache/meterline-bench/revenium"))
MSGS = [{"role": "user", "content": "What is the weather in Paris today?"}]
BEDROCK_MODEL = "us.anthropic.claude-3-5-sonnet-20240620-v1:0"
STREAMS = ("litellm stream", "anthropic stream", "openai chat stream", "boto3 converse_stream")
ALL_PATHS = (
    "litellm completion", "litellm acompletion", "litellm stream",
    "anthropic create", "anthropic stream", "anthropic async create",
    "openai chat", "openai responses", "openai chat stream",
    "boto3 invoke_model", "boto3 converse", "boto3 converse_stream",
)  # fmt: skip
LIBRARY = {"litellm": "litellm", "anthropic": "anthropic", "openai": "openai", "boto3": "bedrock"}


# -- replayed HTTP: the SDKs' calls without sockets ------------------------------------------------
def _replay_key(request: Any) -> tuple[Any, ...]:
    body = request.content or b""
    stream = b'"stream":true' in body or b'"stream": true' in body
    return request.method, request.url.path, stream, request.headers.get("x-fake-reply-words")


def _cached(status: int, headers: Any, body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    drop = (b"content-length", b"transfer-encoding", b"content-encoding", b"connection")
    return status, [(k, v) for k, v in headers.raw if k.lower() not in drop], body


def replay_transports(httpx: Any) -> tuple[Any, Any]:
    """Transports of the SDK's ``httpx`` module (``httpx`` or ``httpx2``) that send each distinct request to the
    fake provider once, then answer it from memory: the SDK still builds the request, parses the reply and
    (streams) decodes the server-sent events, with no socket, server thread or scheduler between bare and
    metered calls."""
    cache: dict[tuple[Any, ...], tuple[int, list[tuple[bytes, bytes]], bytes]] = {}

    class Replay(httpx.BaseTransport):  # type: ignore[misc,name-defined]
        real = httpx.HTTPTransport()

        def handle_request(self, request: Any) -> Any:
            key = _replay_key(request)
            if key not in cache:
                resp = self.real.handle_request(request)
                cache[key] = _cached(resp.status_code, resp.headers, resp.read())
                resp.close()
            status, headers, body = cache[key]
            return httpx.Response(status, headers=headers, content=body)

    class AsyncReplay(httpx.AsyncBaseTransport):  # type: ignore[misc,name-defined]
        real = httpx.AsyncHTTPTransport()

        async def handle_async_request(self, request: Any) -> Any:
            key = _replay_key(request)
            if key not in cache:
                resp = await self.real.handle_async_request(request)
                cache[key] = _cached(resp.status_code, resp.headers, await resp.aread())
                await resp.aclose()
            status, headers, body = cache[key]
            return httpx.Response(status, headers=headers, content=body)

    return Replay(), AsyncReplay()


# -- the calls, built once per process from the fake provider's URLs -----------------------------
def build_calls(urls: dict[str, str], long: bool = False, replay: bool = False) -> dict[str, Callable[[], Any]]:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import anthropic
    import boto3
    import litellm
    import openai
    from botocore.config import Config

    headers = {"x-fake-reply-words": "1000"} if long else {}  # one stream chunk per word: 1,000 chunks
    loop = asyncio.new_event_loop()
    http: dict[str, dict[str, Any]] = {"sync ant": {}, "async ant": {}, "sync oai": {}}
    if replay:  # each SDK with clients of its own httpx module (anthropic moved to httpx2)
        import anthropic._base_client as ant_base
        import openai._base_client as oai_base

        for sdk, base in (("ant", ant_base), ("oai", oai_base)):
            module = getattr(base, "httpx2", None) or base.httpx
            sync_t, async_t = replay_transports(module)
            http[f"sync {sdk}"] = {"http_client": module.Client(transport=sync_t)}
            http[f"async {sdk}"] = {"http_client": module.AsyncClient(transport=async_t)}
    ant = anthropic.Anthropic(base_url=urls["anthropic"], api_key="sk-bench", max_retries=0, default_headers=headers,
                              **http["sync ant"])  # fmt: skip
    aant = anthropic.AsyncAnthropic(base_url=urls["anthropic"], api_key="sk-bench", max_retries=0, **http["async ant"])
    oai = openai.OpenAI(base_url=urls["openai"], api_key="sk-bench", max_retries=0, default_headers=headers,
                        **http["sync oai"])  # fmt: skip
    br = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=urls["bedrock"],
                      config=Config(retries={"total_max_attempts": 1, "mode": "standard"}))  # fmt: skip
    if long:
        br.meta.events.register("before-sign.bedrock-runtime.*", lambda request, **_: request.headers.__setitem__(
            "x-fake-reply-words", "1000"))  # fmt: skip
    conv = [{"role": "user", "content": [{"text": "hello"}]}]
    invoke_body = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50, "messages": MSGS})
    lite = {"model": "openai/gpt-4o-mini", "api_base": urls["openai"], "api_key": "sk-bench", "messages": MSGS,
            "extra_headers": headers}  # fmt: skip
    if replay:  # LiteLLM's own in-process reply (its OpenAI route makes its own HTTP client)
        lite["mock_response"] = " ".join(["word"] * (1000 if long else 12))

    def lite_stream() -> None:
        for _ in litellm.completion(stream=True, **lite):
            pass

    def ant_stream() -> None:
        with ant.messages.stream(model="claude-haiku-4-5", max_tokens=50, messages=MSGS) as s:  # type: ignore[arg-type]
            for _ in s:
                pass

    def oai_stream() -> None:
        for _ in oai.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True):  # type: ignore[arg-type]
            pass

    def conv_stream() -> None:
        for _ in br.converse_stream(modelId=BEDROCK_MODEL, messages=conv)["stream"]:
            pass

    return {
        "litellm completion": lambda: litellm.completion(**lite),
        "litellm acompletion": lambda: loop.run_until_complete(litellm.acompletion(**lite)),
        "litellm stream": lite_stream,
        "anthropic create": lambda: ant.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=MSGS),  # type: ignore[arg-type]
        "anthropic stream": ant_stream,
        "anthropic async create": lambda: loop.run_until_complete(
            aant.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=MSGS)  # type: ignore[arg-type]
        ),
        "openai chat": lambda: oai.chat.completions.create(model="gpt-4o-mini", messages=MSGS),  # type: ignore[arg-type]
        "openai responses": lambda: oai.responses.create(model="gpt-4o-mini", input="What is the weather?"),
        "openai chat stream": oai_stream,
        "boto3 invoke_model": lambda: br.invoke_model(modelId=BEDROCK_MODEL, body=invoke_body),
        "boto3 converse": lambda: br.converse(modelId=BEDROCK_MODEL, messages=conv),
        "boto3 converse_stream": conv_stream,
    }


def long_calls(args: argparse.Namespace) -> int:
    """1,000-chunk streams per round: each is ~1,000x a short call, so a few give a steady per-chunk cost."""
    return max(4, args.calls // 50)


CLOCKS = {"thread": time.thread_time_ns, "wall": time.perf_counter_ns}
clock = CLOCKS["thread"]


def timed(call: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = clock()
        call()
        out.append((clock() - t0) / 1000.0)
    return out


# -- workers ----------------------------------------------------------------------------------
def worker_meterline(args: argparse.Namespace, urls: dict[str, str]) -> dict[str, Any]:
    import meterline
    from meterline.integrations import anthropic as m_ant
    from meterline.integrations import bedrock as m_br
    from meterline.integrations import litellm as m_lite
    from meterline.integrations import openai as m_oai

    mods = {"litellm": m_lite, "anthropic": m_ant, "openai": m_oai, "bedrock": m_br}
    home = tempfile.mkdtemp(prefix="meterline-bench-")
    meterline.init(destination=f"sqlite:///{home}/bench.db", spool_dir=f"{home}/spool",
                   capture_content=args.capture)  # fmt: skip
    out: dict[str, Any] = {}
    for long in (False, True):
        calls = build_calls(urls, long, args.transport == "replay")
        for path in args.paths:
            if long and path not in STREAMS:
                continue
            mod = mods[LIBRARY[path.split()[0]]]
            call, n = calls[path], (args.calls if not long else long_calls(args))
            timed(call, 5 if long else 20)
            mod.instrument()
            timed(call, 5 if long else 20)
            mod.uninstrument()
            bare: list[float] = []
            metered: list[float] = []
            for _ in range(args.rounds):
                bare += timed(call, n)
                mod.instrument()
                metered += timed(call, n)
                mod.uninstrument()
            out[path + (" x1000 chunks" if long else "")] = {"bare": bare, "metered": metered}
    flushed = meterline.flush(120)
    out["_events"] = {"written": meterline.stats().get("written", 0), "flushed": flushed}
    meterline.shutdown()
    return out


def worker_revenium(args: argparse.Namespace, urls: dict[str, str]) -> dict[str, Any]:
    import urllib.request

    bare: dict[str, list[float]] = {}
    sent: dict[str, int] = {}
    replay = args.transport == "replay"
    plans = [(False, build_calls(urls, False, replay)), (True, build_calls(urls, True, replay))]

    def stub_count() -> int:
        with urllib.request.urlopen(os.environ["REVENIUM_METERING_BASE_URL"] + "/count", timeout=10) as r:
            return int(r.read())

    def run_all(into: dict[str, list[float]], count: bool) -> None:
        for long, calls in plans:
            for path in args.paths:
                if long and path not in STREAMS:
                    continue
                n = (args.calls if not long else long_calls(args)) * args.rounds
                key = path + (" x1000 chunks" if long else "")
                timed(calls[path], 5 if long else 20)
                before = stub_count()
                into[key] = timed(calls[path], n)
                if count:
                    time.sleep(1.5)  # its metering requests go out from a background thread
                    sent[key] = stub_count() - before

    run_all(bare, False)
    import revenium_middleware.anthropic  # patches at import (the Anthropic SDK; no boto3 middleware exists)
    import revenium_middleware.litellm.client  # patches litellm.completion/acompletion
    import revenium_middleware.openai  # noqa: F401  # patches chat.completions and responses

    metered: dict[str, list[float]] = {}
    run_all(metered, True)
    return {k: {"bare": bare[k], "metered": metered[k], "meter_requests": sent[k]} for k in bare}


# -- per-chunk cost in isolation -----------------------------------------------------------------
def isolated_per_chunk(capture: bool) -> dict[str, float]:
    """µs a chunk that the stream wrappers add, without the network: 1,000 content chunks (the SDKs' own
    objects) through meterline's wrapper vs the bare iterator, thread CPU, best of 7. On a loaded machine this
    resolves 0.1 µs; the end-to-end 1,000-chunk rows above cannot (their noise is a few % of the stream)."""
    import timeit

    import litellm
    from anthropic.types import RawContentBlockDeltaEvent
    from openai.types.chat import ChatCompletionChunk

    from meterline.integrations import _anthropic_stream, _bedrock_stream
    from meterline.integrations._call import CallMeter
    from meterline.integrations._litellm_call import LiteLLMCall
    from meterline.integrations._openai_stream import StreamState
    from meterline.integrations._stream_meter import metered

    choice = {"index": 0, "delta": {"content": "word "}, "finish_reason": None}
    oai = ChatCompletionChunk.model_validate(
        {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini", "choices": [choice]}
    )
    ant = RawContentBlockDeltaEvent.model_validate(
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "word "}}
    )
    lite = litellm.ModelResponseStream(model="gpt-4o-mini", choices=[{"index": 0, "delta": {"content": "word "}}])

    class Message:  # what botocore's EventStream hands the wrapper: parsed headers, raw payload
        headers = {":message-type": "event", ":event-type": "contentBlockDelta", ":content-type": "application/json"}
        payload = b'{"contentBlockIndex":0,"delta":{"text":"word "},"p":"abcdefghijklmnopqrstuvwxyz"}'

    def meter(provider: str) -> CallMeter:
        m = CallMeter(provider=provider, model="m", integration=provider, stream=True)
        m.text_parts = [] if capture else None
        return m

    def sdk_wrapper(item: Any, on_item: Callable[[Any], bool], m: CallMeter) -> Callable[[], None]:
        items = [item] * 1000

        def run() -> None:
            m.text_parts = [] if capture else None
            for _ in metered(iter(items), m, on_item, lambda: None):
                pass

        return run

    o_meter, a_meter, b_meter = meter("openai"), meter("anthropic"), meter("bedrock")
    state = StreamState(o_meter, responses=False, hide_usage_chunk=True)
    call = LiteLLMCall("chat", "openai/gpt-4o-mini", True, {}, {})
    lite_items = [lite] * 1000

    def lite_run() -> None:  # the per-chunk part of the LiteLLM __next__ hook
        for c in lite_items:
            call.on_chunk(c)

    def bedrock_on(msg: Any) -> bool:
        _bedrock_stream._on_message(b_meter, msg)
        return True

    runs = {
        "litellm stream": lite_run,
        "anthropic stream": sdk_wrapper(ant, _anthropic_stream._item(a_meter), a_meter),
        "openai chat stream": sdk_wrapper(oai, state.on_item, o_meter),
        "boto3 converse_stream": sdk_wrapper(Message(), bedrock_on, b_meter),
    }
    items = [oai] * 1000

    def bare() -> None:
        for _ in iter(items):
            pass

    base = min(timeit.repeat(bare, number=20, repeat=7, timer=time.thread_time)) / 20
    out = {}
    for path, run in runs.items():
        run()  # first chunk: first-token time, model
        best = min(timeit.repeat(run, number=20, repeat=7, timer=time.thread_time)) / 20
        out[path] = (best - (0 if path == "litellm stream" else base)) / 1000 * 1e6
    return out


# -- parent ------------------------------------------------------------------------------------
class _Stub(BaseHTTPRequestHandler):
    """Revenium's metering endpoint: answers 200 and counts the requests (GET /count), so the table can say
    which paths its middleware really metered."""

    posts = 0
    lock = threading.Lock()

    def do_GET(self) -> None:
        body = str(_Stub.posts).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        with _Stub.lock:
            _Stub.posts += 1
        body = b'{"id":"bench","resourceType":"completion"}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a: Any) -> None:
        pass


def ensure_revenium_venv() -> Path | None:
    py = REVENIUM_VENV / "bin" / "python"
    if py.exists():
        return py
    print(f"[bench] creating {REVENIUM_VENV} with revenium-python-sdk (once)", file=sys.stderr)
    try:
        # Like .ci/run: the SDKs it wraps (litellm, anthropic, openai, httpx, wrapt...) come from this Python's
        # site-packages, so both sides run the same versions; only the middleware and distro are installed.
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(REVENIUM_VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "revenium-python-sdk==0.12.0",
                        "distro>=1.7"], check=True)  # fmt: skip
    except (subprocess.CalledProcessError, OSError) as exc:
        print(f"[bench] revenium venv not available: {exc}", file=sys.stderr)
        return None
    return py


def run_worker(python: str, kind: str, args: argparse.Namespace, urls: dict[str, str], env: dict[str, str]) -> Any:
    cmd = [python, __file__, "--worker", kind, "--calls", str(args.calls), "--rounds", str(args.rounds),
           "--clock", args.clock, "--transport", args.transport,
           "--paths", ",".join(args.paths), "--urls", json.dumps(urls)]  # fmt: skip
    if kind == "capture":
        cmd.append("--capture")
    proc = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": SRC, **env}, capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"{kind} worker failed")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def pct(v: list[float], q: float) -> float:
    s = sorted(v)
    return s[min(len(s) - 1, int(q * len(s)))]


def goal(path: str, bare_p50: float, added_p50: float, added_p99: float) -> str:
    if path.endswith("chunks"):
        per_chunk = added_p50 / 1000
        return f"{per_chunk:.2f} µs/chunk: {'met' if per_chunk <= 0.2 else 'MISSED'} (<= 0.2)"
    limit = 20.0 if path.startswith("litellm") else max(50.0, 0.03 * bare_p50)
    p99_ok = added_p99 <= 2 * max(added_p50, 1.0)
    verdict = "met" if added_p50 <= limit else "MISSED"
    return f"<= {limit:.0f} µs: {verdict}; p99 <= 2x p50: {'met' if p99_ok else 'MISSED'}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--paths", default=",".join(ALL_PATHS))
    ap.add_argument("--no-revenium", action="store_true")
    ap.add_argument("--worker", choices=("meterline", "capture", "revenium"))
    ap.add_argument("--urls")
    ap.add_argument("--capture", action="store_true")
    ap.add_argument("--transport", choices=("http", "replay"), default="http",
                    help="http (default): every call over HTTP to the fake provider; replay: the Anthropic and "
                    "OpenAI SDKs answered from memory (each distinct request sent once) and LiteLLM's mock_response, "
                    "so no socket or server thread adds noise (boto3 stays on HTTP)")  # fmt: skip
    ap.add_argument("--clock", choices=tuple(CLOCKS), default="thread",
                    help="thread (default): CPU time of the caller's thread, which preemption on a loaded machine "
                    "does not inflate and background threads (meterline's recorder) do not add to; wall: "
                    "perf_counter")  # fmt: skip
    args = ap.parse_args()
    global clock
    clock = CLOCKS[args.clock]
    args.paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    if args.worker:
        urls = json.loads(args.urls)
        res = worker_revenium(args, urls) if args.worker == "revenium" else worker_meterline(args, urls)
        print(json.dumps(res))
        return 0
    sys.path.insert(0, SRC)
    from meterline.testing import FakeProvider

    stub = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    results: dict[str, Any] = {}
    with FakeProvider() as fake:
        urls = {"openai": fake.openai_base_url, "anthropic": fake.anthropic_base_url,
                "bedrock": fake.bedrock_endpoint_url}  # fmt: skip
        results["meterline"] = run_worker(sys.executable, "meterline", args, urls, {})
        results["meterline, capture on"] = run_worker(sys.executable, "capture", args, urls, {})
        py = None if args.no_revenium else ensure_revenium_venv()
        if py is not None:
            env = {"REVENIUM_METERING_API_KEY": "hak_bench_0000000000000000", "REVENIUM_LOG_LEVEL": "ERROR",
                   "REVENIUM_METERING_BASE_URL": f"http://127.0.0.1:{stub.server_address[1]}"}  # fmt: skip
            results["revenium-python-sdk 0.12"] = run_worker(str(py), "revenium", args, urls, env)
    stub.shutdown()
    how = "replayed HTTP (in-process)" if args.transport == "replay" else "one FakeProvider over HTTP"
    print(f"Caller overhead per call, µs ({args.clock} clock; p50 / p99 / mean), {args.rounds} x {args.calls} "
          f"calls per side, Python {sys.version.split()[0]}, {how}")  # fmt: skip
    print("| path | side | bare p50 | metered p50 | added p50 | ratio | added p99 | added mean | goal |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for path in [*args.paths, *(p + " x1000 chunks" for p in args.paths if p in STREAMS)]:
        for side, res in results.items():
            r = res.get(path)
            if r is None:
                continue
            b, m = r["bare"], r["metered"]
            a50, a99 = pct(m, 0.5) - pct(b, 0.5), pct(m, 0.99) - pct(b, 0.99)
            amean = statistics.fmean(m) - statistics.fmean(b)
            if side.startswith("meterline"):
                verdict = goal(path, pct(b, 0.5), a50, a99)
            else:
                sent = r.get("meter_requests", 0)
                verdict = f"{sent} metering requests" if sent else "not metered (no middleware for this path)"
            print(f"| {path} | {side} | {pct(b, 0.5):,.0f} | {pct(m, 0.5):,.0f} | {a50:+,.0f} | "
                  f"{pct(m, 0.5) / pct(b, 0.5):.3f} | {a99:+,.0f} | {amean:+,.0f} | {verdict} |")  # fmt: skip
    print()
    print("Per-chunk cost of the stream wrappers in isolation (µs a chunk, thread CPU, best of 7 x 20 x 1,000 "
          "chunks; goal <= 0.2):")  # fmt: skip
    print("| path | capture off | capture on |")
    print("|---|---:|---:|")
    iso = {False: isolated_per_chunk(False), True: isolated_per_chunk(True)}
    for path in iso[False]:
        print(f"| {path} | {iso[False][path]:.2f} | {iso[True][path]:.2f} |")
    for side in ("meterline", "meterline, capture on"):
        ev = results[side].get("_events", {})
        print(f"{side}: {ev.get('written')} events written, flushed: {ev.get('flushed')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
