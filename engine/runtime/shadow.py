"""A challenger model in shadow: it sees a sampled share of the live frames on its own thread and its boxes are
compared with the running (champion) model's, without ever being shown or acted on.

The live path only offers frames: a one-slot hand-off where the newest frame wins, so the line keeps the
camera's rate whatever the challenger costs; a frame offered while the slot is still full replaces the one
waiting there, which counts as skipped. Each compared frame is one of: agreement, or a disagreement with
boxes only the champion found, boxes only the challenger found, and boxes both found with different classes
(greedy matching by IoU >= 0.5; a pair of the same place and another class is a class difference).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

IOU = 0.5
OUTCOMES = ("both", "champion", "challenger", "neither")


@dataclass(frozen=True)
class Comparison:
    """One frame's boxes of the two models, paired."""

    agree: int  # boxes both found, same class
    only_champion: int
    only_challenger: int
    different_class: int

    @property
    def disagrees(self) -> bool:
        return bool(self.only_champion or self.only_challenger or self.different_class)

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(k for k in ("only_champion", "only_challenger", "different_class") if getattr(self, k))


def compare(champion: Sequence[Any], challenger: Sequence[Any], iou: float = IOU) -> Comparison:
    """Pair the boxes greedily, highest IoU first: a pair of the same class agrees, of another class differs."""
    pairs = sorted(((a.iou(b), i, j) for i, a in enumerate(champion) for j, b in enumerate(challenger)),
                   reverse=True)
    used_a: set[int] = set()
    used_b: set[int] = set()
    same = diff = 0
    for v, i, j in pairs:
        if v < iou:
            break
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        if champion[i].class_name == challenger[j].class_name:
            same += 1
        else:
            diff += 1
    return Comparison(same, len(champion) - len(used_a), len(challenger) - len(used_b), diff)


@dataclass
class ShadowCounts:
    offered: int = 0  # live frames drawn for the shadow
    shadowed: int = 0  # frames the challenger ran on
    skipped: int = 0  # drawn frames replaced in the slot before the challenger took them
    failed: int = 0  # frames the challenger raised on
    agreed: int = 0
    disagreed: int = 0
    only_champion: int = 0  # disagreeing frames with a box only the champion found
    only_challenger: int = 0
    different_class: int = 0
    judged: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))  # who was right
    last_error: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in ("offered", "shadowed", "skipped", "failed", "agreed", "disagreed",
                                           "only_champion", "only_challenger", "different_class")}
        d["agreement"] = round(self.agreed / self.shadowed, 4) if self.shadowed else None
        d["judged"] = dict(self.judged)
        return d


class ShadowRunner:
    """Runs ``detector`` on a share of the frames offered, on its own thread; ``on_result(result, boxes,
    comparison)`` is called there for every frame compared (``boxes``: the challenger's)."""

    def __init__(self, detector: Any, share: float, on_result: Callable[[Any, tuple, Comparison], None],
                 seed: int = 0, name: str = "") -> None:
        self.detector = detector
        self.share = float(share)
        self.name = name or str(getattr(detector, "name", "") or "challenger")
        self.on_result = on_result
        self.counts = ShadowCounts()
        self._rng = random.Random(seed)
        self._slot: Any = None
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="shadow", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ the live path (never waits)

    def offer(self, result: Any) -> bool:
        """Hand a processed frame over if it is drawn for the shadow; whether it was."""
        if self._stop or self._rng.random() >= self.share:
            return False
        with self._cond:
            c = self.counts
            c.offered += 1
            if self._slot is not None:
                c.skipped += 1  # the challenger is still busy: the newest frame takes the slot
            self._slot = result
            self._cond.notify()
        return True

    # ------------------------------------------------------------------ its own thread

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._slot is None and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                result, self._slot = self._slot, None
            try:
                det = self.detector.detect([result.frame])[0]
                boxes = tuple(det.boxes)
            except Exception as e:  # noqa: BLE001 - a challenger failing never touches the line
                with self._cond:
                    self.counts.failed += 1
                    self.counts.last_error = f"{type(e).__name__}: {e}"
                continue
            champion = tuple(result.detections.boxes) if result.detections is not None else ()
            cmp = compare(champion, boxes)
            with self._cond:
                c = self.counts
                c.shadowed += 1
                if cmp.disagrees:
                    c.disagreed += 1
                    for k in cmp.kinds:
                        setattr(c, k, getattr(c, k) + 1)
                else:
                    c.agreed += 1
            self.on_result(result, boxes, cmp)

    def set_judged(self, outcome: str, n: int) -> None:
        with self._cond:
            self.counts.judged[outcome] = n

    def snapshot(self) -> dict[str, Any]:
        with self._cond:
            return {"model": self.name, "share": self.share, **self.counts.to_dict()}

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stop = True
            if self._slot is not None:  # never run: it counts as skipped
                self._slot = None
                self.counts.skipped += 1
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
