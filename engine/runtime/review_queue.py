"""The review queue: frames set aside for an operator, most valuable first, bounded, kept compressed.

The pipeline's worker offers frames (:meth:`ReviewQueue.offer`); the operator's thread takes the most valuable one
(:meth:`ReviewQueue.take`). Each frame is kept as a JPEG (about 3 % of the raw image) and decoded only when the
operator opens it (:meth:`QueuedFrame.result`). When the queue is full, the least valuable frame goes; a frame older
than ``max_age_s`` is stale (the line has moved on) and is dropped rather than shown.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import cv2
import numpy as np

from engine.runtime.pipeline import FrameResult

JPEG_QUALITY = 90
_PLACEHOLDER = np.zeros((1, 1, 3), np.uint8)


class QueuedFrame:
    """One frame set aside for review: why, how valuable, and its image compressed."""

    __slots__ = ("_jpeg", "_shape", "_stub", "queued_at", "reason", "value")

    def __init__(self, result: FrameResult, reason: str, value: float, queued_at: float) -> None:
        self.reason = reason
        self.value = float(value)
        self.queued_at = queued_at
        image = result.frame.image
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:  # never expected for a uint8 HxWx3 image; kept raw rather than lost
            buf = np.ascontiguousarray(image)
        self._jpeg = buf if ok else None
        self._shape = image.shape
        # The result without its image: detections, measurements and the frame's identity are small.
        self._stub = dataclasses.replace(result, frame=dataclasses.replace(result.frame, image=_PLACEHOLDER))
        if not ok:
            self._stub = result

    @property
    def sequence(self) -> int:
        return self._stub.frame.sequence

    @property
    def nbytes(self) -> int:
        """Bytes held for the image (the compressed form)."""
        return int(self._jpeg.nbytes) if self._jpeg is not None else int(np.prod(self._shape))

    def result(self) -> FrameResult:
        """The pipeline result with its image decoded (a new array each call)."""
        if self._jpeg is None:
            return self._stub
        image = cv2.imdecode(self._jpeg, cv2.IMREAD_COLOR)
        if image is None or image.shape != self._shape:
            raise ValueError(f"frame {self.sequence} of the review queue cannot be decoded")
        return dataclasses.replace(self._stub, frame=dataclasses.replace(self._stub.frame, image=image))

    def __iter__(self) -> Iterator[Any]:  # ``result, why = item`` as for the (FrameResult, reason) pairs of old
        yield self.result()
        yield self.reason

    def __getitem__(self, i: int) -> Any:
        return (self.result(), self.reason)[i]


class ReviewQueue:
    """A bounded priority queue of :class:`QueuedFrame` (thread-safe): highest value first, the oldest first among
    equals; when full, the least valuable (the newest among equals) goes."""

    def __init__(self, maxlen: int = 50, max_age_s: float = 900.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.maxlen = max(1, int(maxlen))
        self.max_age_s = float(max_age_s)
        self.clock = clock
        self._items: list[tuple[float, int, QueuedFrame]] = []  # heap on (-value, order)
        self._order = itertools.count()
        self._lock = threading.Lock()
        self.dropped = 0  # pushed out by more valuable frames, or stale

    def offer(self, result: FrameResult, reason: str, value: float = 1.0) -> bool:
        """Keep ``result`` for review; False when it is worth less than everything in a full queue."""
        now = self.clock()
        with self._lock:
            self._expire(now)
            if len(self._items) >= self.maxlen:
                worst = max(self._items)
                if -worst[0] >= value:
                    self.dropped += 1
                    return False
                self._items.remove(worst)
                heapq.heapify(self._items)
                self.dropped += 1
        item = QueuedFrame(result, reason, value, now)  # compressed outside the lock
        with self._lock:
            heapq.heappush(self._items, (-item.value, next(self._order), item))
            while len(self._items) > self.maxlen:
                self._items.remove(max(self._items))
                heapq.heapify(self._items)
                self.dropped += 1
        return True

    def take(self) -> QueuedFrame | None:
        """The most valuable frame that is not stale, removed from the queue; None when there is none."""
        with self._lock:
            self._expire(self.clock())
            return heapq.heappop(self._items)[2] if self._items else None

    def peek(self) -> QueuedFrame | None:
        with self._lock:
            return self._items[0][2] if self._items else None

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def _expire(self, now: float) -> None:
        if self.max_age_s <= 0:
            return
        fresh = [x for x in self._items if now - x[2].queued_at <= self.max_age_s]
        if len(fresh) != len(self._items):
            self.dropped += len(self._items) - len(fresh)
            self._items = fresh
            heapq.heapify(self._items)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __bool__(self) -> bool:
        return len(self) > 0

    def __iter__(self) -> Iterator[QueuedFrame]:
        """The queued frames, most valuable first (a snapshot)."""
        with self._lock:
            items = sorted(self._items)
        return iter([x[2] for x in items])

    def __getitem__(self, i: int) -> QueuedFrame:
        return list(self)[i]

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(x[2].nbytes for x in self._items)
