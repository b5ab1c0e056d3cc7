"""Redaction of captured content: presets for personal data and secrets, custom patterns, header masking.

Runs on the recorder's thread (never the caller's), before an event is stored, spooled, sent to a
collector or exported over OTLP. Presets:

- ``emails``: ``name@domain.tld``
- ``phones``: international (``+44 20 7946 0958``) and North-American (``(415) 555-0132``) numbers of
  10..15 digits written with the usual separators; bare digit runs (order numbers, ids) are left alone
- ``cards``: 13..19 digit card numbers (spaces or dashes allowed) that pass the Luhn check; a 16-digit
  number that fails it is not a card and is kept
- ``secrets``: OpenAI ``sk-…`` / ``sk-proj-…``, Anthropic ``sk-ant-…``, AWS access key ids ``AKIA…``/``ASIA…``
  and secret access keys (40 characters after an ``aws_secret_access_key``-like label), ``Bearer …`` tokens,
  GitHub ``ghp_…`` tokens, JWTs
- ``ips``: IPv4 addresses (each octet 0..255) and full or ``::``-compressed IPv6 addresses

Each match becomes ``[REDACTED:<kind>]``. Header values of credential headers (``authorization``,
``x-api-key``, ``api-key``, ``cookie``, …) are always replaced, whatever the presets.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

PRESETS = ("emails", "phones", "cards", "secrets", "ips")

# headers whose value is a credential: never kept, even with every preset off
SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "cookie",
        "set-cookie",
        "x-goog-api-key",
        "x-amz-security-token",
        "anthropic-api-key",
        "openai-api-key",
    }
)
# request keys (raw request capture) whose value is a credential
SECRET_KEYS = frozenset(
    {
        "api_key",
        "apikey",
        "aws_secret_access_key",
        "aws_session_token",
        "aws_access_key_id",
        "azure_ad_token",
        "client_secret",
        "password",
        "authorization",
        "x-api-key",
        "token",
        "access_token",
        "secret",
        "vertex_credentials",
    }
)

# Each pattern starts with a plain character class (lookbehinds come after the first character): Python's
# regex engine then skips non-candidate positions quickly. Each preset is its own pass, behind a cheap guard.
_EMAIL = (
    r"[A-Za-z0-9._%+-](?<![\w.+-][A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*"
    r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}(?![\w-])"
)
# +CC then 7..13 more digits in groups, or NANP (xxx) xxx-xxxx / xxx-xxx-xxxx / xxx.xxx.xxxx
_PHONE = (
    r"(?:\+(?<![\w+]\+)\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}"
    r"|\((?<![\w+]\()\d{3}\)[ .-]?\d{3}[ .-]\d{4}"
    r"|\d(?<![\w+]\d)\d{2}[.-]\d{3}[.-]\d{4})(?![\w-])"
)
_CARD = r"\d(?<![\w-]\d)(?:[ -]?\d){12,18}(?![\w-])"
# (trigger that must appear in the lower-cased text, pattern): one guarded pass each, each pattern starting
# with a literal so the engine jumps between candidates
_SECRET_PASSES = (
    # Anthropic sk-ant-…, OpenAI sk-… / sk-proj-…
    ("sk-", r"s(?<![\w-]s)k-(?:ant-[A-Za-z0-9_-]{16,}|(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,})"),
    ("akia", r"A(?<![A-Z0-9]A)KIA[A-Z0-9]{16}(?![A-Z0-9])"),  # AWS access key id
    ("asia", r"A(?<![A-Z0-9]A)SIA[A-Z0-9]{16}(?![A-Z0-9])"),  # AWS temporary access key id
    (
        "secret",  # AWS secret access key, after its label
        r"(?i:aws_?secret_?access_?key|aws_?secret|secret_?access_?key)[\"']?\s*[:=]\s*[\"']?"
        r"[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])",
    ),
    ("bearer", r"(?i:bearer)\s+[A-Za-z0-9._~+/=-]{12,}"),  # bearer tokens
    ("gh", r"gh[pousr]_[A-Za-z0-9]{30,}"),  # GitHub
    ("eyj", r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),  # JWT
)
_SECRETS = "|".join(f"(?:{p})" for _, p in _SECRET_PASSES)
_IPV4 = r"\d(?<![\w.]\d)\d{0,2}(?:\.\d{1,3}){3}(?![\w]|\.\d)"  # octets checked in code (<= 255)
_H = r"[0-9A-Fa-f]{1,4}"
_IPV6 = (
    rf"(?<![\w:])(?:(?:{_H}:){{7}}{_H}"
    rf"|(?:{_H}:){{1,7}}:(?:{_H}(?::{_H}){{0,6}})?"
    rf"|::(?:{_H}:){{0,6}}{_H})(?![\w:])"
)
_IPV6_HINT = re.compile(r"[0-9A-Fa-f]:[0-9A-Fa-f]{0,4}:")

_PATTERNS: dict[str, str] = {
    "secrets": _SECRETS,  # first: a key may contain digit runs that look like other things
    "emails": _EMAIL,
    "cards": _CARD,
    "ips": f"{_IPV4}|{_IPV6}",
    "phones": _PHONE,
}


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of a digit string (what every payment card number satisfies)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = match.group(0).replace(" ", "").replace("-", "")
    if 13 <= len(digits) <= 19 and luhn_ok(digits):
        return "[REDACTED:card]"
    return match.group(0)


def _ip(match: re.Match[str]) -> str:
    text = match.group(0)
    if ":" in text:
        # "12:30:45" or "a::b" in prose are not addresses: want >= 3 groups, or a "::" with a hex letter
        if text.count(":") >= 3 or ("::" in text and any(c.isalpha() for c in text) and len(text) > 4):
            return "[REDACTED:ip]"
        return text
    parts = text.split(".")
    if all(int(p) <= 255 and (p == "0" or not p.startswith("0") or len(p) == 1) for p in parts):
        return "[REDACTED:ip]"
    return text


def _phone(match: re.Match[str]) -> str:
    text = match.group(0)
    return "[REDACTED:phone]" if sum(c.isdigit() for c in text) >= 10 else text


def _always(_text: str, _lower: str) -> bool:
    return True


_GUARDS: dict[str, Callable[[str, str], bool]] = {
    "secrets": _always,  # each secret pattern has its own trigger (see Redactor.text)
    "emails": lambda text, lower: "@" in text,
    "cards": _always,
    "ips": lambda text, lower: "." in text or ":" in text,
    "phones": _always,
}
_REPLACE: dict[str, Callable[[re.Match[str]], str] | str] = {
    "secrets": "[REDACTED:secret]",
    "emails": "[REDACTED:email]",
    "cards": _card,
    "ips": _ip,
    "phones": _phone,
}


class RedactionError(ValueError):
    pass


class Redactor:
    """Replaces sensitive substrings in captured content. ``presets``: names from :data:`PRESETS`;
    ``patterns``: extra regexes (strings or compiled), each match becoming ``[REDACTED]``."""

    def __init__(self, presets: Iterable[str] = PRESETS, patterns: Sequence[str | re.Pattern[str]] = ()) -> None:
        chosen = list(dict.fromkeys(presets))
        unknown = [p for p in chosen if p not in _PATTERNS]
        if unknown:
            raise RedactionError(f"redact_presets: unknown preset {unknown[0]!r}; choose from {', '.join(PRESETS)}")
        self.presets = tuple(p for p in _PATTERNS if p in chosen)
        self._custom: list[re.Pattern[str]] = []
        for i, p in enumerate(patterns):
            try:
                self._custom.append(p if isinstance(p, re.Pattern) else re.compile(p))
            except re.error as exc:
                raise RedactionError(f"redact_patterns[{i}]: not a valid regular expression: {exc}") from None
        self._passes = [
            (_GUARDS[name], re.compile(_IPV4) if name == "ips" else re.compile(_PATTERNS[name]), _REPLACE[name])
            for name in self.presets
            if name != "secrets"
        ]
        self._secrets = (
            [(trigger, re.compile(p)) for trigger, p in _SECRET_PASSES] if "secrets" in self.presets else []
        )
        self._ipv6 = re.compile(_IPV6) if "ips" in self.presets else None

    @property
    def active(self) -> bool:
        return bool(self._passes) or bool(self._secrets) or bool(self._custom)

    def text(self, value: str) -> str:
        """``value`` with every preset and custom match replaced."""
        if self._passes or self._secrets:
            lower = value.lower()
            for trigger, pattern in self._secrets:  # first: a key may contain digit runs that look like other things
                if trigger in lower:
                    value = pattern.sub("[REDACTED:secret]", value)
            for guard, pattern, replace in self._passes:
                if guard(value, lower):
                    value = pattern.sub(replace, value)
            if self._ipv6 is not None and _IPV6_HINT.search(value):
                value = self._ipv6.sub(_ip, value)
        for pattern in self._custom:
            value = pattern.sub("[REDACTED]", value)
        return value

    def value(self, obj: Any, _depth: int = 0) -> Any:
        """A JSON-like value (dicts, lists, strings, scalars) with every string redacted; keys that name a
        credential (``api_key``, ``password``, …) lose their value."""
        if isinstance(obj, str):
            return self.text(obj)
        if _depth > 64:
            return "[REDACTED:too-deep]"
        if isinstance(obj, Mapping):
            out: dict[str, Any] = {}
            for k, v in obj.items():
                key = str(k)
                if key.lower() in SECRET_KEYS and v is not None and not isinstance(v, (bool, int, float)):
                    out[key] = "[REDACTED:secret]"
                else:
                    out[key] = self.value(v, _depth + 1)
            return out
        if isinstance(obj, (list, tuple)):
            return [self.value(v, _depth + 1) for v in obj]
        return obj

    def headers(self, headers: Mapping[str, Any]) -> dict[str, str]:
        """Credential headers masked, the other values redacted like text."""
        out: dict[str, str] = {}
        for k, v in headers.items():
            key = str(k)
            out[key] = "[REDACTED:secret]" if key.lower() in SECRET_HEADERS else self.text(str(v))
        return out


def mask_headers(headers: Mapping[str, Any]) -> dict[str, str]:
    """Credential headers masked, nothing else changed (used when every preset is off)."""
    return {str(k): "[REDACTED:secret]" if str(k).lower() in SECRET_HEADERS else str(v) for k, v in headers.items()}


def parse_presets(text: str | None) -> tuple[str, ...]:
    """``METERLINE_REDACT``: ``all`` (default), ``none``, or a comma list of preset names."""
    if text is None or not text.strip() or text.strip().lower() == "all":
        return PRESETS
    if text.strip().lower() in ("none", "off", "false", "0"):
        return ()
    return tuple(p.strip().lower() for p in text.split(",") if p.strip())


Hook = Callable[[Any, "str | None"], "tuple[Any, str | None]"]
