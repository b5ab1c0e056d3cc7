"""Reference test: meterline's price of (provider, model, usage, instant) against genai-prices' own ``calc_price``.

The expected costs are computed independently, here, by genai-prices' public API (``genai_prices.calc_price``
with the genai-prices provider id and the provider's native model id), never by meterline's pricer. meterline
is called the way the integrations call it: the provider name LiteLLM uses and the model id as requested
(every other row with LiteLLM's routing prefix). Agreement is to 1e-9 USD, on the total and on the input and
output sides, for every row: 197 models called through 15 providers (14 genai-prices price lists) x 6 usage
shapes x 2 instants (DeepSeek's peak and off-peak) = 2,364 rows, plus service tiers. Before issue 16's fixes,
230 of these rows disagreed (23 models: DeepSeek time-of-day, Groq/Fireworks native ids, Perplexity fees).

Deliberate differences (documented, tested below):
1. ``pricing_source``: where genai-prices silently uses another provider's list (Azure -> OpenAI, Google ->
   Anthropic, or the "any provider whose pattern matches" lookup), meterline applies the same price but says so
   (``;fallback:<provider>``). Costs agree.
2. Per-unit fees whose count the reply did not report: genai-prices prices a missing count as 0; meterline does
   too but marks the cost ``;partial:<unit>`` when the unit is billed on every call (Perplexity web searches),
   so a lower bound is never taken for the full price. Costs agree.
3. Token costs are quantised to a pico-dollar per component (the event's storage precision); genai-prices keeps
   full Decimal precision. The difference is below 4e-12 USD per event, inside the 1e-9 tolerance.
"""

from __future__ import annotations

import warnings
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from genai_prices import Usage, calc_price

from meterline.core.event import UsageEvent
from meterline.pricing import Pricer

TOLERANCE = Decimal("1e-9")
OFF_PEAK = datetime(2026, 11, 20, 20, 0, tzinfo=timezone.utc)
PEAK = datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)

# (meterline provider, model as requested, genai-prices provider id, native model id)
MODELS: list[tuple[str, str, str, str]] = [
    # anthropic (genai-prices provider 'anthropic')
    ("anthropic", "anthropic/claude-v1", "anthropic", "claude-v1"),
    ("anthropic", "claude-sonnet-5-5", "anthropic", "claude-sonnet-5-5"),
    ("anthropic", "anthropic/claude-sonnet-5", "anthropic", "claude-sonnet-5"),
    ("anthropic", "claude-sonnet-4-6", "anthropic", "claude-sonnet-4-6"),
    ("anthropic", "anthropic/claude-sonnet-4-5", "anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-sonnet-4-0", "anthropic", "claude-sonnet-4-0"),
    ("anthropic", "anthropic/claude-opus-5-5", "anthropic", "claude-opus-5-5"),
    ("anthropic", "claude-opus-5", "anthropic", "claude-opus-5"),
    ("anthropic", "anthropic/claude-opus-4-8", "anthropic", "claude-opus-4-8"),
    ("anthropic", "claude-opus-4-7", "anthropic", "claude-opus-4-7"),
    ("anthropic", "anthropic/claude-opus-4-6", "anthropic", "claude-opus-4-6"),
    ("anthropic", "claude-opus-4-5", "anthropic", "claude-opus-4-5"),
    ("anthropic", "anthropic/claude-opus-4-1", "anthropic", "claude-opus-4-1"),
    ("anthropic", "claude-opus-4-0", "anthropic", "claude-opus-4-0"),
    ("anthropic", "anthropic/claude-mythos-5-2", "anthropic", "claude-mythos-5-2"),
    ("anthropic", "claude-haiku-5-5", "anthropic", "claude-haiku-5-5"),
    ("anthropic", "anthropic/claude-haiku-4-5", "anthropic", "claude-haiku-4-5"),
    ("anthropic", "claude-fable-5-2", "anthropic", "claude-fable-5-2"),
    ("anthropic", "anthropic/claude-fable-5-1", "anthropic", "claude-fable-5-1"),
    ("anthropic", "claude-fable-5", "anthropic", "claude-fable-5"),
    # azure (genai-prices provider 'azure')
    ("azure", "azure/wizardlm-2-8x22b", "azure", "wizardlm-2-8x22b"),
    ("azure", "phi-4-reasoning-plus", "azure", "phi-4-reasoning-plus"),
    ("azure", "azure/phi-4-multimodal-instruct", "azure", "phi-4-multimodal-instruct"),
    ("azure", "phi-4-mini-instruct", "azure", "phi-4-mini-instruct"),
    ("azure", "azure/phi-4", "azure", "phi-4"),
    ("azure", "phi-3.5-mini-128k-instruct", "azure", "phi-3.5-mini-128k-instruct"),
    # bedrock (genai-prices provider 'aws')
    ("bedrock", "bedrock/writer.palmyra-x5-v1:0", "aws", "writer.palmyra-x5-v1:0"),
    ("bedrock", "writer.palmyra-x4-v1:0", "aws", "writer.palmyra-x4-v1:0"),
    (
        "bedrock",
        "bedrock/regional.anthropic.claude-3-sonnet-20240229-v1:0",
        "aws",
        "regional.anthropic.claude-3-sonnet-20240229-v1:0",
    ),
    (
        "bedrock",
        "regional.anthropic.claude-3-opus-20240229-v1:0",
        "aws",
        "regional.anthropic.claude-3-opus-20240229-v1:0",
    ),
    (
        "bedrock",
        "bedrock/regional.anthropic.claude-3-haiku-20240307-v1:0",
        "aws",
        "regional.anthropic.claude-3-haiku-20240307-v1:0",
    ),
    (
        "bedrock",
        "regional.anthropic.claude-3-7-sonnet-20250219-v1:0",
        "aws",
        "regional.anthropic.claude-3-7-sonnet-20250219-v1:0",
    ),
    (
        "bedrock",
        "bedrock/regional.anthropic.claude-3-5-sonnet-20241022-v2:0",
        "aws",
        "regional.anthropic.claude-3-5-sonnet-20241022-v2:0",
    ),
    (
        "bedrock",
        "regional.anthropic.claude-3-5-sonnet-20240620-v1:0",
        "aws",
        "regional.anthropic.claude-3-5-sonnet-20240620-v1:0",
    ),
    (
        "bedrock",
        "bedrock/regional.anthropic.claude-3-5-haiku-20241022-v1:0",
        "aws",
        "regional.anthropic.claude-3-5-haiku-20241022-v1:0",
    ),
    ("bedrock", "qwen.qwen3-vl-235b-a22b-v1:0", "aws", "qwen.qwen3-vl-235b-a22b-v1:0"),
    ("bedrock", "bedrock/qwen.qwen3-coder-480b-a35b-v1:0", "aws", "qwen.qwen3-coder-480b-a35b-v1:0"),
    ("bedrock", "qwen.qwen3-coder-30b-a3b-v1:0", "aws", "qwen.qwen3-coder-30b-a3b-v1:0"),
    ("bedrock", "bedrock/qwen.qwen3-32b-v1:0", "aws", "qwen.qwen3-32b-v1:0"),
    ("bedrock", "openai.gpt-oss-20b-1:0", "aws", "openai.gpt-oss-20b-1:0"),
    ("bedrock", "bedrock/openai.gpt-oss-120b-1:0", "aws", "openai.gpt-oss-120b-1:0"),
    ("bedrock", "openai.gpt-5.5", "aws", "openai.gpt-5.5"),
    ("bedrock", "bedrock/openai.gpt-5.4", "aws", "openai.gpt-5.4"),
    ("bedrock", "nvidia.nemotron-super-3-120b:0", "aws", "nvidia.nemotron-super-3-120b:0"),
    ("bedrock", "bedrock/nvidia.nemotron-nano-9b-v2:0", "aws", "nvidia.nemotron-nano-9b-v2:0"),
    ("bedrock", "nvidia.nemotron-nano-3-30b:0", "aws", "nvidia.nemotron-nano-3-30b:0"),
    ("bedrock", "bedrock/mistral.voxtral-small-24b-2507", "aws", "mistral.voxtral-small-24b-2507"),
    ("bedrock", "mistral.voxtral-mini-3b-2507", "aws", "mistral.voxtral-mini-3b-2507"),
    ("bedrock", "bedrock/mistral.pixtral-large-2502-v1:0", "aws", "mistral.pixtral-large-2502-v1:0"),
    ("bedrock", "mistral.mixtral-8x7b-instruct-v0:1", "aws", "mistral.mixtral-8x7b-instruct-v0:1"),
    # cohere (genai-prices provider 'cohere')
    ("cohere", "cohere/command-r7b", "cohere", "command-r7b"),
    ("cohere", "command-r-plus", "cohere", "command-r-plus"),
    ("cohere", "cohere/command-r", "cohere", "command-r"),
    ("cohere", "command-a", "cohere", "command-a"),
    ("cohere", "cohere/command", "cohere", "command"),
    ("cohere", "c4ai-aya-expanse-32b", "cohere", "c4ai-aya-expanse-32b"),
    # deepseek (genai-prices provider 'deepseek')
    ("deepseek", "deepseek/deepseek-v4-pro", "deepseek", "deepseek-v4-pro"),
    ("deepseek", "deepseek-v4-flash", "deepseek", "deepseek-v4-flash"),
    ("deepseek", "deepseek/deepseek-v3.2-exp", "deepseek", "deepseek-v3.2-exp"),
    ("deepseek", "deepseek-v3.2", "deepseek", "deepseek-v3.2"),
    ("deepseek", "deepseek/deepseek-v3.1-terminus", "deepseek", "deepseek-v3.1-terminus"),
    ("deepseek", "deepseek-reasoner", "deepseek", "deepseek-reasoner"),
    ("deepseek", "deepseek/deepseek-flash", "deepseek", "deepseek-flash"),
    ("deepseek", "deepseek-chat", "deepseek", "deepseek-chat"),
    # fireworks_ai (genai-prices provider 'fireworks')
    ("fireworks_ai", "fireworks_ai/qwen3p8-max", "fireworks", "accounts/fireworks/models/qwen3p8-max"),
    ("fireworks_ai", "qwen3p7-plus", "fireworks", "accounts/fireworks/models/qwen3p7-plus"),
    ("fireworks_ai", "fireworks_ai/qwen3p6-plus", "fireworks", "accounts/fireworks/models/qwen3p6-plus"),
    ("fireworks_ai", "qwen3-235b-a22b", "fireworks", "accounts/fireworks/models/qwen3-235b-a22b"),
    (
        "fireworks_ai",
        "fireworks_ai/qwen2p5-vl-72b-instruct",
        "fireworks",
        "accounts/fireworks/models/qwen2p5-vl-72b-instruct",
    ),
    (
        "fireworks_ai",
        "nemotron-lightning-3p5-30b-a3b",
        "fireworks",
        "accounts/fireworks/models/nemotron-lightning-3p5-30b-a3b",
    ),
    (
        "fireworks_ai",
        "fireworks_ai/nemotron-3-ultra-nvfp4",
        "fireworks",
        "accounts/fireworks/models/nemotron-3-ultra-nvfp4",
    ),
    ("fireworks_ai", "muse-spark-open", "fireworks", "accounts/fireworks/models/muse-spark-open"),
    ("fireworks_ai", "fireworks_ai/minimax-m3", "fireworks", "accounts/fireworks/models/minimax-m3"),
    ("fireworks_ai", "minimax-m2p7", "fireworks", "accounts/fireworks/models/minimax-m2p7"),
    # gemini (genai-prices provider 'google')
    ("gemini", "gemini/gemma-4-26b-a4b-it-maas", "google", "gemma-4-26b-a4b-it-maas"),
    ("gemini", "gemma-2-27b-it", "google", "gemma-2-27b-it"),
    ("gemini", "gemini/gemini-robotics-er-2-streaming-preview", "google", "gemini-robotics-er-2-streaming-preview"),
    ("gemini", "gemini-robotics-er-2-preview", "google", "gemini-robotics-er-2-preview"),
    ("gemini", "gemini/gemini-pro-1.5", "google", "gemini-pro-1.5"),
    ("gemini", "gemini-pro", "google", "gemini-pro"),
    ("gemini", "gemini/gemini-omni-flash-preview", "google", "gemini-omni-flash-preview"),
    ("gemini", "gemini-omni-1.1-flash", "google", "gemini-omni-1.1-flash"),
    ("gemini", "gemini/gemini-nano-banana-2.1", "google", "gemini-nano-banana-2.1"),
    ("gemini", "gemini-live-2.5-flash", "google", "gemini-live-2.5-flash"),
    ("gemini", "gemini/gemini-flash-1.5-8b", "google", "gemini-flash-1.5-8b"),
    ("gemini", "gemini-flash-1.5", "google", "gemini-flash-1.5"),
    ("gemini", "gemini/gemini-4-argon", "google", "gemini-4-argon"),
    ("gemini", "gemini-3.8-live", "google", "gemini-3.8-live"),
    ("gemini", "gemini/gemini-3.8-flash-tts", "google", "gemini-3.8-flash-tts"),
    ("gemini", "gemini-3.8-flash-lite-tts", "google", "gemini-3.8-flash-lite-tts"),
    ("gemini", "gemini/gemini-3.8-flash", "google", "gemini-3.8-flash"),
    ("gemini", "gemini-3.7-flash", "google", "gemini-3.7-flash"),
    ("gemini", "gemini/gemini-3.6-flash", "google", "gemini-3.6-flash"),
    ("gemini", "gemini-3.5-flash-lite", "google", "gemini-3.5-flash-lite"),
    ("gemini", "gemini/gemini-3.5-flash", "google", "gemini-3.5-flash"),
    ("gemini", "gemini-3.1-pro-preview", "google", "gemini-3.1-pro-preview"),
    # groq (genai-prices provider 'groq')
    ("groq", "groq/qwen/qwen3.8-27b", "groq", "qwen/qwen3.8-27b"),
    ("groq", "qwen/qwen3-32b", "groq", "qwen/qwen3-32b"),
    ("groq", "groq/openai/gpt-oss-safeguard-20b", "groq", "openai/gpt-oss-safeguard-20b"),
    ("groq", "openai/gpt-oss-20b", "groq", "openai/gpt-oss-20b"),
    ("groq", "groq/openai/gpt-oss-120b", "groq", "openai/gpt-oss-120b"),
    ("groq", "moonshotai/kimi-k2-instruct", "groq", "moonshotai/kimi-k2-instruct"),
    ("groq", "groq/mixtral-8x7b-32768", "groq", "mixtral-8x7b-32768"),
    ("groq", "mistral-saba-24b", "groq", "mistral-saba-24b"),
    ("groq", "groq/meta-llama/llama-prompt-guard-2-86m", "groq", "meta-llama/llama-prompt-guard-2-86m"),
    ("groq", "meta-llama/llama-prompt-guard-2-22m", "groq", "meta-llama/llama-prompt-guard-2-22m"),
    ("groq", "groq/meta-llama/llama-guard-4-12b", "groq", "meta-llama/llama-guard-4-12b"),
    ("groq", "meta-llama/llama-4-scout-17b-16e-instruct", "groq", "meta-llama/llama-4-scout-17b-16e-instruct"),
    # mistral (genai-prices provider 'mistral')
    ("mistral", "mistral/zai-glm-5-3-flash", "mistral", "zai-glm-5-3-flash"),
    ("mistral", "zai-glm-5-3", "mistral", "zai-glm-5-3"),
    ("mistral", "mistral/voxtral-small-24b-2507", "mistral", "voxtral-small-24b-2507"),
    ("mistral", "pixtral-12b", "mistral", "pixtral-12b"),
    ("mistral", "mistral/mixtral-8x7b", "mistral", "mixtral-8x7b"),
    ("mistral", "mixtral-8x22b-instruct", "mistral", "mixtral-8x22b-instruct"),
    ("mistral", "mistral/mistral-small-latest", "mistral", "mistral-small-latest"),
    ("mistral", "mistral-small-3.2-24b-instruct", "mistral", "mistral-small-3.2-24b-instruct"),
    ("mistral", "mistral/mistral-small-3.1-24b-instruct", "mistral", "mistral-small-3.1-24b-instruct"),
    ("mistral", "mistral-small-2603", "mistral", "mistral-small-2603"),
    ("mistral", "mistral/mistral-small-24b-instruct-2501", "mistral", "mistral-small-24b-instruct-2501"),
    ("mistral", "mistral-saba", "mistral", "mistral-saba"),
    ("mistral", "mistral/mistral-nemo", "mistral", "mistral-nemo"),
    ("mistral", "mistral-medium-latest", "mistral", "mistral-medium-latest"),
    # moonshot (genai-prices provider 'moonshotai')
    ("moonshot", "moonshot/kimi-k3.1-pro-highspeed", "moonshotai", "kimi-k3.1-pro-highspeed"),
    ("moonshot", "kimi-k3.1-pro", "moonshotai", "kimi-k3.1-pro"),
    ("moonshot", "moonshot/kimi-k3", "moonshotai", "kimi-k3"),
    ("moonshot", "kimi-k2.7-code-highspeed", "moonshotai", "kimi-k2.7-code-highspeed"),
    ("moonshot", "moonshot/kimi-k2.7-code", "moonshotai", "kimi-k2.7-code"),
    # openai (genai-prices provider 'openai')
    ("openai", "openai/text-davinci-003", "openai", "text-davinci-003"),
    ("openai", "text-davinci-002", "openai", "text-davinci-002"),
    ("openai", "openai/o4-mini-deep-research", "openai", "o4-mini-deep-research"),
    ("openai", "o4-mini", "openai", "o4-mini"),
    ("openai", "openai/o3-pro", "openai", "o3-pro"),
    ("openai", "o3-mini", "openai", "o3-mini"),
    ("openai", "openai/o3-deep-research", "openai", "o3-deep-research"),
    ("openai", "o3", "openai", "o3"),
    ("openai", "openai/o1-pro", "openai", "o1-pro"),
    ("openai", "o1-preview", "openai", "o1-preview"),
    ("openai", "openai/o1-mini", "openai", "o1-mini"),
    ("openai", "o1", "openai", "o1"),
    ("openai", "openai/gpt-rosalind-research", "openai", "gpt-rosalind-research"),
    ("openai", "gpt-rosalind-discovery", "openai", "gpt-rosalind-discovery"),
    ("openai", "openai/gpt-realtime-mini", "openai", "gpt-realtime-mini"),
    ("openai", "gpt-realtime-2", "openai", "gpt-realtime-2"),
    ("openai", "openai/gpt-realtime", "openai", "gpt-realtime"),
    ("openai", "gpt-oss-safeguard-20b", "openai", "gpt-oss-safeguard-20b"),
    ("openai", "openai/gpt-oss-20b", "openai", "gpt-oss-20b"),
    ("openai", "gpt-oss-120b", "openai", "gpt-oss-120b"),
    ("openai", "openai/gpt-image-2.5-sunburst", "openai", "gpt-image-2.5-sunburst"),
    ("openai", "gpt-image-2.5-flare", "openai", "gpt-image-2.5-flare"),
    ("openai", "openai/gpt-image-2", "openai", "gpt-image-2"),
    ("openai", "gpt-image-1.5", "openai", "gpt-image-1.5"),
    ("openai", "openai/gpt-image-1-mini", "openai", "gpt-image-1-mini"),
    ("openai", "gpt-image-1", "openai", "gpt-image-1"),
    ("openai", "openai/gpt-chat-latest", "openai", "gpt-chat-latest"),
    ("openai", "gpt-audio-mini", "openai", "gpt-audio-mini"),
    ("openai", "openai/gpt-audio", "openai", "gpt-audio"),
    ("openai", "gpt-6.1-terra", "openai", "gpt-6.1-terra"),
    # perplexity (genai-prices provider 'perplexity')
    ("perplexity", "perplexity/sonar-reasoning-pro", "perplexity", "sonar-reasoning-pro"),
    ("perplexity", "sonar-reasoning", "perplexity", "sonar-reasoning"),
    ("perplexity", "perplexity/sonar-pro-search", "perplexity", "sonar-pro-search"),
    ("perplexity", "sonar-pro", "perplexity", "sonar-pro"),
    ("perplexity", "perplexity/sonar-deep-research", "perplexity", "sonar-deep-research"),
    ("perplexity", "sonar", "perplexity", "sonar"),
    ("perplexity", "perplexity/r1-1776", "perplexity", "r1-1776"),
    ("perplexity", "perplexity/perplexity/sonar", "perplexity", "perplexity/sonar"),
    # together_ai (genai-prices provider 'together')
    ("together_ai", "together_ai/zero-one-ai/Yi-6B", "together", "zero-one-ai/Yi-6B"),
    ("together_ai", "zero-one-ai/Yi-34B", "together", "zero-one-ai/Yi-34B"),
    ("together_ai", "together_ai/zai-org/GLM-5.3-Flash", "together", "zai-org/GLM-5.3-Flash"),
    ("together_ai", "zai-org/GLM-5.3", "together", "zai-org/GLM-5.3"),
    ("together_ai", "together_ai/zai-org/GLM-5.2", "together", "zai-org/GLM-5.2"),
    ("together_ai", "upstage/SOLAR-10.7B-Instruct-v1.0", "together", "upstage/SOLAR-10.7B-Instruct-v1.0"),
    ("together_ai", "together_ai/togethercomputer/alpaca-7b", "together", "togethercomputer/alpaca-7b"),
    ("together_ai", "togethercomputer/StripedHyena-Nous-7B", "together", "togethercomputer/StripedHyena-Nous-7B"),
    (
        "together_ai",
        "together_ai/togethercomputer/StripedHyena-Hessian-7B",
        "together",
        "togethercomputer/StripedHyena-Hessian-7B",
    ),
    (
        "together_ai",
        "togethercomputer/RedPajama-INCITE-Instruct-3B-v1",
        "together",
        "togethercomputer/RedPajama-INCITE-Instruct-3B-v1",
    ),
    # vertex_ai (genai-prices provider 'google')
    ("vertex_ai", "vertex_ai/claude-3-5-haiku", "google", "claude-3-5-haiku"),
    ("vertex_ai", "claude-3-5-sonnet", "google", "claude-3-5-sonnet"),
    ("vertex_ai", "vertex_ai/claude-3-7-sonnet", "google", "claude-3-7-sonnet"),
    ("vertex_ai", "claude-3-haiku", "google", "claude-3-haiku"),
    ("vertex_ai", "vertex_ai/claude-3-opus", "google", "claude-3-opus"),
    ("vertex_ai", "claude-4-opus", "google", "claude-4-opus"),
    ("vertex_ai", "vertex_ai/claude-4-sonnet", "google", "claude-4-sonnet"),
    ("vertex_ai", "claude-fable-5", "google", "claude-fable-5"),
    ("vertex_ai", "vertex_ai/claude-fable-5-1", "google", "claude-fable-5-1"),
    ("vertex_ai", "claude-fable-5-2", "google", "claude-fable-5-2"),
    # xai (genai-prices provider 'x-ai')
    ("xai", "xai/grok-code-fast-1", "x-ai", "grok-code-fast-1"),
    ("xai", "grok-build-0.1", "x-ai", "grok-build-0.1"),
    ("xai", "xai/grok-4.7", "x-ai", "grok-4.7"),
    ("xai", "grok-4.6", "x-ai", "grok-4.6"),
    ("xai", "xai/grok-4.5", "x-ai", "grok-4.5"),
    ("xai", "grok-4.3", "x-ai", "grok-4.3"),
    ("xai", "xai/grok-4.20-multi-agent-0309", "x-ai", "grok-4.20-multi-agent-0309"),
    ("xai", "grok-4.20", "x-ai", "grok-4.20"),
    ("xai", "xai/grok-4-fast-reasoning", "x-ai", "grok-4-fast-reasoning"),
    ("xai", "grok-4-fast-non-reasoning", "x-ai", "grok-4-fast-non-reasoning"),
    ("xai", "xai/grok-4-1-fast-reasoning", "x-ai", "grok-4-1-fast-reasoning"),
    ("xai", "grok-4-1-fast-non-reasoning", "x-ai", "grok-4-1-fast-non-reasoning"),
]

# name -> (input uncached, cache read, cache write, of which 1h, output, of which reasoning)
SHAPES: dict[str, tuple[int, int, int, int, int, int]] = {
    "plain": (1200, 0, 0, 0, 300, 0),
    "cache_read": (200, 5000, 0, 0, 300, 0),
    "cache_write_5m": (200, 0, 3000, 0, 100, 0),
    "cache_write_1h": (200, 1000, 3000, 2000, 100, 0),
    "reasoning": (1000, 0, 0, 0, 2000, 1500),
    "long_context": (150_000, 100_000, 0, 0, 4000, 0),
}


def _genai(genai_provider: str, model_id: str, shape: str, when: datetime, tier: str | None = None) -> tuple:
    inp, read, write, write_1h, out, reasoning = SHAPES[shape]
    counts = {"input_tokens": inp + read + write, "output_tokens": out}
    for key, value in (
        ("cache_read_tokens", read),
        ("cache_write_tokens", write),
        ("cache_write_1h_tokens", write_1h),
        ("output_reasoning_tokens", reasoning),
    ):
        if value:
            counts[key] = value
    context = None if tier is None else ({"processing": "batch"} if tier == "batch" else {"service_tier": tier})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = calc_price(
            Usage(**counts),
            model_id,
            provider_id=genai_provider,
            genai_request_timestamp=when,
            price_context=context,
        )
    return ref.input_price, ref.output_price, ref.total_price


def _meterline(pricer: Pricer, provider: str, model: str, shape: str, when: datetime, tier: str | None = None):
    inp, read, write, write_1h, out, reasoning = SHAPES[shape]
    e = UsageEvent(
        provider=provider,
        model=model,
        start_time=when,
        input_tokens=inp,
        cache_read_tokens=read,
        cache_write_tokens=write,
        cache_write_1h_tokens=write_1h,
        output_tokens=out,
        reasoning_tokens=reasoning,
    )
    if tier is not None:
        e.attributes["meterline.service_tier"] = tier
    e.finalize_totals()
    pricer.price(e)
    return e


def test_the_table_covers_at_least_150_models_from_many_providers() -> None:
    assert len({(p, n) for _, _, p, n in MODELS}) >= 150
    assert len({p for p, _, _, _ in MODELS}) >= 12


def test_every_row_agrees_with_genai_prices() -> None:
    # one pricer for every row: its cache must never hand one instant's price to another. Without meterline's shipped
    # corrections: this compares the arithmetic with genai-prices' own (tests/test_price_corrections.py checks those)
    pricer = Pricer(corrections=())
    disagreements = []
    rows = 0
    for when in (OFF_PEAK, PEAK):
        for provider, model, genai_provider, model_id in MODELS:
            for shape in SHAPES:
                want_in, want_out, want_total = _genai(genai_provider, model_id, shape, when)
                e = _meterline(pricer, provider, model, shape, when)
                rows += 1
                assert e.total_cost is not None, (provider, model, e.pricing_source)
                got_in = e.input_cost + e.cache_read_cost + e.cache_write_cost  # type: ignore[operator]
                if (
                    abs(e.total_cost - want_total) > TOLERANCE
                    or abs(got_in - want_in) > TOLERANCE
                    or abs(e.output_cost - want_out) > TOLERANCE  # type: ignore[operator]
                ):
                    disagreements.append((provider, model, shape, when.hour, e.total_cost, want_total))
                assert e.pricing_source is not None and e.pricing_source.startswith("genai-prices@")
                assert ";fallback:" not in e.pricing_source, (provider, model)  # priced under its own provider
    assert rows >= 150 * len(SHAPES) * 2
    assert disagreements == []


@pytest.mark.parametrize("tier", ["flex", "priority", "batch", "default"])
@pytest.mark.parametrize("model", ["gpt-5.1", "gpt-5.4-mini", "gpt-5.5", "gpt-5.6-sol"])
def test_service_tiers_agree_with_genai_prices(model: str, tier: str) -> None:
    pricer = Pricer(corrections=())
    for shape in SHAPES:
        _, _, want = _genai("openai", model, shape, OFF_PEAK, tier)
        e = _meterline(pricer, "openai", model, shape, OFF_PEAK, tier)
        assert e.total_cost is not None and abs(e.total_cost - want) <= TOLERANCE, (model, tier, shape)


def test_deliberate_difference_fallbacks_are_marked_with_the_same_cost() -> None:
    pricer = Pricer(corrections=())
    for provider, model, genai_provider, shape in (
        ("azure", "azure/gpt-4o", "azure", "cache_read"),
        ("azure", "gpt-5.1", "azure", "plain"),
    ):
        _, _, want = _genai(genai_provider, model.removeprefix("azure/"), shape, OFF_PEAK)
        e = _meterline(pricer, provider, model, shape, OFF_PEAK)
        assert e.total_cost is not None and abs(e.total_cost - want) <= TOLERANCE
        assert e.pricing_source is not None and e.pricing_source.endswith(";fallback:openai")


def test_deliberate_difference_unreported_search_counts_are_marked_partial_with_the_same_cost() -> None:
    e = _meterline(Pricer(corrections=()), "perplexity", "sonar-deep-research", "reasoning", OFF_PEAK)
    _, _, want = _genai("perplexity", "sonar-deep-research", "reasoning", OFF_PEAK)
    assert e.total_cost == want
    assert e.pricing_source is not None and e.pricing_source.endswith(";partial:web_searches")
