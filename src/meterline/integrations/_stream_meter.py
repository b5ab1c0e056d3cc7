"""What every SDK stream integration shares: an iterator that meters the stream it wraps, and the hooks that
make an abandoned stream (closed early, or garbage-collected unread) one ``cancelled`` event.

The SDK's own stream object is kept (``isinstance`` checks keep working): only its internal iterator and its
``close`` are replaced on the instance.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from meterline.integrations._call import CallMeter

OnItem = Callable[[Any], bool]  # note one item; True to hand it to the caller
OnEnd = Callable[[], None]  # the source ended cleanly: success, or an error when the reply was cut short


def metered(source: Iterator[Any], meter: CallMeter, on_item: OnItem, on_end: OnEnd) -> Iterator[Any]:
    try:
        for item in source:
            if on_item(item):
                yield item
    except GeneratorExit:
        meter.cancel()
        raise
    except Exception as exc:
        meter.error(exc)
        raise
    except BaseException:  # KeyboardInterrupt, cancellation: the caller gave up
        meter.cancel()
        raise
    else:
        on_end()
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()


async def ametered(source: AsyncIterator[Any], meter: CallMeter, on_item: OnItem, on_end: OnEnd) -> AsyncIterator[Any]:
    try:
        async for item in source:
            if on_item(item):
                yield item
    except GeneratorExit:
        meter.cancel()
        raise
    except Exception as exc:
        meter.error(exc)
        raise
    except BaseException:
        meter.cancel()
        raise
    else:
        on_end()
    finally:
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()


def cancel_on_close(stream: Any, meter: CallMeter, is_async: bool) -> None:
    """``stream.close()`` (also from ``__exit__``) and garbage collection end the call as ``cancelled``; both are
    no-ops once the reply finished. Not at interpreter exit: the recorder may already be shut down then."""
    ref = weakref.ref(stream)
    cls_close = type(stream).close
    if is_async:

        async def aclose() -> None:
            meter.cancel()
            s = ref()
            if s is not None:
                await cls_close(s)

        stream.__dict__["close"] = aclose
    else:

        def close() -> None:
            meter.cancel()
            s = ref()
            if s is not None:
                cls_close(s)

        stream.__dict__["close"] = close
    fin = weakref.finalize(stream, meter.cancel)
    fin.atexit = False
