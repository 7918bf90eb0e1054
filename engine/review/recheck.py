"""Blind re-review: reviewed frames shown again later, their earlier verdicts hidden.

A configurable share of reviewed frames (``[agreement] recheck_share_other``, default 10 %) goes to a
*different* operator, and a smaller share (``recheck_share_same``, 3 %) to the *same* operator again, for
intra-rater consistency. Which frames is decided by a hash of the frame's id, so the choice is stable
across restarts and needs no table of its own: the store itself says what is still due. A frame is due
only once ``recheck_delay_frames`` more frames have been stored after it (so the operator does not
remember it), and only until it has been re-reviewed once.

The re-review is an ordinary :class:`~engine.review.feedback.FrameForReview` with the model's boxes as they were
first shown and ``queue_reason`` ``'recheck-inter'`` or ``'recheck-intra'``; nothing of the earlier
verdicts travels with it. Its decisions are stored as normal decisions, and :mod:`engine.datasets.agreement.ratings`
tells them apart by that reason.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.storage.images import ImageStore
from engine.storage.queries import detection_verdicts, frame, newest_frame_id
from engine.review.feedback import FrameForReview
from engine.core.frame import Box

INTER = "recheck-inter"  # the queue reason of a re-review by a different operator
INTRA = "recheck-intra"  # the queue reason of a re-review by the same operator


@dataclass
class RecheckSettings:
    share_other: float = 0.10
    share_same: float = 0.03
    delay_frames: int = 50
    salt: str = "recheck"

    @classmethod
    def from_config(cls, config: dict[str, Any] | None) -> RecheckSettings:
        a = (config or {}).get("agreement", {})
        s = cls(float(a.get("recheck_share_other", cls.share_other)), float(a.get("recheck_share_same",
                cls.share_same)), int(a.get("recheck_delay_frames", cls.delay_frames)))
        if not (0 <= s.share_other and 0 <= s.share_same and s.share_other + s.share_same <= 1):
            raise ValueError("recheck_share_other and recheck_share_same must be shares that add up to at most 1")
        return s


@dataclass(frozen=True)
class RecheckTask:
    frame_id: int
    mode: str  # INTER or INTRA
    original_operators: tuple[str, ...]
    frame: FrameForReview


def selection(frame_id: int, s: RecheckSettings) -> str | None:
    """Whether a reviewed frame is re-reviewed, and by whom: INTER, INTRA or None (stable per frame)."""
    u = int.from_bytes(hashlib.sha256(f"{s.salt}:{frame_id}".encode()).digest()[:8], "big") / 2.0 ** 64
    if u < s.share_other:
        return INTER
    if u < s.share_other + s.share_same:
        return INTRA
    return None


def due(data_dir: Path, operator: str, settings: RecheckSettings) -> list[tuple[int, str, tuple[str, ...]]]:
    """Frames due for a blind re-review by ``operator``, oldest first: (frame id, mode, original operators)."""
    newest = newest_frame_id(data_dir)
    if newest is None:
        return []
    by_frame: dict[int, list[tuple[str, str | None]]] = {}
    for r in detection_verdicts(data_dir):
        by_frame.setdefault(int(r["frame_id"]), []).append((r["operator"], r["queue_reason"]))
    out = []
    for fid in sorted(by_frame):
        if newest - fid < settings.delay_frames:
            break
        mode = selection(fid, settings)
        if mode is None:
            continue
        decs = by_frame[fid]
        if any(q in (INTER, INTRA) for _, q in decs):
            continue  # re-reviewed already
        originals = tuple(sorted({op for op, _ in decs}))
        if mode == INTER and operator not in originals:
            out.append((fid, mode, originals))
        elif mode == INTRA and originals == (operator,):
            out.append((fid, mode, originals))
    return out


def load_task(data_dir: Path, frame_id: int, mode: str, originals: tuple[str, ...] = ()) -> RecheckTask:
    """The stored frame as it was first shown (image, the model's boxes), with the re-review reason."""
    r = frame(data_dir, frame_id)
    if r is None:
        raise ValueError(f"there is no stored frame {frame_id}")
    images = ImageStore(data_dir)
    image = images.load(r["image_sha256"])
    if image is None:
        raise ValueError(f"the image of stored frame {frame_id} is missing or damaged "
                         f"({images.path(r['image_sha256'])})")
    dets = tuple(Box(*d["box"], d["class_id"], d["class_name"], d.get("score"))
                 for d in json.loads(r["detections"]))
    shown = FrameForReview(image, r["source"], r["sequence"], r["timestamp"], dets, r["model"], r["device"],
                           r["reference_id"], json.loads(r["stats"] or "{}"),
                           json.loads(r["ground_truth"]) if r["ground_truth"] else None, mode)
    return RecheckTask(frame_id, mode, originals, shown)


def next_task(data_dir: Path, operator: str, settings: RecheckSettings) -> RecheckTask | None:
    """The oldest frame due for a blind re-review by ``operator``, ready to show, or None."""
    for fid, mode, originals in due(data_dir, operator, settings):
        try:
            return load_task(data_dir, fid, mode, originals)
        except ValueError:
            continue  # its image was pruned: skip it
    return None
