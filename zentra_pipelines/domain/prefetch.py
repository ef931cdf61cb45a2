"""Produce an iterator's items on a helper thread, a bounded number ahead of their consumer.

Why: two stages that each keep one core busy and release the GIL for most of their
work (landing: hashing and framing in NumPy/Arrow, then DuckDB's appends; the ledger
chain: Polars building canonical texts, then the hashing loop) take the sum of their
times when interleaved on one thread, and about the longer one when the first runs
ahead on a second core. Pure: threads and a queue, no I/O, so the domain may use it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_POLL_S = 0.1


def prefetched(items: Iterable[T], depth: int, *, name: str = "zentra-prefetch") -> Iterator[T]:
    """``items``, in order, iterated on a helper thread at most ``depth`` items ahead.

    At most ``depth`` + 2 items are alive at once: ``depth`` waiting in the queue, one
    being produced and one held by the consumer. ``depth`` 0 is a hand-off: the helper
    makes the next item while the consumer works on the current one, then waits until
    the consumer takes it, so at most two are alive (for items of a GB each). An
    exception raised while producing an item is raised here, after the items produced
    before it. When the consumer stops early (``break``, an exception, ``close()``), the
    producer stops at its next item, its iterator is closed on its own thread (so its
    ``finally`` blocks run) and the thread is joined before this generator returns: no
    work is left running behind the caller.
    """
    if depth < 0:
        raise ValueError("depth must not be negative")
    source = iter(items)
    channel: queue.Queue[tuple[bool, object]] = queue.Queue()
    # one permit per item produced (or being produced) and not yet taken by the consumer
    permits = threading.Semaphore(depth + 1)
    stop = threading.Event()

    def acquire() -> bool:
        while not stop.is_set():
            if permits.acquire(timeout=_POLL_S):
                return True
        return False

    def produce() -> None:
        try:
            while acquire():
                try:
                    item = next(source)
                except StopIteration:
                    channel.put((False, None))
                    return
                channel.put((True, item))
                del item
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            channel.put((False, exc))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            is_item, value = channel.get()
            if is_item:
                permits.release()
                yield value  # type: ignore[misc]
                del value
            elif value is None:
                return
            else:
                raise value  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()
