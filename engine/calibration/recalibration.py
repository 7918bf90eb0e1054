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
(:data:`SHOWS`; :func:`request_show` asks a simulated line to show it); :func:`run_step` does both for
scripts and tests. Files written: ``lens_profiles/<time>.json`` (and ``.png``, the view at commit, the
next report's "before"), ``references/<id>.npz``, ``station.json`` (the station's active reference,
read by :func:`engine.monitoring.drift.measurers_for`), ``campaigns/<time>.json``, ``reports/recalibration-<time>.html``
and ``.json``; each through a temporary name, fsync and rename.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
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
    solve,
    tilt_deg,
    utc_now,
    write_json_atomic,
)
from engine.monitoring.drift import STATION_FILE, tolerance_band
from engine.core.files import write_atomic
from engine.core.frame import Frame
from engine.monitoring.reference import Reference, ReferenceError
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


class RecalibrationError(RuntimeError):
    """The procedure cannot go on as asked; one sentence."""


# --------------------------------------------------------------------------- files in the data directory


def lens_profile_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "lens_profiles"


def latest_lens_profile(data_dir: Path) -> LensProfile | None:
    """The newest lens profile kept in the data directory, or ``None``."""
    d = lens_profile_dir(data_dir)
    if not d.is_dir():
        return None
    for p in sorted(d.glob("*.json"), reverse=True):
        try:
            return LensProfile.load(p)
        except CalibrationError:
            continue
    return None


def _stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def _unique(path: Path) -> Path:
    n, out = 1, path
    while out.exists():
        n += 1
        out = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return out


def save_lens_profile(data_dir: Path, profile: LensProfile, stamp: str | None = None) -> Path:
    path = _unique(lens_profile_dir(data_dir) / f"{stamp or _stamp()}.json")
    return profile.save(path)


def set_station_reference(data_dir: Path, path: Path, ref_id: str, who: str, why: str) -> Path:
    """Make ``path`` the station's active reference (``<data dir>/station.json``)."""
    out = Path(data_dir) / STATION_FILE
    current: dict[str, Any] = {}
    if out.is_file():
        try:
            current = json.loads(out.read_text())
        except (OSError, ValueError):
            current = {}
    current.update(reference=str(path), reference_id=ref_id, reference_set_utc=utc_now(), reference_set_by=who,
                   reference_reason=why)
    write_json_atomic(out, current)
    return out


@dataclass
class Campaign:
    """Route every ``every_n``-th frame to the review queue for the next ``frames`` frames (a data collection)."""

    id: str
    every_n: int
    frames: int
    reason: str
    opened_utc: str = ""
    seen: int = 0
    path: Path | None = None

    def take(self) -> bool:
        """Count one frame; ``True`` when this one goes to the review queue. Progress is saved now and then."""
        if self.seen >= self.frames:
            return False
        self.seen += 1
        if self.path is not None and (self.seen % 1000 == 0 or self.seen == self.frames):
            try:
                self.save(self.path)
            except OSError:
                pass  # progress is a convenience; the campaign goes on in memory
        return self.seen % self.every_n == 0

    @property
    def active(self) -> bool:
        return self.seen < self.frames

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "every_n": self.every_n, "frames": self.frames, "reason": self.reason,
                "opened_utc": self.opened_utc, "seen": self.seen}

    def save(self, path: Path) -> Path:
        write_json_atomic(path, self.to_dict())
        return path


def active_campaign(data_dir: Path) -> Campaign | None:
    """The newest data collection campaign in ``<data dir>/campaigns`` that still has frames to collect."""
    d = Path(data_dir) / "campaigns"
    if not d.is_dir():
        return None
    for p in sorted(d.glob("*.json"), reverse=True):
        try:
            raw = json.loads(p.read_text())
            c = Campaign(str(raw["id"]), max(1, int(raw["every_n"])), int(raw["frames"]), str(raw.get("reason", "")),
                         str(raw.get("opened_utc", "")), int(raw.get("seen", 0)), p)
        except (OSError, ValueError, KeyError, TypeError):
            continue
        return c if c.active else None
    return None


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
                "summary": self.summary, "values": _plain(self.values), "override": self.override}


@dataclass
class Update:
    """What a fed frame changed, for a live display: an annotated preview, values, a message."""

    step: str
    preview: np.ndarray  # BGR
    values: dict[str, Any]
    message: str
    ready: bool  # enough has been seen for the step to be judged
    status: str = "running"  # the live verdict: running | pass | fail


@dataclass
class CommitResult:
    profile_path: Path
    report_path: Path
    record_path: Path
    reference_path: Path | None
    reference_id: str
    campaign_path: Path | None
    event_time: float


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
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


def simulated_nominal_profile(source: Any, width: int, height: int) -> LensProfile | None:
    """For the simulated line: the nominal lens's profile, from the simulator's own camera model."""
    sim = getattr(source, "sim", None)
    if sim is None:
        return None
    from engine.simulation.optics import NOMINAL_LENS, WORKING_DISTANCE_MM, Camera

    cam = Camera.for_lens(NOMINAL_LENS, width, height)
    return LensProfile(width, height, cam.fx, cam.fx, cam.cx, cam.cy, [cam.k1, 0.0, 0.0, 0.0, 0.0], None, 0,
                       WORKING_DISTANCE_MM / cam.fx, None, WORKING_DISTANCE_MM, "", "simulator nominal lens",
                       created_utc="(simulator)")


def load_references(config: dict[str, Any], data_dir: Path) -> tuple[Reference | None, Reference | None, list[str]]:
    """The station's active reference (its own, else the config's) and the training reference
    (``[calibration] training_reference``, else the config's ``[drift] reference``), with why one is missing."""
    from engine.monitoring.drift import BUILTIN_REFERENCE, station_reference

    problems: list[str] = []
    cache: dict[str, Reference | None] = {}

    def load(path: str | None) -> Reference | None:
        if not path:
            return None
        if path not in cache:
            real = path
            if path == "builtin":
                import resources

                real = str(resources.path(BUILTIN_REFERENCE))
            try:
                cache[path] = Reference.load(Path(real))
            except ReferenceError as e:
                problems.append(f"{e}; the steps that compare with it cannot pass")
                cache[path] = None
        return cache[path]

    drift_ref = config["drift"]["reference"]
    active = load(station_reference(data_dir) or drift_ref)
    training = load(config.get("calibration", {}).get("training_reference") or drift_ref)
    return active, training, problems


def request_show(source: Any, what: str | None) -> bool:
    """Ask the source to show the calibration target, the golden parts or production (``None``).

    A simulated line switches at once; a camera cannot be asked, the technician places the target.
    Returns whether the source took the request.
    """
    req = getattr(source, "request", None)
    if req is None:
        return False
    req(what)
    return True


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
        self.committed: CommitResult | None = None
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
            key = self._pose_key(view, w, h)
            if all(np.abs(key - k).max() > 0.06 for k in self._view_keys) and len(self.views) < self.cal["max_views"]:
                self.views.append(view)
                self._view_keys.append(key)
                self.coverage.add(view)
                self.coverage.add_tilt(self._rough_tilt(view, w, h))
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

    def _rough_tilt(self, view: View, w: int, h: int) -> float:
        """The target's tilt in degrees, with the previous lens (or a guess) standing in for the one being solved."""
        p = self.previous
        if p is not None and (p.width, p.height) == (w, h):
            K, dist = p.matrix, np.asarray(p.dist, np.float64)
        else:
            f = 1.5 * max(w, h)
            K, dist = np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]]), np.zeros(5)
        ok, rvec, _ = cv2.solvePnP(view.object_points, view.image_points, K, dist)
        return tilt_deg(rvec) if ok else 0.0

    @staticmethod
    def _pose_key(view: View, w: int, h: int) -> np.ndarray:
        """Where the target is, how big, how turned and how foreshortened: views too alike add nothing."""
        pts = view.image_points.reshape(-1, 2)
        c = pts.mean(0)
        hull = cv2.convexHull(pts.astype(np.float32))
        area = float(cv2.contourArea(hull))
        rect = cv2.minAreaRect(pts.astype(np.float32))
        (rw, rh) = rect[1]
        return np.array([c[0] / w, c[1] / h, math.sqrt(max(area, 1.0)) / math.hypot(w, h),
                         (rect[2] % 90) / 90.0, area / max(1.0, rw * rh)])

    def _ref_focus_band(self) -> tuple[float, float] | None:
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
        band = self._ref_focus_band()
        ok = band is not None and now >= band[0]
        values = {"focus": f, "focus_settled": now, "peak": self.focus_peak, "band": band}
        if band is None:
            msg = "No reference active: focus for the peak."
        elif ok:
            msg = f"In band: focus {now:.3f} (reference {band[0]:.3f} or more)."
        else:
            msg = f"Below the band: focus {now:.3f}, the reference asks at least {band[0]:.3f}; turn the focus ring."
        preview = image.copy()
        _bar(preview, f, self.focus_peak, band)
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
            self._golden_preview = _draw_boxes(frame.as_order("BGR"), dets.boxes, truth)
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
        out["luma_psi"] = psi(ref.hist[0].astype(np.float64), hist)
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
        band = self._ref_focus_band()
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

    def commit(self, keep_reference: bool = False) -> CommitResult:
        """Write the lens profile, the station reference, the event and the report."""
        if self.committed is not None:
            raise RecalibrationError("this recalibration has already been committed")
        blocked = self.blocking()
        if blocked:
            raise RecalibrationError("not finished: " + ", ".join(TITLES[b].lower() for b in blocked) +
                                     " failed or did not run; override with a written reason to go on")
        if self.profile is None:
            raise RecalibrationError("the geometry has not been solved, so there is no lens profile to keep")
        stamp = _stamp()
        profile_path = save_lens_profile(self.data_dir, self.profile, stamp)
        if self.last_production is not None:
            ok, png = cv2.imencode(".png", self.last_production)
            if ok:
                write_atomic(profile_path.with_suffix(".png"), png.tobytes())
        reference_path, reference_id = None, self.reference.id if self.reference is not None else ""
        if not keep_reference:
            ref = self._build_reference()
            reference_path = Path(self.data_dir) / "references" / f"{ref.id[:16]}.npz"
            reference_path.parent.mkdir(parents=True, exist_ok=True)
            ref.save(reference_path)
            reference_id = ref.id
            set_station_reference(self.data_dir, reference_path, ref.id, self.who,
                                  f"recalibration after {self.reason}")
        campaign_path = None
        if self.campaign_planned:
            c = Campaign(f"recalibration-{stamp}", int(self.cal["campaign_every_n"]), int(self.cal["campaign_frames"]),
                         "domain shift after " + self.reason, utc_now())
            campaign_path = c.save(_unique(Path(self.data_dir) / "campaigns" / f"{stamp}.json"))
        event_time = float(self.last_frame_time if self.last_frame_time is not None else self.clock())
        detail = (f"{self.reason} by {self.who}: lens fx {self.profile.fx:.1f} px, k1 {self.profile.k1:+.3f}; "
                  + (f"new reference {reference_id[:12]}" if not keep_reference else "reference kept"))
        from engine.storage.db import DB_NAME, connect

        db = connect(Path(self.data_dir) / DB_NAME)
        try:
            with db.conn:
                db["station_events"].insert({"time": event_time, "kind": "recalibration", "detail": detail})
        finally:
            db.conn.close()
        record = self.record(keep_reference, reference_id, profile_path, reference_path, campaign_path)
        record_path = _unique(Path(self.data_dir) / "reports" / f"recalibration-{stamp}.json")
        write_json_atomic(record_path, record)
        report_path = record_path.with_suffix(".html")
        write_atomic(report_path, self.report_html(record).encode("utf-8"))
        self.committed = CommitResult(profile_path, report_path, record_path, reference_path, reference_id,
                                      campaign_path, event_time)
        return self.committed

    def _build_reference(self) -> Reference:
        if len(self.domain_stats) < 50:
            raise RecalibrationError(f"a new reference needs at least 50 fresh frames from the domain step, "
                                     f"got {len(self.domain_stats)}; run that step or keep the old reference")
        embs: list[np.ndarray | None] = list(self.domain_embeddings)
        if len(embs) != len(self.domain_stats):
            embs = [None] * len(self.domain_stats)
        w, h = self.size or (0, 0)
        meta = {"source": self.source_uri or "recalibration", "width": w, "height": h,
                "detector": getattr(self.detector, "name", None), "made_by": "recalibration",
                "reason": self.reason, "who": self.who}
        try:
            return Reference.build(zip(self.domain_stats, embs), meta)
        except ReferenceError as e:
            raise RecalibrationError(str(e)) from None

    def record(self, keep_reference: bool, reference_id: str, profile_path: Path, reference_path: Path | None,
               campaign_path: Path | None) -> dict[str, Any]:
        return _plain({
            "started_utc": self.started_utc, "committed_utc": utc_now(), "reason": self.reason, "who": self.who,
            "note": self.note, "source": self.source_uri,
            "steps": [s.to_dict() for s in self.steps.values()],
            "overrides": {s.name: s.override for s in self.steps.values() if s.override},
            "lens_profile": str(profile_path), "previous_profile": self.previous.to_dict() if self.previous else None,
            "reference": {"kept": keep_reference, "id": reference_id,
                          "path": str(reference_path) if reference_path else None,
                          "previous_id": self.reference.id if self.reference is not None else None},
            "campaign": str(campaign_path) if campaign_path else None,
        })

    # ------------------------------------------------------------------ the report

    def report_html(self, record: dict[str, Any]) -> str:
        """A self-contained HTML page: verdicts, overrides, the lens before and after, images and figures."""
        return render_report(self, record)


# --------------------------------------------------------------------------- helpers


def psi(expected: np.ndarray, actual: np.ndarray, eps: float = 1e-4) -> float:
    """Population stability index of two histograms over the same bins (16 merged bins)."""
    e = expected.reshape(16, -1).sum(1)
    a = actual.reshape(16, -1).sum(1)
    e = e / max(e.sum(), 1) + eps
    a = a / max(a.sum(), 1) + eps
    return float(((a - e) * np.log(a / e)).sum())


def exposure_advice(now: dict[str, Any]) -> str:
    """The corrections that bring brightness and colour balance back to the reference, in words."""
    parts = []
    luma = now["mean_luma"]
    if "reference" in luma and luma["current"] > 0:
        ratio = luma["reference"] / luma["current"]
        ev = math.log2(ratio)
        word = "raise" if ratio > 1 else "lower"
        parts.append(f"{word} exposure by {abs(ratio - 1):.1%} ({ev:+.2f} EV)" + ("" if not luma["ok"] else " (in band)"))
    for k, colour in (("gain_r", "red"), ("gain_b", "blue")):
        r = now[k]
        if "reference" in r and r["current"]:
            parts.append(f"{colour} gain x{r['reference'] / r['current']:.3f}" + (" (in band)" if r["ok"] else ""))
    return "To match the reference: " + ", ".join(parts) + "."


def _bar(image: np.ndarray, value: float, peak: float, band: tuple[float, float] | None) -> None:
    """A focus gauge along the bottom of the preview: value, peak hold and the reference band."""
    h, w = image.shape[:2]
    top = max(0, h - max(14, h // 18))
    scale = max(peak, band[1] if band else 0.0, value, 1e-6) * 1.1

    def x(v: float) -> int:
        return round(min(max(v / scale, 0.0), 1.0) * (w - 1))

    cv2.rectangle(image, (0, top), (w - 1, h - 1), (40, 40, 40), -1)
    if band is not None:
        cv2.rectangle(image, (x(band[0]), top), (x(band[1]), h - 1), (60, 140, 60), -1)
    cv2.rectangle(image, (0, top + 3), (x(value), h - 4), (0, 200, 255), -1)
    cv2.line(image, (x(peak), top), (x(peak), h - 1), (255, 255, 255), 2)


def _draw_boxes(image: np.ndarray, dets: Sequence[Any], truth: Sequence[Any]) -> np.ndarray:
    out = image.copy()
    for b in truth:
        cv2.rectangle(out, (int(b.x0), int(b.y0)), (int(b.x1), int(b.y1)), (0, 220, 255), 1)
    for b in dets:
        cv2.rectangle(out, (int(b.x0), int(b.y0)), (int(b.x1), int(b.y1)), (60, 220, 60), 2)
        cv2.putText(out, b.class_name, (int(b.x0), max(10, int(b.y0) - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (60, 220, 60), 1, cv2.LINE_AA)
    return out


MAX_STALLED_READS = 50  # a camera that delivers nothing for this many reads in a row ends the step


def run_step(session: Recalibration, source: Any, step: str, frames: int | None = None,
             on_update: Callable[[Update], None] | None = None, stop: Callable[[], bool] | None = None) -> StepState:
    """Show what ``step`` needs, feed it frames until it is ready (or ``frames`` were read), then judge it.

    ``source`` must be open. Stalled reads are skipped, up to ``MAX_STALLED_READS`` in a row (then the step is
    judged on what it has); the line is returned to production at the end.
    """
    from engine.sources.base import SourceEnded, SourceError

    request_show(source, SHOWS[step])
    limit = frames if frames is not None else 1000
    n = stalled = 0
    try:
        while n < limit and stalled < MAX_STALLED_READS:
            if stop is not None and stop():
                break
            try:
                frame = source.read()
            except SourceEnded:
                break
            except SourceError:
                stalled += 1
                continue
            n, stalled = n + 1, 0
            u = session.feed(step, frame)
            if on_update is not None:
                on_update(u)
            if frames is None and u.ready:
                break
    finally:
        request_show(source, None)
    return session.finish(step)


# --------------------------------------------------------------------------- the report


def _png_b64(image: np.ndarray, max_width: int = 640) -> str:
    h, w = image.shape[:2]
    if w > max_width:
        image = cv2.resize(image, (max_width, round(h * max_width / w)), interpolation=cv2.INTER_AREA)
    ok, png = cv2.imencode(".png", image)
    return base64.b64encode(png.tobytes()).decode() if ok else ""


def _img(image: np.ndarray | None, caption: str) -> str:
    if image is None:
        return f"<figure><div class='none'>(no image)</div><figcaption>{html.escape(caption)}</figcaption></figure>"
    return (f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{_png_b64(image)}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _figure_png(draw: Callable[[Any], None], size: tuple[float, float] = (6.0, 3.0)) -> str:
    """A Matplotlib figure (Agg, no GUI toolkit) as an embedded PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    draw(ax)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return f"<img class='fig' src='data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}'>"


def _undistorted(image: np.ndarray | None, p: LensProfile | None) -> np.ndarray | None:
    if image is None or p is None or (image.shape[1], image.shape[0]) != (p.width, p.height):
        return None
    return cv2.undistort(image, p.matrix, np.asarray(p.dist, np.float64))


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.5g}"
    return html.escape(str(v))


def _rel(v: float | None) -> str:
    return "" if v is None else f"{v:+.2%}"


def render_report(s: Recalibration, record: dict[str, Any]) -> str:
    esc = html.escape
    rows = []
    for st in s.steps.values():
        verdict = st.status.upper()
        if st.override:
            verdict += f" — overridden by {st.override['who']}: “{st.override['reason']}”"
        cls = "pass" if st.status in ("pass",) else "warn" if st.status == "warn" or st.override else "fail"
        rows.append(f"<tr class='{cls}'><td>{esc(st.title)}</td><td>{'yes' if st.mandatory else 'no'}</td>"
                    f"<td>{esc(verdict)}</td><td>{esc(st.summary)}</td></tr>")
    geo = s.steps["geometry"].values
    comp = "".join(
        f"<tr><td>{esc(r['label'])}</td><td>{_fmt(r['old'])}</td><td>{_fmt(r['new'])}</td><td>{_fmt(r['delta'])}</td>"
        f"<td>{_rel(r['relative'])}</td></tr>" for r in geo.get("comparison", []))
    figs = []
    p, prev = s.profile, s.previous
    if p is not None:
        def distortion(ax: Any) -> None:
            r = np.linspace(0, math.hypot(p.width, p.height) / 2, 100)
            for prof, label in ((prev, "before"), (p, "after")):
                if prof is None:
                    continue
                rn = r / prof.fx
                k1, k2 = prof.dist[0], prof.dist[1] if len(prof.dist) > 1 else 0.0
                ax.plot(r, r * (k1 * rn ** 2 + k2 * rn ** 4), label=label)
            ax.set_xlabel("distance from centre (px)")
            ax.set_ylabel("radial displacement (px)")
            ax.set_title("Lens distortion")
            ax.legend()
        figs.append(_figure_png(distortion))
        if p.per_view_rms_px:
            figs.append(_figure_png(lambda ax: (ax.bar(range(1, len(p.per_view_rms_px) + 1), p.per_view_rms_px),
                                                ax.axhline(float(s.cal["max_rms_px"]), color="r", ls="--"),
                                                ax.set_xlabel("view"), ax.set_ylabel("RMS error (px)"),
                                                ax.set_title("Reprojection error per view")), (6.0, 2.6)))
    if s.focus_trace:
        band = s._ref_focus_band()

        def focus(ax: Any) -> None:
            ax.plot(s.focus_trace, label="focus")
            if band:
                ax.axhspan(band[0], band[1], color="g", alpha=0.2, label="reference band")
            ax.axhline(s.focus_peak, color="k", ls=":", label="peak")
            ax.set_xlabel("frame")
            ax.set_title("Focus")
            ax.legend()
        figs.append(_figure_png(focus, (6.0, 2.6)))
    dom = s.steps["domain"].values.get("metrics", {})
    if dom:
        def shift(ax: Any) -> None:
            keys = list(dom)
            rel = [(dom[k]["current"] - dom[k]["reference"]) / (abs(dom[k]["reference"]) or 1) * 100 for k in keys]
            tol = [(dom[k]["high"] - dom[k]["reference"]) / (abs(dom[k]["reference"]) or 1) * 100
                   if math.isfinite(dom[k]["high"]) else 0 for k in keys]
            colours = ["tab:green" if dom[k]["ok"] else "tab:red" for k in keys]
            ax.barh(keys, rel, color=colours)
            ax.errorbar([0] * len(keys), keys, xerr=tol, fmt="none", ecolor="grey", capsize=4)
            ax.set_xlabel("change against the training reference (%), grey: tolerance")
            ax.set_title("Fresh frames against the training reference")
        figs.append(_figure_png(shift, (6.0, 3.2)))
    before = None
    if prev is not None and prev.created_utc and lens_profile_dir(s.data_dir).is_dir():
        for png in sorted(lens_profile_dir(s.data_dir).glob("*.png")):
            if record.get("lens_profile") and Path(record["lens_profile"]).with_suffix(".png") == png:
                continue
            before = cv2.imread(str(png))
    images = [_img(before, "Before: the view at the previous recalibration" if before is not None else
                   "Before: no view kept from a previous recalibration"),
              _img(s.last_production, "After: the view now"),
              _img(s.board_image, "Calibration target as seen"),
              _img(_undistorted(s.board_image, p), "The same, undistorted with the new lens profile"),
              _img(s.golden_image, "Golden parts: detections (green) and known defects (yellow)")]
    ov = record.get("overrides") or {}
    overrides = "".join(f"<li><b>{esc(TITLES[k])}</b>: {esc(v['reason'])} ({esc(v['who'])}, {esc(v['utc'])})</li>"
                        for k, v in ov.items()) or "<li>none</li>"
    ref = record["reference"]
    ref_line = ("kept the previous reference " + esc(str(ref.get("previous_id") or "")[:16]) if ref["kept"] else
                f"new station reference {esc(ref['id'][:16])} ({esc(str(ref['path']))})")
    camp = f"<p><b>Data collection campaign opened</b>: {esc(record['campaign'])}</p>" if record.get("campaign") else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Recalibration {esc(record['committed_utc'])}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}
tr.pass td:nth-child(3){{color:#1a7f37;font-weight:bold}}tr.fail td:nth-child(3){{color:#c62828;font-weight:bold}}
tr.warn td:nth-child(3){{color:#b26a00;font-weight:bold}}figure{{display:inline-block;margin:6px;vertical-align:top}}
figure img{{max-width:460px;border:1px solid #999}}img.fig{{max-width:600px;display:block;margin:8px 0}}
.none{{width:300px;height:120px;background:#eee;display:flex;align-items:center;justify-content:center}}</style>
</head><body>
<h1>Recalibration after {esc(s.reason)}</h1>
<p>By <b>{esc(s.who)}</b>{(': ' + esc(s.note)) if s.note else ''}. Started {esc(s.started_utc)}, committed
{esc(record['committed_utc'])}. Source {esc(s.source_uri)}.</p>
<h2>Checks</h2>
<table><tr><th>step</th><th>mandatory</th><th>verdict</th><th>what was measured</th></tr>{''.join(rows)}</table>
<h3>Overrides</h3><ul>{overrides}</ul>
<h2>Lens: before and after</h2>
<p>Before: {esc(prev.source + ' ' + prev.created_utc) if prev else 'no previous lens profile'}.
After: {esc(str(record['lens_profile']))}.</p>
<table><tr><th>quantity</th><th>before</th><th>after</th><th>change</th><th>relative</th></tr>{comp}</table>
<h2>Reference</h2><p>{ref_line}.</p>{camp}
<h2>Images</h2>{''.join(images)}
<h2>Figures</h2>{''.join(figs)}
</body></html>
"""
