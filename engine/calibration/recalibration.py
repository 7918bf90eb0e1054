"""The recalibration after a lens change, as a state machine without Qt (scriptable and testable).

A lens swap, a refocus, a moved camera or a firmware update invalidates the geometric calibration
and the drift baseline, and may put the model on images it was never trained on. The procedure
proves the station still sees what it saw before, in steps:

1. ``reason`` — why (lens replacement, refocus, camera moved, firmware, cleaning, other) and who;
2. ``geometry`` — the calibration target in several views: intrinsics, distortion, reprojection
   error, scale, compared with the previous lens profile, with guidance to cover the field of view;
3. ``focus`` — the focus measure live, its peak, and the band the reference asks for;
4. ``exposure`` — brightness and colour balance against the reference, with the corrections to make;
5. ``golden`` — the model must find every known defect on the golden parts and raise nothing on the
   good ones;
6. ``domain`` — statistics of fresh frames against the training reference; beyond tolerance the
   model has not seen images like these: a data collection campaign is opened at commit;
7. ``commit`` — the new lens profile, a new station reference (or the old one kept), an event on
   every trend chart, a before/after HTML report, all in the data directory.

A mandatory step (``[calibration] mandatory``) that fails, or was never run, blocks the commit unless
it is overridden with a written reason, which is recorded in the report and the session record.

The caller feeds frames (:meth:`Recalibration.feed`) from whatever source shows what the step needs
(:data:`SHOWS`); :mod:`engine.calibration.recalibration_run` sets a session up and drives a step from a
source, :mod:`engine.calibration.recalibration_commit` writes what a finished session decided and
:mod:`engine.calibration.recalibration_report` draws its report.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.calibration.lens import (
    CalibrationError,
    Coverage,
    LensProfile,
    Pattern,
    View,
    compare_profiles,
    draw_view,
    find_target,
    pose_key,
    rough_tilt,
    solve,
    utc_now,
)
from engine.calibration.previews import draw_boxes, exposure_advice, focus_gauge
from engine.calibration.station_files import latest_lens_profile
from engine.core.errors import StationError
from engine.core.frame import Frame
from engine.monitoring.charts import luma_psi
from engine.monitoring.drift import tolerance_band
from engine.monitoring.reference import Reference
from engine.monitoring.stats import FrameStats, cpu_stats

REASONS = ("lens replacement", "refocus", "camera moved", "firmware update", "cleaning", "other")
STEPS = ("reason", "geometry", "focus", "exposure", "golden", "domain", "commit")
TITLES = {"reason": "Reason", "geometry": "Geometry", "focus": "Focus", "exposure": "Exposure and colour",
          "golden": "Golden parts", "domain": "Domain shift", "commit": "Commit"}
SHOWS: dict[str, str | None] = {"geometry": "checkerboard", "golden": "golden", "focus": None, "exposure": None,
                                "domain": None}
EXPOSURE_KEYS = ("mean_luma", "gain_r", "gain_b")
DETECT_BATCH = 8  # frames the model sees at once in the golden and domain steps
# Uniformity and vignetting move with what is in view (bright parts on a dark belt): too noisy over a few hundred
# frames to judge a domain by; the illumination pattern shows in the luminance histogram and the novelty.
DOMAIN_KEYS = ("mean_luma", "gain_r", "gain_b", "rms_contrast", "focus", "noise")


@dataclass
class CommitResult:
    """What a commit wrote (see :mod:`engine.calibration.recalibration_commit`)."""

    profile_path: Path
    report_path: Path
    record_path: Path
    reference_path: Path | None
    reference_id: str
    campaign_path: Path | None
    event_time: float


class RecalibrationError(StationError):
    """The procedure cannot go on as asked; one sentence."""


# --------------------------------------------------------------------------- steps


@dataclass
class StepState:
    """Where one step stands: status, what was measured, and any override."""

    name: str
    mandatory: bool
    status: str = "pending"  # pending | running | pass | warn | fail
    summary: str = ""
    values: dict[str, Any] = field(default_factory=dict)
    override: dict[str, str] | None = None

    @property
    def title(self) -> str:
        return TITLES[self.name]

    @property
    def satisfied(self) -> bool:
        """Does not block the commit: passed, only warned, overridden, or not mandatory."""
        return self.status in ("pass", "warn") or self.override is not None or not self.mandatory

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "mandatory": self.mandatory, "status": self.status,
                "summary": self.summary, "values": plain(self.values), "override": self.override}


@dataclass
class Update:
    """What a fed frame changed, for a live display: an annotated preview, values, a message."""

    step: str
    preview: np.ndarray  # BGR
    values: dict[str, Any]
    message: str
    ready: bool  # enough has been seen for the step to be judged
    status: str = "running"  # the live verdict: running | pass | fail


def plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _median(xs: Sequence[float]) -> float:
    return float(np.median(np.asarray(xs, np.float64))) if len(xs) else float("nan")


def _settings(config: dict[str, Any]) -> dict[str, Any]:
    cal = dict(config.get("calibration", {}))
    defaults = {"pattern": "9x6", "square_mm": 8.0, "target": "checkerboard", "working_distance_mm": 300.0,
                "min_views": 8, "max_views": 25, "min_coverage": 0.75, "max_rms_px": 0.5, "settle_frames": 10,
                "golden_frames": 100, "golden_min_hit_rate": 0.5, "golden_max_false_alarms_per_frame": 0.05,
                "domain_frames": 150, "max_novel_share": 0.2, "max_luma_psi": 0.25, "campaign_every_n": 10,
                "campaign_frames": 20000, "mandatory": ["geometry", "focus", "golden"], "training_reference": ""}
    for k, v in defaults.items():
        cal.setdefault(k, v)
    return cal


class Recalibration:
    """One recalibration session. Not thread-safe: feed it from one thread at a time."""

    def __init__(self, data_dir: Path, config: dict[str, Any], detector: Any = None,
                 reference: Reference | None = None, training_reference: Reference | None = None,
                 previous_profile: LensProfile | None = None, source_uri: str = "",
                 clock: Callable[[], float] = time.time) -> None:
        self.data_dir = Path(data_dir)
        self.config = config
        self.cal = _settings(config)
        self.detector = detector
        self.reference = reference
        self.training = training_reference if training_reference is not None else reference
        self.previous = previous_profile if previous_profile is not None else latest_lens_profile(self.data_dir)
        self.source_uri = source_uri
        self.clock = clock
        self.pattern = Pattern.parse(self.cal["pattern"], float(self.cal["square_mm"]), self.cal["target"])
        mandatory = set(self.cal["mandatory"])
        unknown = mandatory - set(STEPS)
        if unknown:
            raise RecalibrationError(f"[calibration] mandatory names an unknown step {min(unknown)!r}; "
                                     f"steps are {', '.join(STEPS[1:-1])}")
        self.steps = {s: StepState(s, s in mandatory or s == "reason") for s in STEPS[:-1]}
        self.reason = ""
        self.who = ""
        self.note = ""
        self.started_utc = utc_now()
        self.committed: CommitResult | None = None  # set by recalibration_commit.commit
        self.last_frame_time: float | None = None
        self.last_production: np.ndarray | None = None
        self.first_production: np.ndarray | None = None
        self.size: tuple[int, int] | None = None
        # geometry
        self.views: list[View] = []
        self._view_keys: list[np.ndarray] = []
        self.coverage: Coverage | None = None
        self.profile: LensProfile | None = None
        self.tilts: list[float] = []
        self.geometry_frames = 0
        self.board_image: np.ndarray | None = None
        # focus and exposure
        self.focus_trace: list[float] = []
        self.focus_peak = 0.0
        self.exposure_trace: dict[str, list[float]] = {k: [] for k in EXPOSURE_KEYS}
        # golden
        self.golden_frames = 0
        self.golden_hits: dict[str, list[int]] = {}  # defect -> [frames found, frames fully in view]
        self.golden_false_alarms = 0
        self.golden_has_truth = True
        self.golden_image: np.ndarray | None = None
        self._golden_pending: list[Frame] = []
        self._golden_preview: np.ndarray | None = None
        self._golden_best = -1
        # domain
        self.domain_stats: list[FrameStats] = []
        self._domain_pending: list[Frame] = []
        self.domain_embeddings: list[np.ndarray] = []
        self.domain_novelty: list[float] = []
        self.campaign_planned = False

    # ------------------------------------------------------------------ reason

    def set_reason(self, reason: str, who: str, note: str = "") -> StepState:
        st = self.steps["reason"]
        reason = reason.strip()
        if reason not in REASONS:
            raise RecalibrationError(f"the reason must be one of: {', '.join(REASONS)}")
        if not who.strip():
            raise RecalibrationError("say who is recalibrating the station")
        if reason == "other" and not note.strip():
            raise RecalibrationError("for 'other', write what was done to the camera")
        self.reason, self.who, self.note = reason, who.strip(), note.strip()
        st.status, st.summary = "pass", f"{reason} by {self.who}" + (f": {self.note}" if self.note else "")
        st.values = {"reason": reason, "who": self.who, "note": self.note}
        return st

    # ------------------------------------------------------------------ frames

    def feed(self, step: str, frame: Frame) -> Update:
        """One frame for ``step`` (what it shows must be :data:`SHOWS` ``[step]``)."""
        if step not in SHOWS:
            raise RecalibrationError(f"step {step!r} takes no frames")
        self.last_frame_time = frame.timestamp
        image = frame.as_order("BGR")
        self.size = (frame.width, frame.height)
        if SHOWS[step] is None:
            self.last_production = image
            if self.first_production is None:
                self.first_production = image
        st = self.steps[step]
        if st.status == "pending":
            st.status = "running"
        return getattr(self, f"_feed_{step}")(frame, image)

    def _feed_geometry(self, frame: Frame, image: np.ndarray) -> Update:
        h, w = image.shape[:2]
        if self.coverage is None or (self.coverage.width, self.coverage.height) != (w, h):
            self.coverage, self.views, self._view_keys = Coverage(w, h), [], []
        self.geometry_frames += 1
        view = find_target(image, self.pattern, f"frame {frame.sequence}")
        accepted = False
        if view is not None:
            key = pose_key(view, w, h)
            if all(np.abs(key - k).max() > 0.06 for k in self._view_keys) and len(self.views) < self.cal["max_views"]:
                self.views.append(view)
                self._view_keys.append(key)
                self.coverage.add(view)
                self.coverage.add_tilt(rough_tilt(view, w, h, self.previous))
                accepted = True
                if self.board_image is None:
                    self.board_image = image
        n, need = len(self.views), int(self.cal["min_views"])
        ready = (n >= need and self.coverage.share >= float(self.cal["min_coverage"])
                 and self.coverage.tilted_views >= 3)  # foreshortening is what pins the focal length down
        ready = ready or n >= int(self.cal["max_views"])
        if view is None:
            msg = "Target not found: hold the whole board in view, flat to the light."
        elif not accepted:
            msg = "Seen, but too close to a pose already taken: move or tilt the target."
        else:
            msg = f"View {n} taken."
        values = {"views": n, "min_views": need, "coverage": self.coverage.share,
                  "advice": self.coverage.advice(n, need), "found": view is not None, "accepted": accepted}
        return Update("geometry", draw_view(image, view, self.pattern, self.coverage), values,
                      f"{msg} {values['advice']}", ready)

    def focus_band(self) -> tuple[float, float] | None:
        if self.reference is None:
            return None
        mean = float(self.reference.scalars["focus"].mean())
        lo, hi = tolerance_band("focus", mean, self.config["drift"]["relative_tolerance"],
                                self.config["drift"]["absolute_tolerance"])
        return lo, hi

    def _feed_focus(self, frame: Frame, image: np.ndarray) -> Update:
        f = cpu_stats(image).scalars["focus"]
        self.focus_trace.append(f)
        self.focus_peak = max(self.focus_peak, f)
        n = int(self.cal["settle_frames"])
        now = _median(self.focus_trace[-n:])
        band = self.focus_band()
        ok = band is not None and now >= band[0]
        values = {"focus": f, "focus_settled": now, "peak": self.focus_peak, "band": band}
        if band is None:
            msg = "No reference active: focus for the peak."
        elif ok:
            msg = f"In band: focus {now:.3f} (reference {band[0]:.3f} or more)."
        else:
            msg = f"Below the band: focus {now:.3f}, the reference asks at least {band[0]:.3f}; turn the focus ring."
        preview = image.copy()
        focus_gauge(preview, f, self.focus_peak, band)
        return Update("focus", preview, values, msg, len(self.focus_trace) >= n, "pass" if ok else "fail")

    def _exposure_now(self) -> dict[str, Any]:
        n = int(self.cal["settle_frames"])
        out: dict[str, Any] = {}
        for k in EXPOSURE_KEYS:
            cur = _median(self.exposure_trace[k][-n:])
            row: dict[str, Any] = {"current": cur}
            if self.reference is not None:
                ref = float(self.reference.scalars[k].mean())
                lo, hi = tolerance_band(k, ref, self.config["drift"]["relative_tolerance"],
                                        self.config["drift"]["absolute_tolerance"])
                row.update(reference=ref, low=lo, high=hi, ok=bool(lo <= cur <= hi), delta=cur - ref,
                           correction=ref / cur if cur else None)
            out[k] = row
        return out

    def _feed_exposure(self, frame: Frame, image: np.ndarray) -> Update:
        s = cpu_stats(image).scalars
        for k in EXPOSURE_KEYS:
            self.exposure_trace[k].append(s[k])
        now = self._exposure_now()
        ok = self.reference is not None and all(r.get("ok") for r in now.values())
        msg = exposure_advice(now) if self.reference is not None else "No reference active: nothing to compare with."
        ready = len(self.exposure_trace["mean_luma"]) >= int(self.cal["settle_frames"])
        return Update("exposure", image, {"exposure": now}, msg, ready, "pass" if ok else "fail")

    def _feed_golden(self, frame: Frame, image: np.ndarray) -> Update:
        self.golden_frames += 1
        if frame.ground_truth is None:
            self.golden_has_truth = False
        self._golden_pending.append(frame)
        total = int(self.cal["golden_frames"])
        ready = self.golden_frames >= total
        if len(self._golden_pending) >= DETECT_BATCH or ready:
            self._flush_golden()
        verdict = self._golden_verdict()
        preview = self._golden_preview if self._golden_preview is not None else image
        return Update("golden", preview, verdict, f"Golden parts: frame {self.golden_frames} of {total}.", ready,
                      "pass" if verdict["pass"] else "fail")

    def _flush_golden(self) -> None:
        """Run the model on the frames waiting (in batches: several times faster than one by one)."""
        pending, self._golden_pending = self._golden_pending, []
        if not pending or self.detector is None:
            return
        for frame, dets in zip(pending, self.detector.detect(pending)):
            self._score_golden(frame, dets)
            truth = frame.ground_truth.boxes if frame.ground_truth is not None else ()
            self._golden_preview = draw_boxes(frame.as_order("BGR"), dets.boxes, truth)
            if self.golden_image is None or len(dets.boxes) > self._golden_best:
                self.golden_image, self._golden_best = self._golden_preview, len(dets.boxes)

    def _score_golden(self, frame: Frame, dets: Any) -> None:
        truth = frame.ground_truth
        if truth is None:
            return
        w, h = frame.width, frame.height
        for d in truth.defects:
            b = d.box
            if d.part_id >= 0 or b.x0 <= 1 or b.y0 <= 1 or b.x1 >= w - 2 or b.y1 >= h - 2:
                continue  # not a golden part's defect, or not fully in view
            key = f"golden part {-d.part_id}: {b.class_name}"
            hit = self.golden_hits.setdefault(key, [0, 0])
            hit[1] += 1
            hit[0] += any(p.class_id == b.class_id and p.iou(b) >= 0.3 for p in dets.boxes)
        for p in dets.boxes:
            if not any(p.iou(t.box) >= 0.1 for t in truth.defects):
                self.golden_false_alarms += 1

    def _golden_verdict(self) -> dict[str, Any]:
        rate = {k: (v[0] / v[1] if v[1] else 0.0) for k, v in self.golden_hits.items()}
        fa = self.golden_false_alarms / max(1, self.golden_frames)
        missed = sorted(k for k, r in rate.items() if r < float(self.cal["golden_min_hit_rate"]))
        ok = (self.detector is not None and self.golden_has_truth and bool(rate) and not missed
              and fa <= float(self.cal["golden_max_false_alarms_per_frame"]))
        return {"frames": self.golden_frames, "hit_rate": rate, "missed": missed, "false_alarms": self.golden_false_alarms,
                "false_alarms_per_frame": fa, "pass": ok}

    def _feed_domain(self, frame: Frame, image: np.ndarray) -> Update:
        self.domain_stats.append(cpu_stats(image))
        if self.detector is not None:
            self._domain_pending.append(frame)
        total = int(self.cal["domain_frames"])
        ready = len(self.domain_stats) >= total
        if len(self._domain_pending) >= DETECT_BATCH or ready:
            self._flush_domain()
        verdict = self._domain_verdict()
        return Update("domain", image, verdict, f"Fresh frames: {len(self.domain_stats)} of {total}.", ready,
                      "pass" if verdict["within"] else "fail")

    def _flush_domain(self) -> None:
        pending, self._domain_pending = self._domain_pending, []
        if not pending or self.detector is None:
            return
        for dets in self.detector.detect(pending):
            if dets.embedding is None:
                continue
            self.domain_embeddings.append(np.asarray(dets.embedding, np.float32).ravel())
            if self.training is not None and self.training.embedding is not None:
                self.domain_novelty.append(self.training.embedding.novelty(dets.embedding))

    def _domain_verdict(self) -> dict[str, Any]:
        ref = self.training
        out: dict[str, Any] = {"frames": len(self.domain_stats), "metrics": {}, "within": True}
        if ref is None or not self.domain_stats:
            out["within"] = ref is not None
            return out
        beyond = []
        for k in DOMAIN_KEYS:
            cur = _median([s.scalars[k] for s in self.domain_stats])
            mean = float(ref.scalars[k].mean())
            lo, hi = tolerance_band(k, mean, self.config["drift"]["relative_tolerance"],
                                    self.config["drift"]["absolute_tolerance"])
            ok = lo <= cur <= hi
            out["metrics"][k] = {"current": cur, "reference": mean, "low": lo, "high": hi, "ok": ok}
            if not ok:
                beyond.append(k)
        hist = np.sum([s.hist[0] for s in self.domain_stats], axis=0).astype(np.float64)
        out["luma_psi"] = luma_psi(ref.hist[0], hist)
        if out["luma_psi"] > float(self.cal["max_luma_psi"]):
            beyond.append("luminance histogram (PSI)")
        if self.domain_novelty:
            share = float(np.mean(np.asarray(self.domain_novelty) > 1.0))
            out["novel_share"] = share
            if share > float(self.cal["max_novel_share"]):
                beyond.append("novelty (model embedding)")
        out["beyond"] = beyond
        out["within"] = not beyond
        return out

    def reset(self, step: str) -> None:
        """Forget what ``step`` has seen and judged: measuring it again starts afresh."""
        st = self.steps[step]
        st.status, st.summary, st.values, st.override = "pending", "", {}, None
        if step == "geometry":
            self.views, self._view_keys, self.coverage, self.profile, self.geometry_frames = [], [], None, None, 0
            self.board_image = None
        elif step == "focus":
            self.focus_trace, self.focus_peak = [], 0.0
        elif step == "exposure":
            self.exposure_trace = {k: [] for k in EXPOSURE_KEYS}
        elif step == "golden":
            self.golden_frames, self.golden_hits, self.golden_false_alarms = 0, {}, 0
            self._golden_pending, self._golden_preview, self.golden_image, self._golden_best = [], None, None, -1
            self.golden_has_truth = True
        elif step == "domain":
            self.domain_stats, self.domain_embeddings, self.domain_novelty, self._domain_pending = [], [], [], []
            self.campaign_planned = False

    # ------------------------------------------------------------------ judging

    def finish(self, step: str) -> StepState:
        """Judge ``step`` on what it has seen."""
        st = self.steps[step]
        getattr(self, f"_finish_{step}")(st)
        return st

    def _finish_geometry(self, st: StepState) -> None:
        if self.size is None or not self.views:
            st.status, st.summary = "fail", "The target was not found in any view."
            return
        try:
            self.profile, self.tilts = solve(self.views, self.size, self.pattern,
                                             float(self.cal["working_distance_mm"]) or None,
                                             min(int(self.cal["min_views"]), 5))
        except CalibrationError as e:
            st.status, st.summary = "fail", str(e)
            return
        p = self.profile
        p.who, p.reason = self.who, self.reason
        previous = self.previous
        if previous is not None and (previous.width, previous.height) != (p.width, p.height):
            previous = None
        rows = compare_profiles(previous, p)
        cov = self.coverage.share if self.coverage else 0.0
        problems = []
        if p.rms_px is None or p.rms_px > float(self.cal["max_rms_px"]):
            problems.append(f"reprojection error {p.rms_px:.3f} px is above {self.cal['max_rms_px']} px")
        if len(self.views) < int(self.cal["min_views"]):
            problems.append(f"only {len(self.views)} views (at least {self.cal['min_views']})")
        if cov < float(self.cal["min_coverage"]):
            problems.append(f"the views cover {cov:.0%} of the field (at least {float(self.cal['min_coverage']):.0%})")
        st.values = {"profile": p.to_dict(), "comparison": rows, "coverage": cov, "views": len(self.views),
                     "tilts_deg": self.tilts, "previous": previous.to_dict() if previous else None}
        fx = next(r for r in rows if r["key"] == "fx")
        change = f"; focal length {fx['relative']:+.1%} against the previous lens" if fx["relative"] is not None else ""
        st.status = "fail" if problems else "pass"
        st.summary = ("; ".join(problems) if problems else
                      f"{len(self.views)} views, reprojection {p.rms_px:.3f} px, k1 {p.k1:+.3f}{change}")

    def _finish_focus(self, st: StepState) -> None:
        n = int(self.cal["settle_frames"])
        if len(self.focus_trace) < 1:
            st.status, st.summary = "fail", "No frames were measured."
            return
        now = _median(self.focus_trace[-n:])
        band = self.focus_band()
        st.values = {"focus": now, "peak": self.focus_peak, "band": band, "trace": self.focus_trace[-300:]}
        if band is None:
            st.status, st.summary = "warn", f"Focus {now:.3f}; no reference to compare with."
        elif now >= band[0]:
            st.status, st.summary = "pass", f"Focus {now:.3f} (peak {self.focus_peak:.3f}); the reference asks {band[0]:.3f} or more."
        else:
            st.status, st.summary = "fail", (f"Focus {now:.3f} (peak {self.focus_peak:.3f}) is below the reference's "
                                             f"band ({band[0]:.3f} or more).")

    def _finish_exposure(self, st: StepState) -> None:
        if not self.exposure_trace["mean_luma"]:
            st.status, st.summary = "fail", "No frames were measured."
            return
        now = self._exposure_now()
        st.values = {"exposure": now}
        if self.reference is None:
            st.status, st.summary = "warn", "No reference to compare with."
            return
        ok = all(r["ok"] for r in now.values())
        st.status = "pass" if ok else "fail"
        st.summary = "Brightness and colour balance within tolerance." if ok else exposure_advice(now)

    def _finish_golden(self, st: StepState) -> None:
        self._flush_golden()
        v = self._golden_verdict()
        st.values = v
        if self.detector is None:
            st.status, st.summary = "fail", "No model is loaded: the golden parts cannot be checked."
        elif not self.golden_has_truth:
            st.status, st.summary = "fail", ("This source does not carry the golden parts' known defects; "
                                             "check them by eye and override with what you saw.")
        elif not v["hit_rate"]:
            st.status, st.summary = "fail", "No golden part with a known defect was fully in view."
        else:
            found = sum(1 for k in v["hit_rate"] if k not in v["missed"])
            st.status = "pass" if v["pass"] else "fail"
            st.summary = (f"{found} of {len(v['hit_rate'])} known defects found; "
                          f"{v['false_alarms']} false alarms in {v['frames']} frames "
                          f"({v['false_alarms_per_frame']:.3f} per frame, at most "
                          f"{float(self.cal['golden_max_false_alarms_per_frame']):.3f})")
            if v["missed"]:
                st.summary += "; missed: " + ", ".join(v["missed"])

    def _finish_domain(self, st: StepState) -> None:
        self._flush_domain()
        v = self._domain_verdict()
        st.values = v
        if self.training is None:
            st.status, st.summary = "warn", "No training reference to compare with."
            return
        if not self.domain_stats:
            st.status, st.summary = "fail", "No frames were measured."
            return
        if v["within"]:
            st.status, self.campaign_planned = "pass", False
            st.summary = "Fresh frames are like the training reference."
        else:
            st.status = "fail" if st.mandatory else "warn"
            self.campaign_planned = True
            st.summary = ("The model has not been trained on images like these (" + ", ".join(v["beyond"]) +
                          f"): a data collection campaign will route every {self.cal['campaign_every_n']}th frame "
                          f"of the next {self.cal['campaign_frames']} to the review queue.")

    # ------------------------------------------------------------------ overrides and commit

    def override(self, step: str, reason: str, who: str) -> StepState:
        """Let a failed step pass with a written reason (recorded)."""
        st = self.steps[step]
        if len(reason.strip()) < 10:
            raise RecalibrationError("write the reason for the override (at least 10 characters)")
        if not who.strip():
            raise RecalibrationError("say who overrides the check")
        st.override = {"reason": reason.strip(), "who": who.strip(), "utc": utc_now()}
        return st

    def blocking(self) -> list[str]:
        """Mandatory steps that failed or were not run, and have no override."""
        return [s.name for s in self.steps.values() if not s.satisfied]
