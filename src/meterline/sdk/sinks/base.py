"""What every sink promises the recorder."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from meterline.core.event import UsageEvent


class SinkError(Exception):
    """A batch could not be written.

    retryable: the same batch may succeed later (5xx, 408, 429, network, a locked database).
    retry_after: the sink's own hint in seconds (HTTP ``Retry-After``); a minimum for the next try.
    data_fault: who is to blame. ``True``: the batch's content (an unstorable value, a 400/422 answer):
    retrying the same batch fails the same way, so the recorder splits it to find the culprit(s).
    ``False``: the destination (down, bad key, full disk): the batch is retried or spooled as a whole.
    ``None``: unclear (an HTTP 5xx): retried like a destination failure, then the batch is split, and an
    event is blamed only when the destination took the other events of the split meanwhile.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        retry_after: float | None = None,
        data_fault: bool | None = False,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.data_fault = data_fault


class Sink(Protocol):
    """Writes batches of priced events. ``write`` must be idempotent on ``event.id``: a batch written
    twice (a retry after a timeout, a spool replay) stores each event once.

    Returns how many events the sink rejected as invalid (they are not retried; a sink that knows which
    ones keeps ``[{"id", "field", "reason"}, ...]`` in ``last_rejections``); raises :class:`SinkError`
    when the batch as a whole failed.
    """

    def write(self, events: Sequence[UsageEvent]) -> int: ...

    def close(self) -> None: ...

    # Optional: ``after_fork_in_child()`` drops connections inherited from the parent without closing them
    # (closing a PostgreSQL connection sends a Terminate on the socket the parent still uses).

    @property
    def description(self) -> str: ...


# Connections a forked child inherited and must neither use nor close: kept referenced here so that they
# are not finalised (a finaliser could talk to the server on the parent's behalf).
ABANDONED_IN_CHILD: list[object] = []
