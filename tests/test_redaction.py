"""Redaction presets: each catches its samples and leaves look-alikes alone."""

from __future__ import annotations

import pytest

from meterline.sdk.redaction import PRESETS, RedactionError, Redactor, luhn_ok, mask_headers, parse_presets

R = Redactor()

CAUGHT = {
    "email": ["jane.doe@example.com", "a+tag@mail.co.uk", "ops_team@sub.example.io"],
    "phone": ["+44 20 7946 0958", "+1-415-555-0132", "(415) 555-0132", "415-555-0132", "+33 1 42 68 53 00"],
    "card": ["4111 1111 1111 1111", "4111-1111-1111-1111", "5500005555555559", "378282246310005", "6011000990139424"],
    "secret": [
        "sk-proj-abcdefghijklmnopqrstuvwxyz012345",
        "sk-abcdefghijklmnopqrstuvwx",
        "sk-ant-api03-abcdefghijklmnopqrstuvwxyz",
        "AKIAIOSFODNN7EXAMPLE",
        "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "Bearer eyJhbGciOiJIUzI1NiJ9.abc.def-123456",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    ],
    "ip": ["192.168.1.20", "8.8.8.8", "2001:0db8:85a3:0000:0000:8a2e:0370:7334", "fe80::1ff:fe23:4567:890a"],
}

LOOK_ALIKES = [
    "4111 1111 1111 1112",  # 16 digits, fails Luhn: not a card
    "order 1234567890123456",  # 16 digits, fails Luhn
    "version 1.2.3.4000",  # not an IPv4 (octet > 255)
    "999.1.1.1",
    "meeting at 12:30:45",
    "user@localhost",  # no TLD
    "sk-short",  # too short to be a key
    "task-abcdefghijklmnopqrstuvwxyz",  # sk- inside a word is not a key
    "AKIA1234",  # too short
    "bearer of bad news",
    "call extension 5501",
    "ISBN 978-3-16-148410-0",
    "2024-01-15",
    "price 1,299.00",
]


@pytest.mark.parametrize(("kind", "sample"), [(k, s) for k, v in CAUGHT.items() for s in v])
def test_each_preset_catches_its_samples(kind: str, sample: str) -> None:
    out = R.text(f"before {sample} after")
    assert out == f"before [REDACTED:{kind}] after"


@pytest.mark.parametrize("text", LOOK_ALIKES)
def test_look_alikes_are_left_alone(text: str) -> None:
    assert R.text(text) == text


def test_luhn() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")


def test_only_chosen_presets_run_and_custom_patterns_apply() -> None:
    r = Redactor(presets=["emails"], patterns=[r"ACME-\d{4}"])
    assert r.text("jane@example.com 8.8.8.8 ACME-1234") == "[REDACTED:email] 8.8.8.8 [REDACTED]"
    assert Redactor(presets=[]).text("jane@example.com") == "jane@example.com"


def test_bad_configuration_names_what_is_wrong() -> None:
    with pytest.raises(RedactionError, match="unknown preset 'emial'"):
        Redactor(presets=["emial"])
    with pytest.raises(RedactionError, match=r"redact_patterns\[0\]: not a valid regular expression"):
        Redactor(patterns=["(unclosed"])


def test_nested_values_keys_and_headers() -> None:
    value = {"messages": [{"role": "user", "content": "mail me at a@b.io"}], "api_key": "anything", "n": 3}
    assert R.value(value) == {
        "messages": [{"role": "user", "content": "mail me at [REDACTED:email]"}],
        "api_key": "[REDACTED:secret]",
        "n": 3,
    }
    headers = {"Authorization": "Bearer abc", "X-Request-Id": "r-1", "x-api-key": "k"}
    assert R.headers(headers) == {
        "Authorization": "[REDACTED:secret]",
        "X-Request-Id": "r-1",
        "x-api-key": "[REDACTED:secret]",
    }
    assert mask_headers(headers)["X-Request-Id"] == "r-1"


def test_env_form() -> None:
    assert parse_presets(None) == PRESETS and parse_presets("none") == ()
    assert parse_presets("emails, cards") == ("emails", "cards")
