"""Detections against ground truth: precision, recall and F1 at one confidence, AP per class and mAP.

Matching (per frame, per class): predictions in descending score take the unmatched truth
box of their class with the highest IoU, if that IoU reaches ``iou_threshold`` (0.5); a
prediction that finds none is a false positive, a truth box left over is a miss.

* Precision, recall and F1 count only predictions scoring at least ``confidence``.
* AP is the area under the precision-recall curve over all predictions, with precision
  made monotone (the all-point interpolation of PASCAL VOC 2010 and later); mAP is its mean
  over the classes that have truth boxes. For AP to mean anything the detector should run
  with a low threshold (the ``eval`` command uses 0.01) and the operating one applied here.
* Buckets split the run into ``K`` equal spans of simulated line time, so a degradation over
  days of lamp ageing shows as a curve.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from engine.core.frame import Box


@dataclass(frozen=True)
class FrameMatch:
    """One frame's predictions and truth, with the simulated time it was taken at."""

    predictions: tuple[Box, ...]
    truth: tuple[Box, ...]
    time_s: float = 0.0


def match_frame(predictions: Sequence[Box], truth: Sequence[Box],
                iou_threshold: float = 0.5) -> list[tuple[int, float, bool]]:
    """``(class id, score, is true positive)`` for each prediction, best score first."""
    used = [False] * len(truth)
    out = []
    for p in sorted(predictions, key=lambda b: -(b.score if b.score is not None else 1.0)):
        best, best_iou = -1, iou_threshold
        for j, t in enumerate(truth):
            if used[j] or t.class_id != p.class_id:
                continue
            iou = p.iou(t)
            if iou >= best_iou:
                best, best_iou = j, iou
        if best >= 0:
            used[best] = True
        out.append((p.class_id, p.score if p.score is not None else 1.0, best >= 0))
    return out


def average_precision(scores: Sequence[float], tp: Sequence[bool], n_truth: int) -> float | None:
    """All-point interpolated AP; ``None`` when there is no truth box (undefined)."""
    if n_truth == 0:
        return None
    if len(scores) == 0:
        return 0.0
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    hits = np.asarray(tp, bool)[order]
    ctp = np.cumsum(hits)
    cfp = np.cumsum(~hits)
    recall = ctp / n_truth
    precision = ctp / np.maximum(ctp + cfp, 1)
    r = np.concatenate([[0.0], recall])
    p = np.concatenate([[1.0], precision])
    p = np.maximum.accumulate(p[::-1])[::-1]  # the precision envelope
    return float(np.sum((r[1:] - r[:-1]) * p[1:]))


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    precision = tp / (tp + fp) if tp + fp else (1.0 if fn == 0 else 0.0)
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}


def evaluate(frames: Sequence[FrameMatch], classes: Sequence[str], confidence: float,
             iou_threshold: float = 0.5) -> dict[str, Any]:
    """Figures for a set of frames (see the module description)."""
    per_class: dict[int, list[tuple[float, bool]]] = {c: [] for c in range(len(classes))}
    n_truth = {c: 0 for c in range(len(classes))}
    n_gt = 0
    for fm in frames:
        for t in fm.truth:
            n_truth[t.class_id] = n_truth.get(t.class_id, 0) + 1
            n_gt += 1
        for cid, score, hit in match_frame(fm.predictions, fm.truth, iou_threshold):
            per_class.setdefault(cid, []).append((score, hit))
    # Precision and recall match only the predictions at or above the operating threshold
    # (matching is greedy by score, so this equals the full matching cut at the threshold).
    tp = fp = 0
    for fm in frames:
        kept = [p for p in fm.predictions if (p.score if p.score is not None else 1.0) >= confidence]
        for _, _, hit in match_frame(kept, fm.truth, iou_threshold):
            tp += hit
            fp += not hit
    fn = n_gt - tp
    ap = {}
    for c, name in enumerate(classes):
        items = per_class.get(c, [])
        v = average_precision([s for s, _ in items], [h for _, h in items], n_truth.get(c, 0))
        ap[name] = None if v is None else round(v, 4)
    defined = [v for v in ap.values() if v is not None]
    return {"frames": len(frames), "truth_boxes": n_gt, "true_positives": tp, "false_positives": fp,
            "missed": fn, **_prf(tp, fp, fn), "ap50": ap,
            "map50": round(float(np.mean(defined)), 4) if defined else None}


def evaluate_buckets(frames: Sequence[FrameMatch], classes: Sequence[str], confidence: float, buckets: int,
                     iou_threshold: float = 0.5) -> list[dict[str, Any]]:
    """:func:`evaluate` on ``buckets`` equal spans of simulated time, first to last frame."""
    if not frames or buckets < 1:
        return []
    times = np.array([f.time_s for f in frames], np.float64)
    t0, t1 = float(times.min()), float(times.max())
    span = (t1 - t0) / buckets if t1 > t0 else 1.0
    idx = np.minimum(((times - t0) / span).astype(int), buckets - 1) if t1 > t0 else np.zeros(len(frames), int)
    out = []
    for k in range(buckets):
        sel = [f for f, i in zip(frames, idx) if i == k]
        r = evaluate(sel, classes, confidence, iou_threshold)
        r = {"bucket": k, "t_start_s": round(t0 + k * span, 3), "t_end_s": round(t0 + (k + 1) * span, 3), **r}
        out.append(r)
    return out


def collect(source: Any, detector: Any, frames: int, step: int = 1, batch: int = 1,
            progress: Any = None) -> list[FrameMatch]:
    """Read ``frames`` frames (every ``step``-th slot of a simulated source) and run the detector on them.

    The source must carry ground truth (``sim://``); a frame without it raises ``ValueError``.
    The source is opened and closed here. ``progress(done, total)`` is called now and then.
    """
    from engine.sources.base import SourceStalled

    out: list[FrameMatch] = []
    pending = []
    source.open()
    try:
        stalls = 0
        while len(out) + len(pending) < frames:
            try:
                f = source.read()
            except SourceStalled:  # a simulated camera dropout: no frame, nothing to score
                stalls += 1
                if stalls > 1000:
                    raise
                continue
            if f.ground_truth is None:
                raise ValueError(f"{source.describe()} gives no ground truth; evaluation needs a simulated source "
                                 "(sim://...)")
            pending.append(f)
            if step > 1 and hasattr(source, "skip"):
                source.skip(step - 1)
            if len(pending) >= batch or len(out) + len(pending) >= frames:
                for fr, det in zip(pending, detector.detect(pending)):
                    t = float(fr.ground_truth.conditions.get("sim_time_s", fr.timestamp))
                    out.append(FrameMatch(det.boxes, fr.ground_truth.boxes, t))
                pending = []
                if progress is not None:
                    progress(len(out), frames)
    finally:
        source.close()
    return out


@dataclass
class LabelledRun:
    """Frames scored on a labelled dataset, with what did not match by class name."""

    frames: list[FrameMatch]
    classes: tuple[str, ...]  # the dataset's classes: the order of ``class_id`` in ``frames``
    predictions: list[dict[str, Any]]  # every kept prediction as a COCO result, in the dataset's ids
    truth_not_in_model: dict[str, int]  # dataset class -> truth boxes the model has no class for
    predictions_not_in_dataset: dict[str, int]  # model class -> predictions at the operating threshold ignored


def collect_labelled(images: Sequence[Any], dataset_classes: Sequence[str], detector: Any, confidence: float,
                     batch: int = 4, progress: Any = None, category_ids: dict[str, int] | None = None
                     ) -> LabelledRun:
    """Run ``detector`` on labelled images (each with ``read() -> (BGR image, truth boxes)``, ``name``, ``time``,
    ``id``; a truth box has ``x0 y0 x1 y1 class_name``), classes matched **by name** between dataset and model.
    The predictions kept are COCO results with the image's ``id`` and the class's id in ``category_ids`` (by
    default 1.. in the order of the dataset's classes), so that they load beside the dataset's own COCO file.

    A dataset class the model lacks keeps its truth boxes (they count as missed, AP 0) and is reported; a
    prediction of a class the dataset does not label is left out of the figures and counted.
    """
    from engine.core.frame import Frame

    classes = tuple(dict.fromkeys(dataset_classes))
    idx = {c: i for i, c in enumerate(classes)}
    model = set(getattr(detector, "classes", ()))
    out: list[FrameMatch] = []
    preds: list[dict[str, Any]] = []
    missing: dict[str, int] = {}
    ignored: dict[str, int] = {}
    pending: list[tuple[Frame, tuple[Box, ...], float]] = []
    image_ids: list[int] = []
    cat_ids = dict(category_ids or {})

    def cat_id(name: str) -> int:
        if name not in cat_ids:
            cat_ids[name] = max(cat_ids.values(), default=0) + 1
        return cat_ids[name]

    def flush() -> None:
        for (fr, truth, t), det in zip(pending, detector.detect([p[0] for p in pending])):
            kept = []
            for b in det.boxes:
                if b.class_name not in idx:
                    if (b.score if b.score is not None else 1.0) >= confidence:
                        ignored[b.class_name] = ignored.get(b.class_name, 0) + 1
                    continue
                kept.append(Box(b.x0, b.y0, b.x1, b.y1, idx[b.class_name], b.class_name, b.score))
            n = image_ids[len(out)]
            preds.extend({"image_id": n, "category_id": cat_id(k.class_name),
                          "bbox": [k.x0, k.y0, k.x1 - k.x0, k.y1 - k.y0],
                          "score": float(k.score if k.score is not None else 1.0)} for k in kept)
            out.append(FrameMatch(tuple(kept), truth, t))
        pending.clear()
        if progress is not None:
            progress(len(out), len(images))

    for k, item in enumerate(images):
        image, truth_boxes = item.read()
        truth = []
        for tb in truth_boxes:
            if tb.class_name not in idx:  # a label of a class the dataset does not list: never silently lost
                idx[tb.class_name] = len(classes)
                classes = (*classes, tb.class_name)
            if tb.class_name not in model:
                missing[tb.class_name] = missing.get(tb.class_name, 0) + 1
            truth.append(Box(tb.x0, tb.y0, tb.x1, tb.y1, idx[tb.class_name], tb.class_name))
        frame = Frame(image=np.ascontiguousarray(image), channel_order="BGR", sequence=k,
                      timestamp=float(getattr(item, "time", 0.0) or 0.0), source_id=str(item.name))
        pending.append((frame, tuple(truth), frame.timestamp))
        image_ids.append(int(getattr(item, "id", 0) or k + 1))
        if len(pending) >= batch:
            flush()
    if pending:
        flush()
    return LabelledRun(out, classes, preds, missing, ignored)


def coco_results(run: LabelledRun) -> list[dict[str, Any]]:
    """The predictions as a COCO results list."""
    return [dict(p) for p in run.predictions]
