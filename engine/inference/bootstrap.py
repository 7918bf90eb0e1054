"""Precision, recall, F1 and AP@0.5 with bootstrap 95 % intervals that resample frames, vectorised.

A run's frames are reduced once to counts (:func:`counts`): per frame and class the true positives, false
positives and truth boxes at the operating threshold, and every prediction's class, score, hit and frame for AP
(matched as :mod:`engine.inference.evaluate` matches). A bootstrap resample of the frames is then a row of
weights (how many times each frame was drawn; drawn one by one, or in blocks of consecutive frames), and every
figure of every resample is a few matrix products and cumulative sums over those weights, never a Python loop
over resamples. Two runs on the same frames resampled
with the same weights give the paired interval of their difference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.inference.evaluate import FrameMatch, match_frame

METRICS = ("precision", "recall", "f1", "ap50")
CHUNK = 128  # resamples per block of the AP computation (bounds memory: CHUNK x predictions floats)


@dataclass
class Counts:
    classes: tuple[str, ...]
    tp: np.ndarray  # (frames, classes) true positives at the operating threshold
    fp: np.ndarray
    truth: np.ndarray  # (frames, classes) truth boxes
    pred_class: np.ndarray  # every prediction (any score), best score first within a class
    pred_frame: np.ndarray
    pred_score: np.ndarray
    pred_hit: np.ndarray

    @property
    def frames(self) -> int:
        return int(self.tp.shape[0])


def counts(frames: Sequence[FrameMatch], classes: Sequence[str], confidence: float,
           iou_threshold: float = 0.5) -> Counts:
    n, c = len(frames), len(classes)
    tp = np.zeros((n, c), np.int64)
    fp = np.zeros((n, c), np.int64)
    truth = np.zeros((n, c), np.int64)
    pc, pf, ps, ph = [], [], [], []
    for i, fm in enumerate(frames):
        for t in fm.truth:
            truth[i, t.class_id] += 1
        for cid, score, hit in match_frame(fm.predictions, fm.truth, iou_threshold):
            pc.append(cid)
            pf.append(i)
            ps.append(score)
            ph.append(hit)
            if score >= confidence:  # greedy by score: the full matching cut at the threshold
                (tp if hit else fp)[i, cid] += 1
    order = np.lexsort((np.arange(len(ps)), -np.asarray(ps, np.float64))) if ps else np.zeros(0, np.int64)
    return Counts(tuple(classes), tp, fp, truth, np.asarray(pc, np.int64)[order], np.asarray(pf, np.int64)[order],
                  np.asarray(ps, np.float64)[order], np.asarray(ph, bool)[order])


def _prf(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F1 elementwise, with the conventions of :func:`engine.inference.evaluate._prf`."""
    tp, fp, fn = (np.asarray(a, np.float64) for a in (tp, fp, fn))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(tp + fp > 0, tp / (tp + fp), np.where(fn == 0, 1.0, 0.0))
        r = np.where(tp + fn > 0, tp / (tp + fn), 1.0)
        f = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    return p, r, f


def _ap(c: Counts, w: np.ndarray, cls: int) -> np.ndarray:
    """AP of class ``cls`` for each row of frame weights ``w`` (resamples x frames); NaN where no truth."""
    n_truth = w @ c.truth[:, cls]
    sel = c.pred_class == cls
    if not np.any(sel):
        return np.where(n_truth > 0, 0.0, np.nan)
    frames, hit = c.pred_frame[sel], c.pred_hit[sel]
    out = np.empty(w.shape[0])
    for lo in range(0, w.shape[0], CHUNK):
        pw = w[lo:lo + CHUNK][:, frames]  # each prediction weighted by how often its frame was drawn
        ctp = np.cumsum(pw * hit, axis=1)
        cfp = np.cumsum(pw * ~hit, axis=1)
        nt = n_truth[lo:lo + CHUNK, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            recall = np.where(nt > 0, ctp / np.maximum(nt, 1), 0.0)
            precision = ctp / np.maximum(ctp + cfp, 1e-12)
        r = np.concatenate([np.zeros((pw.shape[0], 1)), recall], axis=1)
        p = np.concatenate([np.ones((pw.shape[0], 1)), precision], axis=1)
        p = np.maximum.accumulate(p[:, ::-1], axis=1)[:, ::-1]
        out[lo:lo + CHUNK] = np.sum((r[:, 1:] - r[:, :-1]) * p[:, 1:], axis=1)
    return np.where(n_truth > 0, out, np.nan)


def figures(c: Counts, w: np.ndarray) -> dict[str, np.ndarray]:
    """Every figure for each row of frame weights ``w``: ``{"<metric>": (rows,), "<class>/<metric>": (rows,)}``
    (overall precision, recall and F1 are micro-averaged; ``ap50`` overall is the mean AP over classes with
    truth)."""
    tp, fp, truth = w @ c.tp, w @ c.fp, w @ c.truth
    fn = np.maximum(truth - tp, 0)
    out: dict[str, np.ndarray] = {}
    p, r, f = _prf(tp.sum(1), fp.sum(1), fn.sum(1))
    out.update(precision=p, recall=r, f1=f)
    pc, rc, fc = _prf(tp, fp, fn)
    aps = np.stack([_ap(c, w, k) for k in range(len(c.classes))], axis=1) if c.classes else np.zeros((len(w), 0))
    with np.errstate(invalid="ignore"):
        defined = ~np.isnan(aps)
        out["ap50"] = np.where(defined.any(1), np.nansum(aps, 1) / np.maximum(defined.sum(1), 1), np.nan)
    for k, name in enumerate(c.classes):
        out[f"{name}/precision"], out[f"{name}/recall"], out[f"{name}/f1"] = pc[:, k], rc[:, k], fc[:, k]
        out[f"{name}/ap50"] = aps[:, k]
    return out


def weights(frames: int, resamples: int, seed: int = 0, block: int = 1) -> np.ndarray:
    """``resamples`` bootstrap draws of ``frames`` frames with replacement, as counts per frame.

    With ``block`` above 1 the frames, in their order, are cut into blocks of that many consecutive frames (the
    last one shorter) and whole blocks are drawn (a block bootstrap): consecutive frames of a line show the same
    parts and defects, and drawing them one by one would count one defect seen in ten frames as ten independent
    pieces of evidence and make every interval too narrow.
    """
    rng = np.random.default_rng(seed)
    if frames == 0:
        return np.zeros((resamples, 0))
    block = max(1, block)
    n = -(-frames // block)
    sizes = np.full(n, block)
    sizes[-1] = frames - block * (n - 1)
    drawn = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples)
    return np.repeat(drawn, sizes, axis=1).astype(np.float64)


def _interval(point: float, samples: np.ndarray) -> dict[str, Any]:
    s = samples[~np.isnan(samples)]
    if np.isnan(point) or s.size == 0:
        return {"value": None, "low": None, "high": None}
    lo, hi = np.percentile(s, [2.5, 97.5])
    return {"value": round(float(point), 4), "low": round(float(lo), 4), "high": round(float(hi), 4)}


def summarise(c: Counts, w: np.ndarray) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Point estimates with their 95 % intervals (``{"overall": {metric: {value, low, high}}, "per_class":
    {class: {...}}}``), and the resampled figures (for paired differences)."""
    point = {k: float(v[0]) for k, v in figures(c, np.ones((1, c.frames))).items()}
    boot = figures(c, w)
    overall = {m: _interval(point[m], boot[m]) for m in METRICS}
    per_class = {name: {m: _interval(point[f"{name}/{m}"], boot[f"{name}/{m}"]) for m in METRICS}
                 for name in c.classes}
    return {"overall": overall, "per_class": per_class}, {**boot, **{f"point/{k}": np.array([v])
                                                                     for k, v in point.items()}}


def paired_difference(a: dict[str, np.ndarray], b: dict[str, np.ndarray], metric: str = "f1") -> dict[str, Any]:
    """``b`` minus ``a`` for ``metric``, from resamples drawn with the same weights: the point difference and its
    paired 95 % interval."""
    return _interval(float(b[f"point/{metric}"][0] - a[f"point/{metric}"][0]), b[metric] - a[metric])
