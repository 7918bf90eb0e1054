"""How far a detector's scores can be trusted: a calibration from score to the probability that a box is a
true positive, and the label-free estimate of precision it gives on the live line.

The calibration is an isotonic regression (pool-adjacent-violators, NumPy only) fitted on a run of the simulated
line, whose truth says which box was right. It is kept as ``calibration.json`` in the data directory (made by
``inspection-station accuracy calibrate``), with the model it was fitted for: another model's scores are not
read through it. The expected precision of what is shown is then the mean calibrated probability of the boxes
shown over a recent window of frames; it needs no operator, and it falls when the model grows unsure of what it
reports.

It cannot see what the model stops showing. So the calibration also covers the candidates below the operating
threshold, down to a floor (0.05), and keeps how many near-threshold peaks (from half the threshold up to it) a
frame of the reference line has. The expected recall of a window is then ``S / (S + M)``: ``S`` the summed
probability of the boxes shown, ``M`` the summed probability of the candidates below the threshold plus every
near-threshold peak beyond the reference's rate, counted as a defect whose score sank under the threshold (a
conservative count: such a peak may be noise of a changed image as well). Expected F1 follows from the two.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.core.errors import StationError
from engine.inference.evaluate import FrameMatch, match_frame

CALIBRATION_FILE = "calibration.json"
FORMAT = "inspection-station-calibration/1"


class CalibrationError(StationError, ValueError):
    """A calibration cannot be fitted or read; one sentence."""


def isotonic_fit(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The non-decreasing step function closest to ``y`` over sorted ``x`` in least squares
    (pool-adjacent-violators): the block ends' ``x`` and each block's mean ``y``."""
    xs = np.asarray(x, np.float64)
    ys = np.asarray(y, np.float64)
    if xs.size == 0:
        raise CalibrationError("nothing to fit a calibration on: the run gave no boxes")
    order = np.argsort(xs, kind="stable")
    xs, ys = xs[order], ys[order]
    means: list[float] = []
    weights: list[float] = []
    ends: list[float] = []
    for xv, yv in zip(xs, ys):
        means.append(float(yv))
        weights.append(1.0)
        ends.append(float(xv))
        while len(means) > 1 and means[-2] > means[-1]:  # a violator: pool with the block before
            w = weights[-2] + weights[-1]
            m = (means[-2] * weights[-2] + means[-1] * weights[-1]) / w
            means[-2:] = [m]
            weights[-2:] = [w]
            ends[-2:] = [ends[-1]]
    keep = [i for i in range(len(means)) if i == len(means) - 1 or means[i + 1] != means[i]]  # equal steps: one
    return np.asarray(ends)[keep], np.asarray(means)[keep]


@dataclass(frozen=True)
class Calibration:
    """Score -> probability that the box is right, for one model (``model``: its name)."""

    model: str
    knots: tuple[float, ...]  # the upper score of each block, ascending
    values: tuple[float, ...]  # the probability of each block, non-decreasing
    boxes: int = 0
    source: str = ""
    created: float = 0.0
    threshold: float = 0.0  # the operating threshold it was fitted for
    floor: float = 0.0  # the lowest candidate score fitted
    near: float = 0.0  # near-threshold peaks: from here up to ``threshold``
    near_rate: float | None = None  # near-threshold peaks per frame of the reference line (None: no recall)

    def probability(self, scores: Sequence[float] | np.ndarray) -> np.ndarray:
        s = np.asarray(scores, np.float64)
        if s.size == 0:
            return np.zeros(0)
        idx = np.searchsorted(np.asarray(self.knots), s, side="left")
        return np.asarray(self.values)[np.minimum(idx, len(self.values) - 1)]

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "model": self.model, "knots": list(self.knots), "values": list(self.values),
                "boxes": self.boxes, "source": self.source, "created": self.created, "threshold": self.threshold,
                "floor": self.floor, "near": self.near, "near_rate": self.near_rate}

    def save(self, data_dir: Path) -> Path:
        path = Path(data_dir) / CALIBRATION_FILE
        tmp = path.with_suffix(".json.tmp")
        try:
            tmp.write_text(json.dumps(self.to_dict(), indent=1), encoding="utf-8")
            os.replace(tmp, path)
        except OSError as e:
            raise CalibrationError(f"{path} cannot be written ({e.strerror or e})") from None
        return path


def load_calibration(data_dir: Path) -> Calibration | None:
    """The stored calibration, or None when none was made; :class:`CalibrationError` when it is unreadable."""
    path = Path(data_dir) / CALIBRATION_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise CalibrationError(f"{path} cannot be read as a calibration ({e})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT or not raw.get("knots"):
        raise CalibrationError(f"{path} is not a calibration made by `inspection-station accuracy calibrate`")
    return Calibration(str(raw["model"]), tuple(float(v) for v in raw["knots"]),
                       tuple(float(v) for v in raw["values"]), int(raw.get("boxes", 0)), str(raw.get("source", "")),
                       float(raw.get("created", 0.0)), float(raw.get("threshold", 0.0)), float(raw.get("floor", 0.0)),
                       float(raw.get("near", 0.0)),
                       None if raw.get("near_rate") is None else float(raw["near_rate"]))


def scored_boxes(frames: Sequence[FrameMatch], confidence: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The score and right-or-wrong (IoU >= 0.5, same class) of every box at or above ``confidence``."""
    scores, hits = [], []
    for fm in frames:
        kept = [p for p in fm.predictions if (p.score if p.score is not None else 1.0) >= confidence]
        for _, score, hit in match_frame(kept, fm.truth):
            scores.append(score)
            hits.append(1.0 if hit else 0.0)
    return np.asarray(scores, np.float64), np.asarray(hits, np.float64)


def fit_calibration(frames: Sequence[FrameMatch], model: str, source: str = "",
                    confidence: float = 0.0, threshold: float | None = None) -> Calibration:
    """Isotonic calibration of the boxes scoring at least ``confidence`` in ``frames`` (with their truth). With
    the operating ``threshold`` (above ``confidence``: the candidates below it were collected too) it also keeps
    the reference's rate of near-threshold peaks, which the expected recall needs."""
    scores, hits = scored_boxes(frames, confidence)
    knots, values = isotonic_fit(scores, hits)
    near, rate = 0.0, None
    if threshold is not None and threshold > confidence and frames:
        near = round(max(confidence, threshold / 2), 6)
        rate = round(sum(near <= (p.score if p.score is not None else 1.0) < threshold
                         for f in frames for p in f.predictions) / len(frames), 6)
    return Calibration(model, tuple(round(float(k), 6) for k in knots), tuple(round(float(v), 6) for v in values),
                       int(scores.size), source, time.time(), float(threshold or 0.0), float(confidence), near, rate)


def expected_precision(calibration: Calibration, scores: Sequence[float]) -> float | None:
    """The mean calibrated probability of ``scores`` (the boxes shown); None for no box."""
    p = calibration.probability(scores)
    return float(p.mean()) if p.size else None


def missed_mass(calibration: Calibration, candidates: Sequence[float]) -> tuple[float, int]:
    """The summed probability of one frame's candidates below the threshold (down to the calibration's floor),
    and how many of them are near-threshold peaks."""
    c = np.asarray([s for s in candidates if s >= calibration.floor], np.float64)
    if not c.size:
        return 0.0, 0
    near = int(np.count_nonzero((c >= calibration.near) & (c < calibration.threshold)))
    return float(calibration.probability(c).sum()), near


def expected_recall(calibration: Calibration, shown: float, missed: float, near: int, frames: int) -> float | None:
    """``S / (S + M)`` (see the module description) from the summed probability of the boxes ``shown``, of the
    ``missed`` candidates, and the ``near``-threshold peaks of ``frames`` frames; None without a reference rate
    or with nothing expected at all."""
    if calibration.near_rate is None or frames <= 0:
        return None
    m = missed + max(0.0, near - calibration.near_rate * frames)
    return shown / (shown + m) if shown + m > 0 else None


def expected_f1(precision: float | None, recall: float | None) -> float | None:
    if precision is None or recall is None:
        return None
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


class ExpectedPrecision:
    """The label-free estimates over the last ``window`` frames: the precision of the boxes shown (:attr:`value`)
    and, where the detector gives its candidates below the threshold and the calibration has a reference rate, the
    recall and F1. One thread feeds it (the pipeline's worker); the figures may be read from any."""

    def __init__(self, calibration: Calibration, window: int = 300) -> None:
        self.calibration = calibration
        self._frames: deque[tuple[np.ndarray, float, int] | tuple[np.ndarray, None, None]] = deque(
            maxlen=max(1, int(window)))
        self.value: float | None = None
        self.recall: float | None = None
        self.f1: float | None = None
        self.boxes = 0

    def add(self, scores: Sequence[float], candidates: Sequence[float] | None = None) -> float | None:
        p = self.calibration.probability(scores)
        if candidates is None:
            self._frames.append((p, None, None))
        else:
            self._frames.append((p, *missed_mass(self.calibration, candidates)))
        allp = [f[0] for f in self._frames if f[0].size]
        self.boxes = int(sum(q.size for q in allp))
        self.value = float(np.concatenate(allp).mean()) if allp else None
        given = [f for f in self._frames if f[1] is not None]
        self.recall = (expected_recall(self.calibration, float(sum(f[0].sum() for f in given)),
                                       float(sum(f[1] for f in given)), int(sum(f[2] for f in given)), len(given))
                       if given else None)
        self.f1 = expected_f1(self.value, self.recall)
        return self.value
