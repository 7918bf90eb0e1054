"""The recalibration report: one self-contained HTML page with the verdicts, the overrides, the lens before and
after, the images and the figures (``resources/reports/recalibration.html.j2`` through :mod:`engine.reports`;
figures inline SVG, images PNG data URIs)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from markupsafe import Markup

from engine.calibration.lens import LensProfile
from engine.calibration.station_files import lens_profile_dir
from engine.reports import png_uri, render
from engine.security.anchor import stamp
from engine.reports.svg import BLUE, GREEN, GREY, RED, Chart, ticks

if TYPE_CHECKING:
    from engine.calibration.recalibration import Recalibration

W = 600  # figure width, pixels


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.5g}"
    return str(v)


def _rel(v: float | None) -> str:
    return "" if v is None else f"{v:+.2%}"


def _range(values: Sequence[float], pad: float = 0.05) -> tuple[float, float]:
    lo, hi = float(min(values)), float(max(values))
    span = hi - lo or max(abs(hi), 1.0)
    return lo - pad * span, hi + pad * span


def _axes(c: Chart, xlabel: str, ylabel: str = "") -> Chart:
    c.frame()
    c.xticks([(t, f"{t:g}") for t in ticks(c.x0, c.x1)], xlabel)
    c.yticks([(t, f"{t:g}") for t in ticks(c.y0, c.y1, 6)], ylabel)
    return c


def distortion_figure(p: LensProfile, prev: LensProfile | None) -> Markup:
    """Radial displacement against the distance from the centre, before (grey) and after (blue)."""
    r = np.linspace(0, math.hypot(p.width, p.height) / 2, 100)
    curves = []
    for prof, label, colour in ((prev, "before", GREY), (p, "after", BLUE)):
        if prof is None:
            continue
        rn = r / prof.fx
        k1, k2 = prof.dist[0], prof.dist[1] if len(prof.dist) > 1 else 0.0
        curves.append((r * (k1 * rn ** 2 + k2 * rn ** 4), label, colour))
    c = Chart(W, 300, (0, float(r[-1])), _range([v for y, _, _ in curves for v in (y.min(), y.max())]),
              margin=(26, 12, 40, 60), title="Lens distortion", label="lens distortion")
    _axes(c, "distance from centre (px)", "radial displacement (px)")
    for y, label, colour in curves:
        c.line(r, y, colour, 2, label=label)
    return c.legend().svg()


def rms_figure(per_view: Sequence[float], limit: float) -> Markup:
    """Reprojection error of every view, with the limit dashed in red."""
    n = len(per_view)
    c = Chart(W, 260, (0.4, n + 0.6), (0, max(max(per_view), limit) * 1.15), margin=(26, 12, 40, 60),
              title="Reprojection error per view", label="reprojection error per view")
    c.frame()
    c.xticks([(i, str(i)) for i in range(1, n + 1)], "view")
    c.yticks([(t, f"{t:g}") for t in ticks(0, c.y1, 4)], "RMS error (px)")
    for i, v in enumerate(per_view, start=1):
        c.rect(i - 0.4, i + 0.4, 0, v, BLUE)
    c.hline(limit, RED, label="limit")
    return c.legend().svg()


def focus_figure(trace: Sequence[float], peak: float, band: tuple[float, float] | None) -> Markup:
    """The focus measure frame by frame, the reference's band (green) and the peak (dotted)."""
    values = list(trace) + [peak] + (list(band) if band else [])
    c = Chart(W, 260, (0, max(1, len(trace) - 1)), _range(values), margin=(26, 12, 40, 60), title="Focus",
              label="focus")
    if band:
        c.hband(band[0], band[1], GREEN, label="reference band")
    _axes(c, "frame")
    c.line(range(len(trace)), trace, BLUE, label="focus")
    c.hline(peak, "#000", dash="2 3", label="peak")
    return c.legend().svg()


def shift_figure(metrics: dict[str, dict[str, Any]]) -> Markup:
    """Each statistic's change against the training reference (%), green within tolerance, red beyond; grey
    whiskers: the tolerance."""
    keys = list(metrics)
    rel, tol = [], []
    for k in keys:
        m = metrics[k]
        base = abs(m["reference"]) or 1
        rel.append((m["current"] - m["reference"]) / base * 100)
        tol.append((m["high"] - m["reference"]) / base * 100 if math.isfinite(m["high"]) else 0.0)
    lim = max([abs(v) for v in rel] + tol + [1.0]) * 1.15
    c = Chart(W, 40 + 28 * len(keys) + 40, (-lim, lim), (len(keys), 0), margin=(26, 12, 40, 100),
              title="Fresh frames against the training reference", label="domain shift")
    c.frame()
    c.xticks([(t, f"{t:g}") for t in ticks(-lim, lim)], "change against the training reference (%), grey: tolerance")
    c.vline(0.0, "#333", dash=None)
    for i, k in enumerate(keys):
        y = i + 0.5
        c.rect(0, rel[i], y - 0.3, y + 0.3, GREEN if metrics[k]["ok"] else RED)
        if tol[i]:
            c.line((-tol[i], tol[i]), (y, y), GREY, 1.2)
            for x in (-tol[i], tol[i]):
                c.line((x, x), (y - 0.2, y + 0.2), GREY, 1.2)
        c.text_px(c.left - 6, c.py(y) + 4, k, anchor="end")
    return c.svg()


def _undistorted(image: np.ndarray | None, p: LensProfile | None) -> np.ndarray | None:
    if image is None or p is None or (image.shape[1], image.shape[0]) != (p.width, p.height):
        return None
    return cv2.undistort(image, p.matrix, np.asarray(p.dist, np.float64))


def _image(image: np.ndarray | None, caption: str) -> dict[str, str]:
    return {"src": "" if image is None else png_uri(image), "caption": caption}


def render_report(s: Recalibration, record: dict[str, Any]) -> str:
    """The session's report page, from the session and the record :func:`recalibration_commit.record` made."""
    steps = []
    for st in s.steps.values():
        verdict = st.status.upper()
        if st.override:
            verdict += f" — overridden by {st.override['who']}: “{st.override['reason']}”"
        cls = "pass" if st.status == "pass" else "warn" if st.status == "warn" or st.override else "fail"
        steps.append({"title": st.title, "mandatory": st.mandatory, "verdict": verdict, "summary": st.summary,
                      "class": cls})
    comparison = [{"label": r["label"], "old": _fmt(r["old"]), "new": _fmt(r["new"]), "delta": _fmt(r["delta"]),
                   "relative": _rel(r["relative"])} for r in s.steps["geometry"].values.get("comparison", [])]
    figures = []
    p, prev = s.profile, s.previous
    if p is not None:
        figures.append(distortion_figure(p, prev))
        if p.per_view_rms_px:
            figures.append(rms_figure(p.per_view_rms_px, float(s.cal["max_rms_px"])))
    if s.focus_trace:
        figures.append(focus_figure(s.focus_trace, s.focus_peak, s.focus_band()))
    metrics = s.steps["domain"].values.get("metrics", {})
    if metrics:
        figures.append(shift_figure(metrics))
    before = None
    if prev is not None and prev.created_utc and lens_profile_dir(s.data_dir).is_dir():
        for png in sorted(lens_profile_dir(s.data_dir).glob("*.png")):
            if record.get("lens_profile") and Path(record["lens_profile"]).with_suffix(".png") == png:
                continue
            before = cv2.imread(str(png))
    images = [_image(before, "Before: the view at the previous recalibration" if before is not None else
                     "Before: no view kept from a previous recalibration"),
              _image(s.last_production, "After: the view now"),
              _image(s.board_image, "Calibration target as seen"),
              _image(_undistorted(s.board_image, p), "The same, undistorted with the new lens profile"),
              _image(s.golden_image, "Golden parts: detections (green) and known defects (yellow)")]
    overrides = [{"step": s.steps[k].title, "reason": v["reason"], "who": v["who"], "utc": v["utc"]}
                 for k, v in (record.get("overrides") or {}).items()]
    ref = record["reference"]
    reference = ("kept the previous reference " + str(ref.get("previous_id") or "")[:16] if ref["kept"] else
                 f"new station reference {ref['id'][:16]} ({ref['path']})")
    return render("recalibration.html.j2", audit_anchor=stamp(Path(s.data_dir)), s=s, record=record, steps=steps, overrides=overrides,
                  previous=f"{prev.source} {prev.created_utc}" if prev else "no previous lens profile",
                  comparison=comparison, reference=reference, images=images, figures=figures)
