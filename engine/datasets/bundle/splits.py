"""Train, validation and test splits of a bundle, made by time; and duplicate boxes taken out of a frame.

**The split rule.** The bundle's frames are put in order of their time (the source's clock) and cut into
*blocks*: a new block starts wherever a frame follows the previous one by ``gap_s`` seconds or more
(default 10 s, longer than a part stays in the camera's view, so the frames of one part, or of one burst of
reviewing, always share a block). Whole blocks go to the splits in time order: the oldest to ``train``, then
``val``, then the newest to ``test``. The two cuts are made at the block boundaries whose frame counts come
nearest to the shares (default 0.8, 0.1, 0.1), each split keeping at least one block while there are blocks
enough (three or more; with two the second is ``val``, with one everything is ``train``). So any frame of one
split lies at least ``gap_s`` seconds from every frame of another, and a model is always tested on frames
newer than those it was trained and tuned on.

**Duplicate boxes.** Two boxes of the same class in one frame whose IoU is 0.9 or more are the same box
drawn twice (an operator adding a "missed" defect over a detection already confirmed, a QC report of a
defect already drawn): one is kept, the one an operator spoke of most directly (corrected, then missed,
confirmed, undecided, unreviewed; the earlier of two equals), and the other is counted, not written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence, TypeVar

from engine.core.errors import StationError

SPLITS = ("train", "val", "test")
DUPLICATE_IOU = 0.9
DUPLICATE_RULE = (f"two boxes of the same class in one frame with IoU >= {DUPLICATE_IOU} are one box: the one kept is "
                  "corrected, else missed, else confirmed, else undecided, else unreviewed (the earlier of equals)")
_AUTHORITY = {"corrected": 0, "missed": 1, "confirmed": 2, "undecided": 3, "unreviewed": 4, "predicted": 5}


@dataclass(frozen=True)
class SplitRule:
    """Shares of the frames for train, val and test, and the gap in seconds that separates blocks."""

    shares: tuple[float, float, float] = (0.8, 0.1, 0.1)
    gap_s: float = 10.0

    def __post_init__(self) -> None:
        if len(self.shares) != 3 or any(not 0.0 <= s <= 1.0 for s in self.shares) \
                or abs(sum(self.shares) - 1.0) > 1e-6:
            raise StationError(f"the train, val and test shares must be three fractions adding up to 1, "
                              f"got {', '.join(str(s) for s in self.shares)}")
        if not self.gap_s > 0:
            raise StationError(f"the gap between split blocks must be positive, got {self.gap_s} s")

    @classmethod
    def from_config(cls, export: dict[str, Any]) -> SplitRule:
        """The rule of the ``[export]`` table (``split_gap_s``, ``split_val_share``, ``split_test_share``)."""
        val, test = float(export.get("split_val_share", 0.1)), float(export.get("split_test_share", 0.1))
        return cls(shares=(round(1.0 - val - test, 9), val, test), gap_s=float(export.get("split_gap_s", 10.0)))

    def describe(self) -> str:
        t, v, s = self.shares
        return (f"frames in time order, cut into blocks wherever one follows the previous by {self.gap_s:g} s or "
                f"more; whole blocks go to train, val and test in time order (oldest to train, newest to test), "
                f"cut at the block boundaries nearest to shares {t:g}, {v:g}, {s:g}; frames of two splits are "
                f"at least {self.gap_s:g} s apart")


def blocks(times: Sequence[float], gap_s: float) -> list[list[int]]:
    """Indices into ``times`` grouped in blocks of consecutive time, oldest block first."""
    order = sorted(range(len(times)), key=lambda i: (times[i], i))
    out: list[list[int]] = []
    last: float | None = None
    for i in order:
        if last is None or times[i] - last >= gap_s:
            out.append([])
        out[-1].append(i)
        last = times[i]
    return out


def _nearest(cum: list[int], target: float, lo: int, hi: int) -> int:
    """The boundary index in ``lo..hi`` whose cumulative count is nearest ``target`` (the earlier on a tie)."""
    return min(range(lo, hi + 1), key=lambda k: (abs(cum[k] - target), k))


def assign(times: Sequence[float], rule: SplitRule = SplitRule()) -> list[str]:
    """The split (``train``, ``val`` or ``test``) of each frame, by the module's rule."""
    bl = blocks(times, rule.gap_s)
    n, b = len(times), len(bl)
    out = ["train"] * n
    if b < 2:
        return out
    cum = [0]
    for blk in bl:
        cum.append(cum[-1] + len(blk))
    t1 = rule.shares[0] * n
    t2 = (rule.shares[0] + rule.shares[1]) * n
    if b == 2:
        k1, k2 = 1, 2
    else:
        k1 = _nearest(cum, t1, 1, b - 2)
        k2 = _nearest(cum, t2, k1 + 1, b - 1)
    for k, blk in enumerate(bl):
        name = "train" if k < k1 else "val" if k < k2 else "test"
        for i in blk:
            out[i] = name
    return out


def summary(times: Sequence[float], splits: Sequence[str], rule: SplitRule, iso: Any) -> dict[str, Any]:
    """The manifest's ``splits`` entry: the rule, and per split its frame count, blocks and first and last time."""
    per: dict[str, Any] = {}
    bl = blocks(times, rule.gap_s)
    for name in SPLITS:
        ts = [t for t, s in zip(times, splits) if s == name]
        per[name] = {"images": len(ts),
                     "blocks": sum(1 for blk in bl if splits[blk[0]] == name) if ts else 0,
                     "first_frame_utc": iso(min(ts)) if ts else None,
                     "last_frame_utc": iso(max(ts)) if ts else None}
    empty = [s for s in SPLITS if not per[s]["images"]]
    return {"method": "time blocks", "rule": rule.describe(), "shares": list(rule.shares), "gap_s": rule.gap_s,
            "blocks": len(bl), **per,
            "note": (f"{' and '.join(empty)} empty: the frames fall in {len(bl)} block(s) of time, fewer than "
                     f"three" if empty else None)}


L = TypeVar("L")


def dedupe(labels: Sequence[L], iou: float = DUPLICATE_IOU) -> tuple[list[L], int]:
    """``labels`` (each with ``box`` x0, y0, x1, y1, ``class_name`` and ``status``) without the same box twice:
    of two boxes of one class with IoU >= ``iou`` the more authoritative stays. Returns (kept, removed)."""
    ranked = sorted(range(len(labels)), key=lambda i: (_AUTHORITY.get(getattr(labels[i], "status", ""), 9), i))
    kept: list[int] = []
    for i in ranked:
        a = labels[i]
        if any(getattr(labels[j], "class_name") == getattr(a, "class_name")
               and box_iou(getattr(labels[j], "box"), getattr(a, "box")) >= iou for j in kept):
            continue
        kept.append(i)
    kept.sort()
    return [labels[i] for i in kept], len(labels) - len(kept)


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1]) + max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
