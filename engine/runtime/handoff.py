"""Hand-offs between the pipeline's stages: a one-slot mailbox where the newest frame wins, or a bounded queue.

A live source (a camera) does not wait for the station, so between two stages there is one slot: a frame the
next stage has not taken yet is replaced by a newer one, and the replaced frame is a drop of the stage that was
too slow to take it. Each item carries the drops that happened before it (by stage), so the drops are counted
when the frame that replaced them comes out of the pipeline: a frame that never comes out (the line stopped)
takes its count with it, and the gaps in the sequence of processed frames are exactly the drops counted.

A source that is not live (a file, the unpaced simulator) waits for the station: a bounded first-in first-out
queue, so every frame is processed, in order, and a slow stage holds the ones before it back.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

WAIT_S = 0.05  # how often a waiting stage looks at the stop flag


@dataclass
class Item:
    """What travels from stage to stage: the payload and the drops (stage -> frames) that happened before it."""

    payload: Any
    drops: Counter = field(default_factory=Counter)


class Handoff:
    """One hand-off between two stages; thread-safe. ``newest_wins``: a one-slot mailbox; else a queue of
    ``capacity`` items whose ``put`` waits for room."""

    def __init__(self, stage: str, newest_wins: bool, capacity: int = 2) -> None:
        self.stage = stage  # the stage that takes from here: a replaced item is its drop
        self.newest_wins = newest_wins
        self.capacity = 1 if newest_wins else max(1, int(capacity))
        self._items: deque[Item] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self.replaced = 0  # items replaced before they were taken (live)

    def put(self, item: Item, stop: threading.Event) -> list[Item]:
        """Hand ``item`` on; returns the items it replaced (newest-wins), whose drops it now carries."""
        with self._cond:
            if self.newest_wins:
                gone = list(self._items)
                self._items.clear()
                for old in gone:
                    item.drops.update(old.drops)
                    item.drops[self.stage] += 1
                self.replaced += len(gone)
                self._items.append(item)
                self._cond.notify_all()
                return gone
            while len(self._items) >= self.capacity and not self._closed and not stop.is_set():
                self._cond.wait(WAIT_S)
            if not self._closed and not stop.is_set():
                self._items.append(item)
                self._cond.notify_all()
            return []

    def get(self, stop: threading.Event) -> Item | None:
        """The next item; ``None`` once the hand-off is closed and empty, or the line is stopping."""
        with self._cond:
            while not self._items:
                if self._closed or stop.is_set():
                    return None
                self._cond.wait(WAIT_S)
            if stop.is_set():
                return None
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def close(self) -> None:
        """No more items: the taker finishes what is here, then ``get`` returns ``None``."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
