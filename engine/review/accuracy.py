"""Field accuracy: how well the running model does on the live line, from the operators' decisions on the
unbiased random sample the review router draws (queue reason ``agreement-sample``).

On a sampled frame the operator decides every box shown and draws every defect the model missed, so:

* precision of class C = confirmed / (confirmed + rejected + relabelled) over the boxes shown as C;
* recall of class C = found / (found + missed + relabelled away), where found is a box of C confirmed,
  missed a box of C the operator drew, and relabelled away a box the operator changed to C (the defect was
  there, the model named it wrongly), the same counting as ``eval`` with IoU 0.5 and matching classes.

Each figure carries a Wilson 95 % interval, per class, overall, per shift (``[accuracy] shift_starts_h``, hours
of local time) and per hour of the frames' own time. Decisions later undone do not count; of several standing
verdicts on one box the latest counts.
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.storage.db import read
from engine.storage.queries import NOT_UNDONE

SAMPLE_REASON = "agreement-sample"
SHADOW_REASON = "shadow"
Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of ``k`` successes in ``n`` trials; None for no trial."""
    if n <= 0:
        return None
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (0.0 if k == 0 else max(0.0, centre - half)), (1.0 if k == n else min(1.0, centre + half))


def _figure(k: int, n: int) -> dict[str, Any]:
    ci = wilson(k, n)
    return {"value": round(k / n, 4) if n else None, "k": k, "n": n,
            "low": round(ci[0], 4) if ci else None, "high": round(ci[1], 4) if ci else None}


def sampled_decisions(data_dir: Path, since: float | None = None, reason: str = SAMPLE_REASON
                      ) -> list[dict[str, Any]]:
    """The standing decisions on frames queued for ``reason`` (frames taken at or after ``since``), oldest first,
    the latest verdict per box."""
    where, args = ["d.queue_reason = ?", NOT_UNDONE, "d.verdict IN ('confirm', 'reject', 'reclass', 'missed')"], \
        [reason]
    if since is not None:
        where.append("f.timestamp >= ?")
        args.append(since)
    rows = read(data_dir, "SELECT d.id, d.frame_id, d.verdict, d.detection, d.old_class, d.new_class, d.old_box,"
                          " d.new_box, d.score, d.model, f.timestamp, f.detections, f.stats, f.source, f.sequence"
                          f" FROM decisions d JOIN frames f ON f.id = d.frame_id WHERE {' AND '.join(where)}"
                          " ORDER BY d.id", args)
    latest: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        key = (r["frame_id"], r["detection"]) if r["detection"] is not None else (r["frame_id"], "m", r["id"])
        latest[key] = r
    return sorted(latest.values(), key=lambda r: r["id"])


class _Counts:
    def __init__(self) -> None:
        self.tp: dict[str, int] = defaultdict(int)  # confirmed boxes, by class
        self.fp: dict[str, int] = defaultdict(int)  # rejected or relabelled boxes, by the class shown
        self.fn: dict[str, int] = defaultdict(int)  # missed or relabelled-to, by the true class
        self.frames: set[int] = set()

    def add(self, r: dict[str, Any]) -> None:
        self.frames.add(int(r["frame_id"]))
        v = r["verdict"]
        if v == "confirm":
            self.tp[r["old_class"] or "?"] += 1
        elif v == "reject":
            self.fp[r["old_class"] or "?"] += 1
        elif v == "reclass":
            self.fp[r["old_class"] or "?"] += 1
            self.fn[r["new_class"] or "?"] += 1
        elif v == "missed":
            self.fn[r["new_class"] or "?"] += 1

    def figures(self) -> dict[str, Any]:
        classes = sorted(set(self.tp) | set(self.fp) | set(self.fn))
        tp, fp, fn = sum(self.tp.values()), sum(self.fp.values()), sum(self.fn.values())
        return {"frames": len(self.frames), "precision": _figure(tp, tp + fp), "recall": _figure(tp, tp + fn),
                "classes": {c: {"precision": _figure(self.tp[c], self.tp[c] + self.fp[c]),
                                "recall": _figure(self.tp[c], self.tp[c] + self.fn[c])} for c in classes}}


def shift_of(timestamp: float, starts_h: Sequence[float]) -> str:
    """The shift a time of day falls in (local time): ``"06:00-14:00"`` for starts 6, 14, 22."""
    starts = sorted(float(h) % 24 for h in starts_h) or [6.0, 14.0, 22.0]
    t = time.localtime(timestamp)
    hour = t.tm_hour + t.tm_min / 60 + t.tm_sec / 3600
    i = max((j for j, s in enumerate(starts) if s <= hour), default=len(starts) - 1)
    a, b = starts[i], starts[(i + 1) % len(starts)]

    def hm(h: float) -> str:
        return f"{int(h):02d}:{round((h % 1) * 60):02d}"

    return f"{hm(a)}-{hm(b)}"


def field_accuracy(data_dir: Path, since: float | None = None, shift_starts_h: Sequence[float] = (6, 14, 22)
                   ) -> dict[str, Any]:
    """Precision and recall with Wilson 95 % intervals from the random sample: overall and per class, per
    shift, and per hour of the frames' time (the trend)."""
    rows = sampled_decisions(data_dir, since)
    overall, shifts, hours = _Counts(), defaultdict(_Counts), defaultdict(_Counts)
    for r in rows:
        overall.add(r)
        shifts[shift_of(float(r["timestamp"]), shift_starts_h)].add(r)
        hours[int(float(r["timestamp"]) // 3600) * 3600].add(r)
    out = overall.figures()
    out["decisions"] = len(rows)
    out["shifts"] = {k: shifts[k].figures() for k in sorted(shifts)}
    out["trend"] = [{"hour": h, **{k: v for k, v in hours[h].figures().items() if k != "classes"}}
                    for h in sorted(hours)]
    return out


# ------------------------------------------------------------------ the shadow model, judged by the operators


def boxes_match(a: Sequence[Any], b: Sequence[Any], iou: float = 0.5) -> bool:
    """Whether two sets of boxes are the same defects: every box of one pairs with one of the other (greedy by
    IoU, at least ``iou``, same class) and none is left over."""
    if len(a) != len(b):
        return False
    used = [False] * len(b)
    for x in a:
        best, best_iou = -1, iou
        for j, y in enumerate(b):
            if used[j] or y.class_name != x.class_name:
                continue
            v = x.iou(y)
            if v >= best_iou:
                best, best_iou = j, v
        if best < 0:
            return False
        used[best] = True
    return True


def operator_truth(shown: Sequence[Any], decisions: Sequence[Any]) -> list[Any] | None:
    """The defects of a frame as its operator decided them (from :class:`~engine.review.feedback.Decision`
    objects on it): the shown boxes confirmed, the relabelled ones with their new class, the drawn ones. None
    while a shown box is undecided or marked unsure."""
    from engine.core.frame import Box

    verdict: dict[int, Any] = {}
    drawn: list[Any] = []
    for d in decisions:
        if d.verdict == "missed" and d.new_box is not None:
            drawn.append(Box(*d.new_box, -1, d.new_class or "?"))
        elif d.detection is not None and d.verdict in ("confirm", "reject", "reclass", "unsure"):
            verdict[d.detection] = d
    truth = []
    for i, b in enumerate(shown):
        d = verdict.get(i)
        if d is None or d.verdict == "unsure":
            return None
        if d.verdict == "confirm":
            truth.append(b)
        elif d.verdict == "reclass":
            truth.append(Box(b.x0, b.y0, b.x1, b.y1, -1, d.new_class or b.class_name, b.score))
    return truth + drawn


def judge(champion: Sequence[Any], challenger: Sequence[Any], truth: Sequence[Any]) -> str:
    """Which model was right on a frame: ``champion``, ``challenger``, ``both`` or ``neither``."""
    a, b = boxes_match(champion, truth), boxes_match(challenger, truth)
    return "both" if a and b else "champion" if a else "challenger" if b else "neither"


def shadow_outcomes(data_dir: Path, since: float | None = None) -> dict[str, int]:
    """Who was right on the stored shadow frames whose challenger boxes were kept with the frame."""
    from engine.core.frame import Box
    from engine.review.feedback import Decision, FrameForReview

    rows = sampled_decisions(data_dir, since, SHADOW_REASON)
    by_frame: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_frame[int(r["frame_id"])].append(r)
    out = {"both": 0, "champion": 0, "challenger": 0, "neither": 0}
    for rs in by_frame.values():
        stats = json.loads(rs[0]["stats"] or "{}")
        if "shadow_boxes" not in stats:
            continue
        boxes = [Box(*b["box"], b.get("class_id", -1), b["class_name"], b.get("score"))
                 for b in json.loads(rs[0]["detections"] or "[]")]
        challenger = [Box(*b["box"], b.get("class_id", -1), b["class_name"], b.get("score"))
                      for b in json.loads(stats["shadow_boxes"])]
        fr = FrameForReview(None, "", 0, 0.0, tuple(boxes))  # type: ignore[arg-type]
        ds = [Decision(fr, "x", r["verdict"], detection=r["detection"], new_class=r["new_class"],
                       new_box=tuple(json.loads(r["new_box"])) if r["new_box"] else None) for r in rs]
        truth = operator_truth(boxes, ds)
        if truth is not None:
            out[judge(boxes, challenger, truth)] += 1
    return out


# ------------------------------------------------------------------ when to suggest retraining


def retrain_suggestion(estimate: float | None, floor: float, drift_alarm: bool, corrected_frames: int,
                       min_corrected: int, what: str = "expected precision") -> str | None:
    """The suggestion to retrain, in one sentence, when the label-free estimate is below ``floor`` while a drift
    alarm is active and at least ``min_corrected`` corrected frames exist to train on; else None. Only a
    suggestion: the station never retrains or promotes a model by itself."""
    if estimate is None or estimate >= floor or not drift_alarm or corrected_frames < min_corrected:
        return None
    return (f"retraining is suggested: the {what} {estimate:.2f} is below the floor {floor:.2f} while "
            f"a drift alarm is active, and {corrected_frames} corrected frames are there to train on "
            "(export a bundle and run `model train --bundle`)")


def corrected_frames(data_dir: Path) -> int:
    """Frames with at least one standing correction (a rejected, relabelled or drawn box)."""
    rows = read(data_dir, "SELECT count(DISTINCT d.frame_id) AS n FROM decisions d WHERE "
                          f"d.verdict IN ('reject', 'reclass', 'missed') AND {NOT_UNDONE}")
    return int(rows[0]["n"]) if rows else 0
