"""Test helpers shipped with meterline: a local fake OpenAI/Anthropic/Bedrock provider (stdlib only)."""

from meterline.testing._server import FakeProvider
from meterline.testing._state import DEFAULT_REPLY, RecordedRequest, Usage, default_usage, request_text

__all__ = ["DEFAULT_REPLY", "FakeProvider", "RecordedRequest", "Usage", "default_usage", "request_text"]
