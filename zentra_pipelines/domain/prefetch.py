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
    being produced and one held by the consumer. An exception raised while producing an item
    is raised here, after the items produced before it. When the consumer stops early
    (``break``, an exception, ``close()``), the producer stops at its next item, its
    iterator is closed on its own thread (so its ``finally`` blocks run) and the thread
    is joined before this generator returns: no work is left running behind the caller.
    """
    if depth < 1:
        raise ValueError("depth must be at least 1")
    source = iter(items)
    channel: queue.Queue[tuple[bool, object]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[bool, object]) -> bool:
        while not stop.is_set():
            try:
                channel.put(entry, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in source:
                if not put((True, item)):
                    return
            put((False, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            put((False, exc))
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
                yield value  # type: ignore[misc]
            elif value is None:
                return
            else:
                raise value  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()
