"""Constants that several layers share (integrations, gateway, server): kept in the core so no layer imports
another sideways for them."""

from __future__ import annotations

# The meterline gateway adds this response header (value "gateway") to calls it meters; an SDK integration
# that sees it on a response records nothing for that call, so app and gateway never both count it.
GATEWAY_HEADER = "x-meterline-metered"

# OpenAI-style finish reasons (what LiteLLM reports, plus the ones some providers pass through) -> schema
# ``stop_reason``.
FINISH_REASONS: dict[str, str] = {
    "stop": "end",
    "end_turn": "end",
    "eos": "end",
    "length": "max_tokens",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "tool_use": "tool_use",
    "content_filter": "content_filter",
}

# Anthropic stop reasons (also Bedrock Converse's ``stopReason``) -> schema ``stop_reason``.
ANTHROPIC_STOP_REASONS: dict[str, str] = {
    "end_turn": "end",
    "pause_turn": "end",
    "max_tokens": "max_tokens",
    "model_context_window_exceeded": "max_tokens",
    "stop_sequence": "stop_sequence",
    "tool_use": "tool_use",
    "refusal": "content_filter",
    "content_filtered": "content_filter",
    "guardrail_intervened": "content_filter",
}
