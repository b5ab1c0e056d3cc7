"""Shared test set-up: no network, an isolated data dir, and no meterline internal error left unseen."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

# LiteLLM fetches its price map over the network at import unless told not to.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
# meterline's own suite sees its internal errors raised (a user's suite never does: the switch is ours alone).
os.environ["METERLINE_RAISE_INTERNAL"] = "1"
# Never touch the developer's real data dir (default SQLite file, spool).
os.environ.setdefault("METERLINE_HOME", tempfile.mkdtemp(prefix="meterline-test-home-"))
for _var in ("METERLINE_DESTINATION", "METERLINE_API_KEY", "METERLINE_SELECTIVE_METERING", "METERLINE_PRICES"):
    os.environ.pop(_var, None)

import pytest  # noqa: E402

import meterline  # noqa: E402
from meterline.core import errors as _errors  # noqa: E402
from meterline.core.event import UsageEvent  # noqa: E402
from meterline.store import SQLiteStore  # noqa: E402


class MeterDB:
    """A temp SQLite destination; ``events()`` flushes and reads back what was stored."""

    def __init__(self, root: Path) -> None:
        self.path = root / "meter.db"
        self.destination = f"sqlite:///{self.path}"
        self.spool_dir = root / "spool"

    def init(self, **kwargs: object) -> None:
        meterline.init(destination=self.destination, spool_dir=self.spool_dir, **kwargs)  # type: ignore[arg-type]

    def events(self, timeout: float = 10.0) -> list[UsageEvent]:
        assert meterline.flush(timeout), "meterline.flush timed out"
        if not self.path.exists():
            return []
        store = SQLiteStore(self.path)
        try:
            return list(store.iter_events())
        finally:
            store.close()

    def store(self) -> SQLiteStore:
        assert meterline.flush(10.0)
        return SQLiteStore(self.path)


@pytest.fixture
def meter_db(tmp_path: Path) -> Iterator[MeterDB]:
    db = MeterDB(tmp_path)
    db.init()
    yield db
    meterline.shutdown(5.0)


@pytest.fixture(autouse=True)
def _no_internal_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    _errors.reset_internal_errors()
    yield
    if request.node.get_closest_marker("allow_internal_errors"):
        return
    err = _errors.last_internal_error()
    assert _errors.internal_errors() == 0, f"meterline internal error during the test: {err!r}"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "allow_internal_errors: the test provokes meterline internal errors")


# -- shared fixtures for integration tests ---------------------------------------------------------
@pytest.fixture(scope="session")
def _fake_provider_server() -> Iterator[object]:
    from meterline.testing import FakeProvider

    with FakeProvider() as server:
        yield server


@pytest.fixture
def fake_provider(_fake_provider_server: object) -> object:
    """The project's local fake OpenAI/Anthropic/Bedrock server (one per session), with its recorded
    requests and queued failures cleared for each test."""
    _fake_provider_server.clear()  # type: ignore[attr-defined]
    return _fake_provider_server


PG_ADMIN_URL = os.environ.get("METERLINE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _postgres_admin() -> object:
    """A psycopg connection to the test server, or a skip/fail naming why it is unavailable."""
    try:
        import psycopg
    except ImportError:
        pytest.skip("psycopg is not installed (pip install 'meterline[postgres]')")
    try:
        return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except Exception as exc:  # noqa: BLE001 - any connection failure means "no server here"
        reason = f"PostgreSQL at {PG_ADMIN_URL} is unavailable: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason + " (CI=true: PostgreSQL tests must run)")
        pytest.skip(reason)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A destination URL, once a SQLite file and once a fresh PostgreSQL database (tests run on both)."""
    return _sql_database(request, tmp_path)


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("chdb", marks=pytest.mark.clickhouse),
    ]
)
def any_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A destination URL on each event store: a SQLite file, a fresh PostgreSQL database and a fresh database in
    the embedded ClickHouse engine. A test module whose behaviour every store must share (ingest, usage,
    events, budgets, reports, exact sums, hostile input) overrides ``database`` with it."""
    if request.param == "chdb":
        url_ch: str = request.getfixturevalue("chdb_url")
        return url_ch
    return _sql_database(request, tmp_path)


def _sql_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meterline.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


_CHDB_DIR: list[Path] = []


def _chdb_dir() -> Path:
    """The embedded ClickHouse opens one data directory per process: every test shares this one and gets a
    database of its own in it."""
    for module in ("chdb", "clickhouse_connect"):
        try:
            __import__(module)
        except ImportError:
            reason = f"{module} is not installed (pip install 'meterline[chdb]')"
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(reason + " (CI=true: ClickHouse store tests must run)")
            pytest.skip(reason)
    if not _CHDB_DIR:
        _CHDB_DIR.append(Path(tempfile.mkdtemp(prefix="meterline-chdb-")))
    return _CHDB_DIR[0]


@pytest.fixture
def chdb_url(tmp_path: Path) -> str:
    """A fresh database in the process's embedded ClickHouse (metadata in a SQLite file of this test)."""
    import urllib.parse
    import uuid

    meta = urllib.parse.quote(f"sqlite:///{tmp_path / 'meta.db'}", safe="")
    return f"chdb://{_chdb_dir()}?database=t_{uuid.uuid4().hex[:12]}&meta={meta}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (dropped afterwards); its URL."""
    import uuid

    admin = _postgres_admin()
    name = f"meterline_t_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[attr-defined]
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[attr-defined]
        admin.close()  # type: ignore[attr-defined]


# -- Redis: tests use their own database (15, never the default 0) and remove every key they made ----------------
TEST_REDIS_URL = "redis://127.0.0.1:6379/15"
TEST_REDIS_PREFIX = "meterline-test-"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Delete the test counters' keys (prefixed ``meterline-test-``) from the test database."""
    try:
        import redis
    except ImportError:
        return
    try:
        client = redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=1)
        keys = list(client.scan_iter(match=f"{TEST_REDIS_PREFIX}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
    except redis.RedisError:
        pass  # no Redis here: the tests that need it were skipped
