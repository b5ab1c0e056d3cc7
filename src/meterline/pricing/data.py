"""Price data that stays current without a release: fetch genai-prices' data file, validate it, keep it, swap it in.

genai-prices ships its data inside the package and an updater (``genai_prices.update_prices.UpdatePrices``) that
fetches the newer data file (a JSON list of providers, ``DEFAULT_UPDATE_URL``) and installs it with
``data_snapshot.set_custom_snapshot``. meterline uses exactly that: its parser (``_providers_from_raw``), its
snapshot swap (one reference assignment: a call is priced with the old data or the new, never a mix) and, for the
periodic refresh (``METERLINE_PRICES_REFRESH``), its background thread. What meterline adds:

- validation before anything is swapped: the payload must parse under genai-prices' schema, every model's prices
  must resolve, and it must not lose most of the providers or models of the data in use (a truncated or wrong file
  is refused with a clear error, :class:`PriceDataError`; the prices in use stay);
- a version for provenance: ``<date>.<sha256 prefix>`` (the date the server says the file was last modified, else
  the day it was fetched); events priced with it say ``pricing_source = genai-prices@<pkg>+data.<version>``;
- a kept copy (``<METERLINE_PRICES_DIR>/genai-prices-data.json``, written to a temporary file and renamed, so a
  reader sees the old file or the new one) that every later process loads; without it (an offline machine, a
  new install) the packaged data applies. A copy fetched under another genai-prices release is not loaded (the
  package's own newer data wins; run ``meterline prices update`` again).
"""

from __future__ import annotations

import dataclasses
import email.utils
import hashlib
import json
import logging
import os
import threading
import urllib.request
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

logger = logging.getLogger("meterline")

FILE_NAME = "genai-prices-data.json"
_FORMAT = 1  # the kept copy's own format: {"format": 1, "info": {...}, "providers": [...]}


class PriceDataError(ValueError):
    """A price data file that cannot be used (unreadable, not genai-prices' schema, or implausibly small)."""


@dataclasses.dataclass(frozen=True)
class DataInfo:
    version: str  # "<YYYY-MM-DD>.<sha256[:8]>"
    sha256: str
    published: str  # ISO date the data is from (Last-Modified / file time / fetch day)
    fetched_at: str  # ISO instant
    origin: str  # URL or file it came from
    package: str  # the genai-prices release it was fetched under
    providers: int
    models: int

    @property
    def source(self) -> str:
        """The ``pricing_source`` of events it prices."""
        return f"genai-prices@{self.package}+data.{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def package_version() -> str:
    import genai_prices

    return str(genai_prices.__version__)


def prices_dir() -> Path:
    root = os.environ.get("METERLINE_PRICES_DIR")
    if root:
        return Path(root).expanduser()
    from meterline.core.config import data_dir

    return data_dir() / "prices"


def default_url() -> str:
    from genai_prices.update_prices import DEFAULT_UPDATE_URL

    return os.environ.get("METERLINE_PRICES_URL") or DEFAULT_UPDATE_URL


def _count(providers: list[Any]) -> tuple[int, int]:
    return len(providers), sum(len(p.models) for p in providers)


def parse(raw: bytes, *, origin: str = "data", current: Any | None = None) -> list[Any]:
    """genai-prices providers from a data file's bytes, validated; :class:`PriceDataError` says what is wrong.

    ``current``: the providers in use; new data that lists fewer than half of their providers or models is
    refused (a truncated download or the wrong file)."""
    from genai_prices.types import _providers_from_raw

    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PriceDataError(f"{origin}: not JSON ({exc})") from None
    if isinstance(payload, dict) and payload.get("format") == _FORMAT:
        payload = payload.get("providers")
    if not isinstance(payload, list) or not payload:
        raise PriceDataError(f"{origin}: expected genai-prices' data, a non-empty JSON list of providers")
    try:
        providers = list(_providers_from_raw(payload))
    except Exception as exc:  # noqa: BLE001 - pydantic's ValidationError (or a ValueError) names the bad entry
        first = str(exc).strip().splitlines()
        raise PriceDataError(f"{origin}: not genai-prices' data schema: {' '.join(first[:3])[:400]}") from None
    probe = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for p in providers:
        for m in p.models:
            try:
                m.get_prices(probe, None)
            except Exception as exc:  # noqa: BLE001 - any failure here would fail pricing later
                raise PriceDataError(f"{origin}: {p.id}/{m.id}: prices do not resolve: {exc}") from None
    if current is not None:
        (np, nm), (cp, cm) = _count(providers), _count(current)
        if np * 2 < cp or nm * 2 < cm:
            raise PriceDataError(
                f"{origin}: lists {np} providers and {nm} models where the prices in use have {cp} and {cm}: "
                "refused (a truncated download or the wrong file?); the prices in use are kept"
            )
    return providers


def fetch(source: str, timeout: float = 30.0) -> tuple[bytes, datetime | None]:
    """The bytes of a data file at a URL (http/https/file) or a path, and when it was last modified if known."""
    if "://" not in source:
        path = Path(source).expanduser()
        try:
            return path.read_bytes(), datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
        except OSError as exc:
            raise PriceDataError(f"cannot read price data {path}: {exc.strerror}") from None
    if not source.startswith(("http://", "https://", "file://")):
        raise PriceDataError(f"{source}: use an http(s):// or file:// URL, or a file path")
    request = urllib.request.Request(source, headers={"User-Agent": "meterline (prices update)"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            modified = response.headers.get("Last-Modified")
    except OSError as exc:  # URLError, HTTPError, timeouts
        raise PriceDataError(f"cannot fetch price data from {source}: {exc}") from None
    published = None
    if modified:
        try:
            published = email.utils.parsedate_to_datetime(modified).astimezone(timezone.utc)
        except (TypeError, ValueError):
            published = None
    return raw, published


def _info(raw: bytes, providers: list[Any], origin: str, published: datetime | None, now: datetime) -> DataInfo:
    sha = hashlib.sha256(raw).hexdigest()
    day = (published or now).astimezone(timezone.utc).date().isoformat()
    np, nm = _count(providers)
    return DataInfo(f"{day}.{sha[:8]}", sha, day, now.isoformat(), origin, package_version(), np, nm)


def _snapshot(providers: list[Any], info: DataInfo) -> Any:
    from genai_prices.data_snapshot import DataSnapshot

    snap: Any = DataSnapshot(providers=providers, from_auto_update=True)
    snap._meterline_info = info  # provenance travels with the snapshot it describes
    return snap


def info_of(snapshot: Any) -> DataInfo | None:
    info = getattr(snapshot, "_meterline_info", None)
    return info if isinstance(info, DataInfo) else None


def current_providers() -> list[Any]:
    from genai_prices import data_snapshot

    return list(data_snapshot.get_snapshot().providers)


def install(snapshot: Any) -> None:
    """Make ``snapshot`` the data every later price lookup uses (one atomic reference swap)."""
    from genai_prices import data_snapshot

    data_snapshot.set_custom_snapshot(snapshot)


def keep(raw_providers: Any, info: DataInfo, directory: Path | None = None) -> Path:
    """Write the validated data and its info to the kept copy: a temporary file, fsync, rename."""
    folder = directory or prices_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / FILE_NAME
    tmp = folder / f".{FILE_NAME}.{os.getpid()}.{threading.get_ident()}.tmp"
    body = json.dumps({"format": _FORMAT, "info": info.to_dict(), "providers": raw_providers}, separators=(",", ":"))
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(body)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    return target


def load(
    source: str, *, now: datetime | None = None, timeout: float = 30.0, current: list[Any] | None = None
) -> tuple[Any, DataInfo, Any]:
    """Fetch and validate ``source``: (snapshot ready to install, its info, the raw provider list to keep).
    Nothing is installed or written here."""
    raw, published = fetch(source, timeout)
    providers = parse(raw, origin=source, current=current_providers() if current is None else current)
    payload = json.loads(raw)
    if isinstance(payload, dict):
        payload = payload.get("providers")
    info = _info(raw, providers, source, published, now or datetime.now(timezone.utc))
    return _snapshot(providers, info), info, payload


def update(source: str | None = None, *, now: datetime | None = None, directory: Path | None = None) -> DataInfo:
    """``meterline prices update``: fetch, validate, keep the copy, install. Raises :class:`PriceDataError`
    (and changes nothing) when the data cannot be used."""
    snapshot, info, payload = load(source or default_url(), now=now)
    keep(payload, info, directory)
    install(snapshot)
    return info


_loaded = threading.Lock()
_checked: list[Path] = []


def load_kept(directory: Path | None = None, *, force: bool = False) -> DataInfo | None:
    """Install the kept copy, once per process (and per directory), when there is one fetched under this
    genai-prices release; a broken copy is logged and skipped (the packaged data applies)."""
    folder = directory or prices_dir()
    with _loaded:
        if folder in _checked and not force:
            return None
        _checked.append(folder)
    path = folder / FILE_NAME
    if not path.is_file():
        return None
    try:
        raw = path.read_bytes()
        doc = json.loads(raw)
        info = DataInfo(**doc["info"])
        if info.package != package_version():
            logger.info(
                "meterline: price data in %s was fetched under genai-prices %s (now %s): using the packaged data; "
                "run `meterline prices update` again",
                path,
                info.package,
                package_version(),
            )
            return None
        providers = parse(raw, origin=str(path))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("meterline: ignoring the kept price data %s: %s", path, exc)
        return None
    install(_snapshot(providers, info))
    return info


def forget_loaded() -> None:
    """Tests: the next :func:`load_kept` reads the kept copy again."""
    with _loaded:
        _checked.clear()


# -- periodic refresh: genai-prices' own background updater, with meterline's validation and kept copy ------------


def parse_interval(raw: str) -> float | None:
    """``METERLINE_PRICES_REFRESH``: ``24h``, ``30m``, ``3600`` (seconds), ``1d``; off/0/false/empty: None."""
    text = raw.strip().lower()
    if text in ("", "0", "off", "false", "no", "none"):
        return None
    if text in ("1", "on", "true", "yes"):
        return 86400.0
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        seconds = float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)
    except ValueError:
        raise ValueError(f"METERLINE_PRICES_REFRESH: not an interval: {raw!r} (e.g. 24h, 30m, 3600)") from None
    if seconds < 60:
        raise ValueError(f"METERLINE_PRICES_REFRESH: at least 60 seconds, not {raw!r}")
    return seconds


def refresher(
    interval: float,
    url: str | None = None,
    *,
    directory: Path | None = None,
    on_install: Callable[[DataInfo], None] | None = None,
) -> Any:
    """A started genai-prices ``UpdatePrices`` whose fetch validates and keeps the data (a refused fetch raises
    in genai-prices' thread, which logs it and keeps the prices in use). Stop it with ``.stop()``."""
    from genai_prices.update_prices import UpdatePrices

    class _Refresh(UpdatePrices):
        def fetch(self) -> Any:
            snapshot, info, payload = load(self.url)
            current = info_of(_current_snapshot())
            if current is not None and current.sha256 == info.sha256:
                return _current_snapshot()  # unchanged: keep the snapshot (and the resolved-price caches)
            keep(payload, info, directory)
            if on_install is not None:
                try:
                    on_install(info)
                except Exception:  # history is secondary to the prices themselves: logged
                    logger.exception("meterline: recording the price data update failed")
            logger.info("meterline: price data %s installed from %s", info.version, self.url)
            return snapshot

    r = _Refresh(update_interval=interval, url=url or default_url())
    r.start()
    return r


def _current_snapshot() -> Any:
    from genai_prices import data_snapshot

    return data_snapshot.get_snapshot()


def start_refresh_from_env(on_install: Callable[[DataInfo], None] | None = None) -> Any | None:
    """Start the periodic refresh when ``METERLINE_PRICES_REFRESH`` asks for it (None otherwise)."""
    raw = os.environ.get("METERLINE_PRICES_REFRESH", "")
    interval = parse_interval(raw)
    if interval is None:
        return None
    return refresher(interval, on_install=on_install)
