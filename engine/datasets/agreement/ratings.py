"""Where ratings come from: the decisions in the station's store, or a CSV an engineer brings.

**Items and labels.** An *item* is one detection on one stored frame (``f<frame id>/d<index>``).
An operator's label for it is what the detection really is: the class they confirmed or changed it
to (``scratch``, ``dent``, ``contamination``), or ``none`` when they rejected it. Undone decisions
and undos do not count. Each operator's own first look at an item is their *primary* rating (the
last one if they decided it more than once outside a re-review); a blind re-review by the same
operator (``queue_reason = 'recheck-intra'``) is kept apart and measures intra-rater consistency.
A detection's *confidence band* comes from its score (see :mod:`engine.datasets.agreement.report`). Where
the frame carries
the simulator's ground truth, the *gold* label of a detection is the class of the true defect it
overlaps with IoU >= 0.5, or ``none``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from engine.datasets.agreement.gold import latest_calibrations
from engine.datasets.agreement.report import NONE_LABEL, AgreementSettings, Rating, report, summary
from engine.review.recheck import INTRA


def read_csv(path: Path) -> list[Rating]:
    """Ratings from a CSV with the columns ``item,rater,label`` (optional: ``score``, ``time``, ``gold``,
    ``intra``). An empty label is a missing rating. Raises ValueError with the line on a bad row."""
    out = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"item", "rater", "label"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path} needs the columns item, rater and label (missing: {', '.join(sorted(missing))})")
        for row in reader:
            label = (row["label"] or "").strip()
            if not label:
                continue
            item, rater = (row["item"] or "").strip(), (row["rater"] or "").strip()
            if not item or not rater:
                raise ValueError(f"{path}:{reader.line_num}: every row needs an item and a rater")
            try:
                score = float(row["score"]) if (row.get("score") or "").strip() else None
                t = float(row["time"]) if (row.get("time") or "").strip() else None
            except ValueError:
                raise ValueError(f"{path}:{reader.line_num}: score and time must be numbers") from None
            out.append(Rating(item, rater, label, t, score, (row.get("gold") or "").strip() or None,
                              (row.get("intra") or "").strip().lower() in ("1", "true", "yes")))
    return out


def _truth_label(box: list[float] | None, truth: dict[str, Any] | None) -> str | None:
    if truth is None or box is None:
        return None
    x0, y0, x1, y1 = box
    best, best_iou = None, 0.0
    for d in truth.get("defects", []):
        a0, b0, a1, b1 = d["box"]
        iw = max(0.0, min(x1, a1) - max(x0, a0))
        ih = max(0.0, min(y1, b1) - max(y0, b0))
        inter = iw * ih
        union = (x1 - x0) * (y1 - y0) + (a1 - a0) * (b1 - b0) - inter
        iou = inter / union if union > 0 else 0.0
        if iou > best_iou:
            best, best_iou = d["class_name"], iou
    return best if best_iou >= 0.5 else NONE_LABEL


def ratings_from_store(data_dir: Path, since: float | None = None, until: float | None = None) -> list[Rating]:
    """Every detection verdict in the store (not undone) as a rating; see the module docstring."""
    from engine.storage.queries import detection_verdicts

    rows = detection_verdicts(data_dir, since, until)
    truths: dict[int, dict | None] = {}
    out = []
    for r in rows:
        if r["frame_id"] not in truths:
            truths[r["frame_id"]] = json.loads(r["ground_truth"]) if r["ground_truth"] else None
        box = json.loads(r["old_box"]) if r["old_box"] else None
        label = NONE_LABEL if r["verdict"] == "reject" else (r["new_class"] or r["old_class"] or NONE_LABEL)
        out.append(Rating(f"f{r['frame_id']}/d{r['detection']}", r["operator"], label, r["time_utc"], r["score"],
                          _truth_label(box, truths[r["frame_id"]]), r["queue_reason"] == INTRA,
                          {"frame_id": r["frame_id"], "detection": r["detection"], "source": r["source"],
                           "sequence": r["sequence"], "image_sha256": r["image_sha256"], "box": box,
                           "model_class": r["old_class"]}))
    return out


def report_from_store(data_dir: Path, config: dict[str, Any] | None = None, since: float | None = None,
                      until: float | None = None) -> dict[str, Any]:
    rep = report(ratings_from_store(data_dir, since, until), AgreementSettings.from_config(config),
                 latest_calibrations(data_dir))
    rep["source"] = "store"
    return rep


def summary_from_store(data_dir: Path, since: float | None = None, until: float | None = None) -> dict[str, Any]:
    """Overall agreement over the store's decisions (optionally in ``[since, until)``, UTC seconds): items,
    ratings, raters, alpha, mean pairwise Cohen's kappa, Fleiss' kappa, intra-rater agreement, warnings."""
    return summary(report_from_store(data_dir, None, since, until))


