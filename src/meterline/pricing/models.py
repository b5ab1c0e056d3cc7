"""Provider-aware model ids: which prefixes are LiteLLM routing prefixes (strip them) and which are part of a
provider's own model id (keep them: Groq's ``openai/gpt-oss-120b`` is Groq's id, not an OpenAI model)."""

from __future__ import annotations

import re

# meterline/LiteLLM provider names -> genai-prices provider ids
GENAI_PROVIDER = {
    "bedrock": "aws",
    "bedrock_converse": "aws",
    "sagemaker": "aws",
    "vertex_ai": "google",
    "vertex_ai_beta": "google",
    "gemini": "google",
    "text-completion-openai": "openai",
    "azure_ai": "azure",
    "xai": "x-ai",
    "together_ai": "together",
    "fireworks_ai": "fireworks",
    "mistralai": "mistral",
    "moonshot": "moonshotai",
    "cohere_chat": "cohere",
    "meta_llama": "meta",
}

BEDROCK = frozenset({"bedrock", "bedrock_converse"})

# Prefixes that only route a call to ``provider`` (LiteLLM's "<provider>/" and its sub-routes). Anything else
# ("openai/", "meta-llama/", "qwen/" on Groq, Together, Fireworks, OpenRouter, …) is part of the provider's id.
_ROUTES: dict[str, tuple[str, ...]] = {
    "openai": ("openai/",),
    "text-completion-openai": ("text-completion-openai/", "openai/"),
    "anthropic": ("anthropic/",),
    "azure": ("azure/",),
    "azure_ai": ("azure_ai/",),
    "bedrock": ("bedrock/", "converse/", "invoke/"),
    "bedrock_converse": ("bedrock_converse/", "bedrock/", "converse/"),
    "vertex_ai": ("vertex_ai/", "vertex_ai_beta/"),
    "vertex_ai_beta": ("vertex_ai_beta/", "vertex_ai/"),
    "gemini": ("gemini/",),
}

_BEDROCK_ARN = re.compile(r"^arn:aws[a-z-]*:bedrock:[^:]*:[^:]*:(?:foundation-model|inference-profile)/(?P<id>.+)$")
# Cross-region inference profile prefixes ("us.anthropic.claude-…"); genai-prices prices "global." apart.
_BEDROCK_REGION = re.compile(r"^(?:us|eu|apac|global|us-gov|jp|au|ca)\.(?=[a-z0-9-]+\.)")


def genai_provider(provider: str) -> str:
    return GENAI_PROVIDER.get(provider, provider)


def bedrock_base_model(model: str) -> str:
    """A Bedrock model id without its inference-profile region prefix ("us.anthropic.x-v1:0" -> "anthropic.x-v1:0");
    used to match user price overrides written for the base model."""
    return _BEDROCK_REGION.sub("", model, count=1)


def normalise_model(provider: str, model: str) -> str:
    """Strip the routing prefixes of ``provider`` only ("openai/gpt-4o" under openai -> "gpt-4o",
    "groq/openai/gpt-oss-120b" under groq -> "openai/gpt-oss-120b", "bedrock/converse/x" -> "x") and Bedrock
    ARNs of foundation models and inference profiles ("arn:aws:bedrock:…:inference-profile/us.anthropic.x" ->
    "us.anthropic.x"; application inference profiles are opaque ids and stay as they are)."""
    name = model
    prefixes = _ROUTES.get(provider, (f"{provider}/",))
    for p in prefixes:  # each at most once, in order ("bedrock/converse/x"); "perplexity/perplexity/sonar" keeps one
        if name.startswith(p) and len(name) > len(p):
            name = name[len(p) :]
    if provider in BEDROCK:
        arn = _BEDROCK_ARN.match(name)
        if arn:
            return arn["id"]
    return name


def candidates(provider: str, model: str) -> tuple[str, ...]:
    """Names to look ``model`` up by, best first: the bare id, then the id as given (a provider whose own ids
    start with its LiteLLM prefix keeps working)."""
    bare = normalise_model(provider, model)
    names = [bare] if bare == model else [bare, model]
    if provider == "fireworks_ai" and not bare.startswith("accounts/"):
        # LiteLLM completes "fireworks_ai/<model>" to Fireworks' own id "accounts/fireworks/models/<model>"
        names.insert(0, f"accounts/fireworks/models/{bare}")
    return tuple(names)
