"""Gateway pieces without a proxy: header/body metadata, the trust rule, key hashing, the auth example's
key file, and the config rewrite of ``meterline gateway``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from meterline.cli.gateway import CALLBACK, prepare_config
from meterline.gateway import auth, identity


def test_headers_and_body_metadata_with_precedence() -> None:
    headers = {
        "x-revenium-subscriber-id": "rev-sub",
        "x-revenium-organization-name": "acme",
        "x-revenium-response-quality-score": "0.75",
        "x-meterline-subscriber-id": "ml-sub",  # x-meterline wins over x-revenium
        "x-meterline-tags": "beta, eu",
        "x-meterline-metered": "gateway",  # the response marker is not metadata
        "authorization": "ignored",
    }
    body = {
        "user": "end-1",
        "metadata": {
            "subscriber_id": "body-sub",
            "subscriber": {"email": "a@b.c"},
            "user_api_key_hash": "litellm's own entry",
            "headers": {"x": "y"},
            "usage_metadata": {"agent": "planner"},
        },
    }
    md = identity.caller_metadata(headers, body, "acompletion")
    assert md == {
        "end_user_id": "end-1",
        "subscriber_id": "ml-sub",
        "subscriber_email": "a@b.c",
        "agent": "planner",
        "organization_id": "acme",
        "response_quality_score": 0.75,
        "tags": ["beta", "eu"],
    }
    # /v1/messages: meterline metadata is under litellm_metadata (metadata is Anthropic's own field)
    messages = {"metadata": {"user_id": "x"}, "litellm_metadata": {"product_id": "p1"}}
    assert identity.caller_metadata({}, messages, "anthropic_messages") == {"product_id": "p1"}


def test_bad_header_values_are_dropped_not_raised() -> None:
    md = identity.caller_metadata({"x-meterline-response-quality-score": "high", "x-meterline-agent": "a"}, {}, None)
    assert md == {"agent": "a"}


def test_key_bound_identity_wins_unless_override_is_allowed() -> None:
    caller = {"team_id": "spoofed", "organization_id": "spoofed-org", "subscriber_id": "s"}
    key = identity.key_identity({"user_api_key_team_id": "team-a", "user_api_key_alias": "app", "other": 1})
    assert key == {"team_id": "team-a", "api_key_alias": "app"}
    assert identity.resolve(caller, key, allow_override=False) == {
        "team_id": "team-a",
        "subscriber_id": "s",  # the key has no organization: the caller cannot name one (default)
        "api_key_alias": "app",
    }
    assert identity.resolve(caller, key, allow_override=True)["team_id"] == "spoofed"


def test_a_key_binding_no_team_or_organization_cannot_claim_one_unless_trusted() -> None:
    """The hardening issue: a key that binds no organization or team (the master key, a key without a team)
    could name any through x-meterline-*/x-revenium-* headers, charging another team's budget."""
    headers = {
        "x-meterline-team-id": "team-b",
        "x-revenium-organization-id": "other-org",
        "x-meterline-user-id": "bob",
        "x-meterline-api-key-alias": "someone-else",
        "x-meterline-subscriber-id": "sub-1",
    }
    caller = identity.caller_metadata(headers, {"metadata": {"team_id": "team-c"}}, "acompletion")
    assert caller["team_id"] == "team-b" and caller["organization_id"] == "other-org"
    unbound: dict[str, str] = {}  # the master key
    assert identity.resolve(caller, unbound, allow_override=False) == {"subscriber_id": "sub-1"}
    trusted = identity.resolve(caller, unbound, allow_override=False, trust_caller_identity=True)
    assert trusted == {
        "team_id": "team-b",
        "organization_id": "other-org",
        "user_id": "bob",
        "api_key_alias": "someone-else",
        "subscriber_id": "sub-1",
    }
    team_only = {"team_id": "team-a"}  # binds a team, not an organization
    assert identity.resolve(caller, team_only, allow_override=False) == {"team_id": "team-a", "subscriber_id": "sub-1"}
    assert identity.resolve(caller, team_only, allow_override=False, trust_caller_identity=True)["team_id"] == "team-a"
    # the operator's override switch lets callers set everything, as before
    assert identity.resolve(caller, team_only, allow_override=True)["team_id"] == "team-b"


@pytest.mark.parametrize(("env", "want_team", "want_org"), [(None, None, None), ("true", "team-b", "other-org")])
def test_the_proxy_handler_reads_the_trust_setting(
    monkeypatch: pytest.MonkeyPatch, env: str | None, want_team: str | None, want_org: str | None
) -> None:
    from types import SimpleNamespace

    from meterline.gateway.callback import MeterlineProxyHandler

    if env is None:
        monkeypatch.delenv("METERLINE_GATEWAY_TRUST_CALLER_IDENTITY", raising=False)
    else:
        monkeypatch.setenv("METERLINE_GATEWAY_TRUST_CALLER_IDENTITY", env)
    handler = MeterlineProxyHandler()
    assert handler.trust_caller_identity is (env == "true")
    master = SimpleNamespace(key_alias=None, team_id=None, org_id=None, user_id=None, token="c" * 64)
    data = {
        "proxy_server_request": {
            "headers": {"x-meterline-team-id": "team-b", "x-meterline-organization-id": "other-org"},
            "body": {"model": "gpt-4o-mini", "metadata": {"subscriber_id": "sub-9"}},
        }
    }
    md = handler._request_identity(master, data, "acompletion")  # what budgets are checked against
    assert (md.get("team_id"), md.get("organization_id"), md["subscriber_id"]) == (want_team, want_org, "sub-9")
    bound = SimpleNamespace(key_alias="app-a", team_id="team-a", org_id=None, user_id=None, token="d" * 64)
    md = handler._request_identity(bound, data, "acompletion")
    assert (md["team_id"], md.get("organization_id")) == ("team-a", want_org)  # the key's team always wins
    explicit = MeterlineProxyHandler(trust_caller_identity=False)
    assert "team_id" not in explicit._request_identity(master, data, "acompletion")


def test_raw_keys_are_hashed() -> None:
    digest = hashlib.sha256(b"sk-raw").hexdigest()
    assert identity.key_hash(digest) == digest
    assert identity.key_hash("sk-raw") == digest
    assert identity.key_hash(None) is None and identity.key_hash("") is None


def test_auth_key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = tmp_path / "keys.yaml"
    keys.write_text("keys:\n  sk-1: {key_alias: a, team_id: t, rpm_limit: 5}\n")
    monkeypatch.setenv("METERLINE_GATEWAY_KEYS", str(keys))
    monkeypatch.setenv("LITELLM_MASTER_KEY", "sk-master")
    assert auth.lookup("sk-1") == {"key_alias": "a", "team_id": "t", "rpm_limit": 5}
    assert auth.lookup("sk-master") == {}
    assert auth.lookup("sk-2") is None
    monkeypatch.setenv("METERLINE_GATEWAY_KEYS", json.dumps({"keys": {"sk-j": {"org_id": "o"}}}))
    assert auth.lookup("sk-j") == {"org_id": "o"}
    with pytest.raises(auth.KeyFileError, match="team: unknown field"):
        auth.parse_keys({"keys": {"sk-x": {"team": "t"}}})
    with pytest.raises(auth.KeyFileError, match="rpm_limit: must be a positive integer"):
        auth.parse_keys({"keys": {"sk-x": {"rpm_limit": "many"}}})
    with pytest.raises(auth.KeyFileError, match="'keys' object"):
        auth.parse_keys(["sk-x"])


def test_gateway_adds_the_callback_once(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("model_list: []\nlitellm_settings:\n  callbacks: [other.cb]\n")
    prepared = prepare_config(config)
    assert prepared.parent == tmp_path and prepared != config  # next to it: relative modules still resolve
    assert yaml.safe_load(prepared.read_text())["litellm_settings"]["callbacks"] == ["other.cb", CALLBACK]
    assert prepare_config(prepared) == prepared  # already there: used as is
    bare = prepare_config(prepared, meter=False)
    assert yaml.safe_load(bare.read_text())["litellm_settings"]["callbacks"] == ["other.cb"]
    example = Path(__file__).resolve().parents[1] / "examples" / "gateway.yaml"
    assert prepare_config(example) == example


async def test_an_abandoned_stream_litellm_never_logs_is_recorded_from_the_estimate(
    meter_db: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from meterline.gateway import events as gw_events
    from meterline.gateway.callback import MeterlineProxyHandler

    monkeypatch.setenv("METERLINE_BUDGETS", "off")
    handler = MeterlineProxyHandler()
    key = SimpleNamespace(key_alias="app-a", team_id="team-a", org_id=None, user_id=None, token="a" * 64)
    request = {
        "litellm_call_id": "call-1",
        "model": "fast",
        "messages": [{"role": "user", "content": "tell me a long story"}],  # 20 characters -> 5 tokens
    }

    async def upstream() -> object:
        for text in ("", "Once", " upon a time"):  # 16 characters of text -> 4 tokens
            yield SimpleNamespace(model="gpt-4o-mini", usage=None, choices=[SimpleNamespace(delta={"content": text})])

    stream = handler.async_post_call_streaming_iterator_hook(key, upstream(), request)
    assert (await stream.__anext__()).model == "gpt-4o-mini"
    await stream.__anext__()
    await stream.__anext__()
    await stream.aclose()  # the client hung up before the end
    handler.expire_cancelled(max_age_s=0)  # no success from LiteLLM within the grace period
    [e] = meter_db.events()  # type: ignore[attr-defined]
    assert e.id == gw_events.event_id("call-1")
    assert (e.status, e.stop_reason, e.usage_source, e.input_tokens, e.output_tokens) == (
        "cancelled",
        "cancelled",
        "estimated",
        5,
        4,
    )
    assert (e.model, e.model_group, e.api_key_alias, e.team_id, e.api_key_hash) == (
        "gpt-4o-mini",
        "fast",
        "app-a",
        "team-a",
        identity.key_hash("a" * 64),
    )
    handler.expire_cancelled(max_age_s=0)
    assert len(meter_db.events()) == 1  # type: ignore[attr-defined]


async def test_at_shutdown_an_abandoned_stream_still_held_is_recorded(
    meter_db: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from meterline.gateway.callback import MeterlineProxyHandler

    monkeypatch.setenv("METERLINE_BUDGETS", "off")
    handler = MeterlineProxyHandler()
    key = SimpleNamespace(key_alias="app-a", team_id=None, org_id=None, user_id=None, token="b" * 64)

    async def upstream() -> object:
        yield SimpleNamespace(model="gpt-4o-mini", usage=None, choices=[SimpleNamespace(delta={"content": "Hi"})])
        yield SimpleNamespace(model="gpt-4o-mini", usage=None, choices=[SimpleNamespace(delta={"content": "!"})])

    stream = handler.async_post_call_streaming_iterator_hook(key, upstream(), {"litellm_call_id": "call-2"})
    await stream.__anext__()
    await stream.aclose()
    assert meter_db.events() == []  # type: ignore[attr-defined]  # held: LiteLLM may still log the call
    handler.expire_all()  # the proxy shuts down: nothing more will come for it
    [e] = meter_db.events()  # type: ignore[attr-defined]
    assert (e.status, e.usage_source, e.output_tokens, e.api_key_alias) == ("cancelled", "estimated", 1, "app-a")


def test_the_proxy_shutdown_wrapper_is_installed_on_registration_not_at_import() -> None:
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import os
        os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
        import litellm.proxy.proxy_server as ps
        own = ps.proxy_shutdown_event
        import meterline.integrations.litellm_proxy as old_name  # what proxy configs name
        from meterline.gateway import callback
        assert old_name.handler is callback.handler
        print("import", ps.proxy_shutdown_event is own)
        callback.instrument()
        callback.instrument()  # idempotent: wrapped once
        wrapped = ps.proxy_shutdown_event
        print("registered", wrapped is not own)
        callback.uninstrument()
        print("unregistered", ps.proxy_shutdown_event is own)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines() == ["import True", "registered True", "unregistered True"]
