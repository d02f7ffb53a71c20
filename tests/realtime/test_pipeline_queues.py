"""The pipeline's queues: a live producer steps aside until an idle consumer has its item."""

from __future__ import annotations

import queue
import threading
import time

import pytest

from realtime.pipeline import _HandoffQueue


def _wait_until(predicate, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_handoff_returns_once_a_waiting_consumer_has_the_item():
    q = _HandoffQueue(1)
    got = []
    consumer = threading.Thread(target=lambda: got.append(q.get(timeout=10)))
    consumer.start()
    _wait_until(lambda: q.consumers_waiting == 1)
    q.put_nowait("frame")
    q.handoff(10.0)  # a generous bound: it must end because the consumer took the item
    assert q.empty()
    consumer.join(5)
    assert got == ["frame"]
    assert q.consumers_waiting == 0


def test_handoff_never_waits_for_a_busy_consumer():
    q = _HandoffQueue(1)
    q.put_nowait("frame")
    t0 = time.monotonic()
    q.handoff(10.0)  # nobody is waiting on the queue: return at once, leave the item queued
    assert time.monotonic() - t0 < 5.0
    assert q.get_nowait() == "frame"


def test_handoff_gives_up_after_its_timeout():
    q = _HandoffQueue(1)
    q.consumers_waiting = 1  # a consumer that says it waits but never takes the item
    q.put_nowait("frame")
    t0 = time.monotonic()
    q.handoff(0.05)
    assert 0.04 <= time.monotonic() - t0 < 5.0
    assert q.qsize() == 1


def test_get_keeps_the_queue_contract():
    q = _HandoffQueue(2)
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.01)
    q.put("a")
    q.put("b")
    with pytest.raises(queue.Full):
        q.put_nowait("c")
    assert [q.get(), q.get(timeout=1)] == ["a", "b"]
    assert q.consumers_waiting == 0
