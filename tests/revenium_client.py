"""Run by tests/test_interop_revenium.py in the revenium-python-sdk venv (not collected by pytest): real
calls through Revenium's LiteLLM or Anthropic middleware against the fake provider, metered to the URL
in REVENIUM_METERING_BASE_URL. Prints the provider's usage of each call as JSON on the last line."""

from __future__ import annotations

import json
import sys

MSGS = [{"role": "user", "content": "What is the status of order 42?"}]
META = {"organizationName": "acme", "taskType": "support", "agent": "helpdesk", "traceId": "trace-1"}


def main(mode: str, provider_url: str) -> None:
    from revenium_middleware._core.metering import flush_metering

    out = []
    if mode == "litellm":
        import litellm
        import revenium_middleware.litellm.client.middleware

        for user in ("cust-1", "cust-2"):
            r = litellm.completion(
                model="openai/gpt-4o-mini",
                api_base=provider_url + "/v1",
                api_key="k",
                messages=MSGS,
                usage_metadata={**META, "subscriber": {"id": user, "email": f"{user}@example.com"}},
            )
            details = r.usage.prompt_tokens_details
            out.append(
                {
                    "id": r.id,
                    "prompt": r.usage.prompt_tokens,
                    "completion": r.usage.completion_tokens,
                    "cached": getattr(details, "cached_tokens", 0) or 0,
                }
            )
    else:
        import anthropic
        import revenium_middleware.anthropic  # noqa: F401 - patches the Anthropic SDK on import

        client = anthropic.Anthropic(base_url=provider_url, api_key="k")
        r = client.messages.create(
            model="claude-3-5-haiku-20241022",
            max_tokens=100,
            messages=MSGS,
            usage_metadata={**META, "subscriber": {"id": "cust-3"}},
        )
        u = r.usage
        out.append(
            {
                "id": r.id,
                "input": u.input_tokens,
                "output": u.output_tokens,
                "cache_read": u.cache_read_input_tokens or 0,
                "cache_write": u.cache_creation_input_tokens or 0,
            }
        )
    flush_metering(15)
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
