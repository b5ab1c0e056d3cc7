"""Real collectors for tests: uvicorn in a thread (fast) or ``meterline serve`` in a subprocess
(for SIGKILL and multi-process tests), each on a free port."""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

SRC = str(Path(__file__).resolve().parents[1] / "src")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThreadCollector:
    """``create_app(settings)`` served by uvicorn on a thread, on a port the OS picks."""

    def __init__(self, **settings: Any) -> None:
        import uvicorn

        from meterline.server.app import create_app
        from meterline.server.settings import Settings

        self.settings = Settings(**settings)
        self.app = create_app(self.settings)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ThreadCollector:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("collector did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    @property
    def store(self) -> Any:
        return self.app.state.reader


class ProcessCollector:
    """``python -m meterline serve`` in a subprocess on a fixed port (so it can be restarted)."""

    def __init__(self, database: str, *extra: str, port: int | None = None, log: Path | None = None) -> None:
        self.database = database
        self.extra = extra
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ProcessCollector:
        env = {**os.environ, "PYTHONPATH": SRC}
        cmd = [sys.executable, "-m", "meterline", "serve", "--database", self.database, "--port", str(self.port)]
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen([*cmd, "--log-level", "warning", *self.extra], env=env, stdout=out, stderr=out)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"collector exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("collector did not become ready")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def wire_event(**fields: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "provider": "openai",
        "model": "gpt-4o-mini",
        "start_time": "2026-11-02T10:00:00Z",
        "input_tokens": 1000,
        "output_tokens": 100,
    }
    ev.update(fields)
    return ev


def request(
    url: str,
    method: str = "GET",
    body: Any = None,
    *,
    key: str | None = None,
    headers: dict[str, str] | None = None,
    gzip_body: bool = False,
    raw: bytes | None = None,
) -> tuple[int, Any]:
    """(status, parsed JSON or text) for one HTTP request."""
    hdrs = dict(headers or {})
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    if gzip_body and data is not None:
        data = gzip.compress(data)
        hdrs["Content-Encoding"] = "gzip"
    if key:
        hdrs["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(url, data=data, headers=hdrs, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, text = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text.decode()
