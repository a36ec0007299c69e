"""A bounded producer thread, so a build reads and chunks while the model embeds.

Reading files, chunking, hashing and BM25 analysis are Python; embedding is ONNX
Runtime, which releases the GIL while it computes. Run one after the other, the
model waits for Python between windows (a build ran at ~78 % of the model's own
rate); run side by side, each window is ready when the model wants it. The queue
is bounded, so memory stays that of a few windows whatever the archive's size.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar, cast

T = TypeVar("T")

_DONE = object()


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def prefetch(items: Iterable[T], *, depth: int = 2) -> Iterator[T]:
    """``items``, produced in a background thread at most ``depth`` ahead of the consumer.

    An exception in the producer is raised in the consumer, at the point it would have
    come; a consumer that stops early (or fails) stops the producer at its next item.
    """
    q: queue.Queue[object] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(_Failed(exc))

    worker = threading.Thread(target=run, name="indexer-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield cast(T, item)
    finally:
        stop.set()
        worker.join(timeout=5)
