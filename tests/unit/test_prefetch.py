"""prefetched: an iterator run on a helper thread, in order, errors and early stops included."""

from __future__ import annotations

import threading

import pytest

from zentra_pipelines.domain.prefetch import prefetched


def test_items_arrive_in_order():
    assert list(prefetched(iter(range(1000)), depth=3)) == list(range(1000))


def test_empty_source_gives_nothing():
    assert list(prefetched(iter(()), depth=1)) == []


def test_a_producer_error_is_raised_after_the_items_before_it():
    def items():
        yield 1
        yield 2
        raise OSError("disk gone")

    seen = []
    with pytest.raises(OSError, match="disk gone"):
        for item in prefetched(items(), depth=4):
            seen.append(item)
    assert seen == [1, 2]


def test_an_early_stop_closes_the_source_and_joins_the_thread():
    closed = threading.Event()

    def items():
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.set()

    stream = prefetched(items(), depth=2, name="test-prefetch")
    assert [next(stream), next(stream)] == [0, 1]
    stream.close()
    assert closed.is_set()
    assert not any(t.name == "test-prefetch" for t in threading.enumerate())


def test_a_consumer_error_stops_the_producer():
    produced = []

    def items():
        for n in range(10_000):
            produced.append(n)
            yield n

    with pytest.raises(RuntimeError):
        for _ in prefetched(items(), depth=2, name="test-prefetch-2"):
            raise RuntimeError("append failed")
    assert len(produced) <= 4  # the item consumed, the queue's two, and at most one in hand
    assert not any(t.name == "test-prefetch-2" for t in threading.enumerate())


def test_depth_must_not_be_negative():
    with pytest.raises(ValueError):
        list(prefetched(iter([1]), depth=-1))


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_at_most_depth_plus_one_items_are_made_ahead_of_the_one_held(depth):
    produced = []

    def items():
        for n in range(50):
            produced.append(n)
            yield n

    for held in prefetched(items(), depth=depth):
        assert len(produced) <= held + 1 + depth + 1  # the one held, then depth + 1 ahead


def test_a_hand_off_makes_the_next_item_while_the_consumer_holds_one():
    made = threading.Event()

    def items():
        yield 1
        made.set()
        yield 2

    stream = prefetched(items(), depth=0)
    assert next(stream) == 1
    assert made.wait(5)  # produced while 1 is still held
    assert list(stream) == [2]
