"""meterline: self-hosted LLM usage metering and billing.

    import meterline
    meterline.init()          # optional: sqlite file in the user data dir, or METERLINE_DESTINATION
    meterline.instrument()    # LiteLLM, Anthropic, Bedrock, OpenAI: whichever is installed

See README.md for metadata, decorators, reports and exports.
"""

from __future__ import annotations

from meterline._version import __version__
from meterline.core import moved as _moved
from meterline.core.event import EventValidationError, UsageEvent
from meterline.core.metadata import MetadataError
from meterline.integrations import (
    instrument,
    instrument_anthropic,
    instrument_bedrock,
    instrument_crewai,
    instrument_langchain,
    instrument_litellm,
    instrument_openai,
    uninstrument,
)
from meterline.sdk.api import flush, get_recorder, init, record, shutdown, stats
from meterline.sdk.scopes import (
    current_metadata,
    metadata,
    meter,
    track_agent,
    track_organization,
    track_product,
    track_quality,
    track_subscriber,
    track_subscription,
    track_task,
    track_trace,
    with_context,
)

_moved.install()  # the module names of before the layout change keep importing (meterline.event, …)

__all__ = [
    "EventValidationError",
    "MetadataError",
    "UsageEvent",
    "__version__",
    "current_metadata",
    "flush",
    "get_recorder",
    "init",
    "instrument",
    "instrument_anthropic",
    "instrument_bedrock",
    "instrument_crewai",
    "instrument_langchain",
    "instrument_litellm",
    "instrument_openai",
    "metadata",
    "meter",
    "record",
    "shutdown",
    "stats",
    "track_agent",
    "track_organization",
    "track_product",
    "track_quality",
    "track_subscriber",
    "track_subscription",
    "track_task",
    "track_trace",
    "uninstrument",
    "with_context",
]
