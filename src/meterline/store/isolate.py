"""Store every storable event of a batch: when the store refuses a batch, bisect it to find the events it
cannot hold, store the rest. One bad event among n costs about 2 log2(n) batch inserts (not n)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from meterline.core.event import UsageEvent


def insert_isolating(
    insert: Callable[[Sequence[UsageEvent]], int],
    events: Sequence[UsageEvent],
    store_down: Callable[[BaseException], bool],
) -> tuple[int, list[tuple[int, str]]]:
    """(events newly stored, [(position in ``events``, why the store refused it)]), sorted by position.

    ``insert`` stores a batch atomically (all or nothing) and is idempotent on the event id, so halves
    stored before a later refusal are simply stored. An error for which ``store_down`` is true (the
    store itself is unavailable, not one event) is raised: the whole batch is to be retried later."""
    new = 0
    failed: list[tuple[int, str]] = []
    pending: list[tuple[int, Sequence[UsageEvent]]] = [(0, events)]
    while pending:
        offset, chunk = pending.pop()
        try:
            new += insert(chunk)
        except Exception as exc:
            if store_down(exc):
                raise
            if len(chunk) == 1:
                failed.append((offset, f"{type(exc).__name__}: {exc}"[:500]))
                continue
            mid = len(chunk) // 2
            pending.append((offset + mid, chunk[mid:]))
            pending.append((offset, chunk[:mid]))  # popped first: positions come out in order
    return new, failed
