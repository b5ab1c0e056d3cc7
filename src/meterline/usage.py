"""Token usage normalisation: the one place where provider usage shapes become schema-v1 counts.

Schema v1 counts are additive and non-overlapping:
``input_tokens`` (uncached input only) + ``cache_read_tokens`` + ``cache_write_tokens`` + ``output_tokens``
= ``total_tokens``; ``reasoning_tokens`` is a subset of ``output_tokens`` and ``cache_write_1h_tokens`` a
subset of ``cache_write_tokens``.

Providers disagree:
- OpenAI-style (OpenAI, Azure, most OpenAI-compatible servers, LiteLLM's normalised ``Usage``):
  ``prompt_tokens`` INCLUDES cached tokens (``prompt_tokens_details.cached_tokens``);
  ``completion_tokens`` includes ``completion_tokens_details.reasoning_tokens``.
  LiteLLM also puts Anthropic's cache counts in ``cache_read_input_tokens`` /
  ``cache_creation_input_tokens`` and counts them inside ``prompt_tokens``.
- Anthropic-style (Anthropic Messages API, Bedrock invoke_model for Claude): ``input_tokens`` is
  uncached only; ``cache_read_input_tokens`` and ``cache_creation_input_tokens`` are reported apart.
- Bedrock Converse: ``inputTokens`` is uncached; ``cacheReadInputTokens`` / ``cacheWriteInputTokens`` apart.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any


@dataclasses.dataclass(slots=True, frozen=True)
class TokenUsage:
    input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens + self.output_tokens


def get_field(obj: Any, key: str) -> Any:
    """Read ``key`` from a dict or an attribute-style object (pydantic models, SDK types)."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)


def _int(value: Any) -> int:
    if value is None or isinstance(value, bool):
        return 0
    try:
        n = int(value)
    except (TypeError, ValueError):
        return 0
    return max(n, 0)


def from_openai(usage: Any) -> TokenUsage:
    """OpenAI chat/completions/embeddings usage, and LiteLLM's normalised ``Usage`` object."""
    prompt = _int(get_field(usage, "prompt_tokens"))
    if prompt == 0:
        prompt = _int(get_field(usage, "input_tokens"))  # Responses API spelling
    completion = _int(get_field(usage, "completion_tokens"))
    if completion == 0:
        completion = _int(get_field(usage, "output_tokens"))
    prompt_details = get_field(usage, "prompt_tokens_details") or get_field(usage, "input_tokens_details")
    completion_details = get_field(usage, "completion_tokens_details") or get_field(usage, "output_tokens_details")
    # LiteLLM reports Anthropic/Bedrock cache counts under Anthropic's names and counts them in prompt_tokens.
    cache_read = _int(get_field(usage, "cache_read_input_tokens")) or _int(get_field(prompt_details, "cached_tokens"))
    cache_write = _int(get_field(usage, "cache_creation_input_tokens")) or _int(
        get_field(prompt_details, "cache_creation_tokens")
    )
    cache_1h = _int(get_field(get_field(usage, "cache_creation"), "ephemeral_1h_input_tokens"))
    reasoning = _int(get_field(completion_details, "reasoning_tokens"))
    uncached = max(prompt - cache_read - cache_write, 0)
    return TokenUsage(
        input_tokens=uncached,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        cache_write_1h_tokens=min(cache_1h, cache_write),
        output_tokens=completion,
        reasoning_tokens=min(reasoning, completion),
    )


def from_anthropic(usage: Any) -> TokenUsage:
    """Anthropic Messages usage (also Bedrock invoke_model for Claude): input is uncached only."""
    cache_write = _int(get_field(usage, "cache_creation_input_tokens"))
    creation = get_field(usage, "cache_creation")
    cache_1h = _int(get_field(creation, "ephemeral_1h_input_tokens"))
    if creation is not None and cache_write == 0:
        cache_write = _int(get_field(creation, "ephemeral_5m_input_tokens")) + cache_1h
    return TokenUsage(
        input_tokens=_int(get_field(usage, "input_tokens")),
        cache_read_tokens=_int(get_field(usage, "cache_read_input_tokens")),
        cache_write_tokens=cache_write,
        cache_write_1h_tokens=min(cache_1h, cache_write),
        output_tokens=_int(get_field(usage, "output_tokens")),
    )


def from_bedrock_converse(usage: Any) -> TokenUsage:
    """Bedrock Converse ``usage``: ``inputTokens`` is uncached; cache counts are separate."""
    return TokenUsage(
        input_tokens=_int(get_field(usage, "inputTokens")),
        cache_read_tokens=_int(get_field(usage, "cacheReadInputTokens")),
        cache_write_tokens=_int(get_field(usage, "cacheWriteInputTokens")),
        output_tokens=_int(get_field(usage, "outputTokens")),
    )


def apply(event: Any, usage: TokenUsage) -> None:
    """Copy normalised counts onto a :class:`~meterline.event.UsageEvent`."""
    event.input_tokens = usage.input_tokens
    event.cache_read_tokens = usage.cache_read_tokens
    event.cache_write_tokens = usage.cache_write_tokens
    event.cache_write_1h_tokens = usage.cache_write_1h_tokens
    event.output_tokens = usage.output_tokens
    event.reasoning_tokens = usage.reasoning_tokens
    event.total_tokens = usage.total_tokens


def prompt_chars(body: Any) -> int:
    """Characters of prompt text in a request body (``messages``/``prompt``/``input``/``system``/``instructions``;
    string contents and ``text`` blocks). Only for estimates, when a provider reports no usage."""
    total = 0
    stack: list[Any] = [get_field(body, k) for k in ("instructions", "system", "input", "prompt", "messages")]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, Mapping):
            stack.extend(item.get(k) for k in ("text", "content"))
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return total


def estimate(prompt_chars: int, output_chars: int) -> TokenUsage:
    """Counts for a call the provider never reported usage for (an abandoned OpenAI-style stream): about four
    characters a token. Events carrying it say ``usage_source="estimated"``."""
    return TokenUsage(input_tokens=-(-prompt_chars // 4), output_tokens=-(-output_chars // 4))
