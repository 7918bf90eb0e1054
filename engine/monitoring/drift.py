"""The drift monitor: per-frame statistics against a reference, control charts, scores and alarms.

Levels, per metric:

- **ok**: its control charts (EWMA and two-sided CUSUM on batch means, limits from the reference,
  calibrated to ``arl0_batches`` between false signals) are quiet;
- **warning**: a chart signals a statistically significant shift, but the smoothed value (the EWMA)
  is still inside the metric's tolerance;
- **alarm**: a chart signals and the smoothed value is outside the tolerance.

For the first ``warmup_batches`` batches after the monitor starts (the line starting, a reference swapped) the
batch means are drawn but the charts are not fed: the belt fills and the camera settles, and nothing warns. The
tiles say "warming up" meanwhile (:attr:`DriftMonitor.warming_up`).

The tolerances are engineering limits in the config (``[drift.relative_tolerance]``, a share of
the reference mean, and ``[drift.absolute_tolerance]``); the time left until a tolerance is
crossed is extrapolated from the trend of the recent batch means, and given only when it is within
``ETA_HORIZON_S`` (a trend that would take longer is steady).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from engine.core.frame import Frame
from engine.core.protocols import Alarm, Detections, Measurement
from engine.monitoring.charts import ControlChart, js, kl, ks, luma_psi, mmd_rbf, wasserstein1
from engine.monitoring.reference import Reference, ReferenceError
from engine.monitoring.stats import SCALARS, FrameStats, cpu_stats, opencv_luma_is_exact

LEVELS = ("ok", "warning", "alarm")
BUILTIN_REFERENCE = "reference_nominal.npz"  # the default simulated station (seed 0), nominal, 1280x1024, built-in model
STATION_FILE = "station.json"  # in the data directory: the reference a recalibration made the station's own
GRID_SIGMA_FLOOR = 0.002  # 0.2 % of the frame's mean level
STATIC_CELL_MAX_SPREAD = 0.05  # a cell is static when its batch-mean median varies less than 5 % in the reference
STATIC_CELLS_MIN = 4  # fewer static cells than this: no uniformity drift
NOVELTY_WARNING_RATE = 0.05
SIZE_DEPENDENT = ("focus", "noise")  # statistics that change when a frame is resized  # share of novel frames in the window
NOVELTY_ALARM_RATE = 0.20
ETA_HORIZON_S = 24 * 3600.0  # a tolerance crossed later than this at the present trend: steady, no time given


def batch_means(x: np.ndarray, b: int) -> np.ndarray:
    n = (len(x) // b) * b
    return x[:n].reshape(-1, b).mean(1)


def chart_sigma(x: np.ndarray, batch: int, group: int = 5) -> float:
    """Standard deviation of batch means, allowing for correlation between neighbouring batches.

    The larger of the plain estimate and the long-run one from means over ``group`` batches
    (scaled back by ``sqrt(group)``): the parts that cross the view make the statistics periodic,
    and neighbouring batches are not independent.
    """
    bm = batch_means(x, batch)
    sd = float(bm.std(ddof=1)) if len(bm) > 1 else 0.0
    big = batch_means(x, batch * group)
    if len(big) > 2:
        sd = max(sd, float(big.std(ddof=1)) * math.sqrt(group))
    return sd


@dataclass
class MetricState:
    name: str
    reference: float
    low: float  # tolerance band
    high: float
    level: str = "ok"
    value: float = float("nan")  # the EWMA of the batch means
    last_batch: float = float("nan")
    time_to_tolerance_s: float | None = None
    history: deque = field(default_factory=lambda: deque(maxlen=30))  # (time, batch mean)

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "value": round(self.value, 5), "reference": round(self.reference, 5),
                "low": round(self.low, 5), "high": round(self.high, 5),
                "time_to_tolerance_s": None if self.time_to_tolerance_s is None else round(self.time_to_tolerance_s)}


@dataclass
class BatchPoint:
    """One batch: when it ended, each metric's mean, and every metric's level then."""

    time: float
    sequence: int
    means: dict[str, float]
    levels: dict[str, str]
    scores: dict[str, float]
    alarms: list[Alarm] = field(default_factory=list)  # level changes at this batch


def tolerance_band(name: str, ref_mean: float, relative: dict[str, float], absolute: dict[str, float]
                   ) -> tuple[float, float]:
    if name in absolute:
        return ref_mean - absolute[name], ref_mean + absolute[name]
    if name in relative:
        d = abs(ref_mean) * relative[name]
        return ref_mean - d, ref_mean + d
    return -math.inf, math.inf


class DriftMonitor:
    """A pipeline measurer: statistics of every frame, drift of every batch against the reference."""

    name = "drift"

    def __init__(self, reference: Reference, relative_tolerance: dict[str, float],
                 absolute_tolerance: dict[str, float], arl0_batches: float = 1e6, window: int = 300,
                 batch: int = 10, stats_fn: Callable[[np.ndarray], FrameStats] = cpu_stats,
                 on_batch: Callable[[BatchPoint], None] | None = None, backend: str = "cpu",
                 warmup_batches: int = 0) -> None:
        self.ref = reference
        self.warmup_batches = max(0, int(warmup_batches))
        self.stats_fn = stats_fn
        self.backend = backend  # where stats_fn computes ("cpu", "gpu"), for reports
        opencv_luma_is_exact()  # decided now, not on the first frame
        self.batch = int(batch)
        if reference.frames < 5 * self.batch * 3:
            raise ValueError(f"the reference has {reference.frames} frames; batches of {self.batch} need at least "
                             f"{15 * self.batch}")
        self.window = window
        self.on_batch = on_batch
        self.charts: dict[str, ControlChart] = {}
        self.metrics: dict[str, MetricState] = {}

        def add_chart(name: str, mean: float, sigma: float, min_sigma: float, upper_only: bool = False) -> None:
            lo, hi = tolerance_band(name, mean, relative_tolerance, absolute_tolerance)
            # Shifts far smaller than the tolerance are real but not worth a signal: the chart's sigma is at
            # least an eighth of the tolerance's half-width (an acceptance control chart).
            floor = (hi - lo) / 16 if math.isfinite(hi - lo) else 0.0
            self.charts[name] = ControlChart(mean, max(sigma, floor, min_sigma), arl0_batches, upper_only=upper_only)
            self.metrics[name] = MetricState(name, mean, lo, hi, value=mean)

        for k in SCALARS:
            x = reference.scalars[k]
            mean = float(x.mean())
            add_chart(k, mean, chart_sigma(x, self.batch), 1e-6 * max(1.0, abs(mean)))
        self._grid_model = self._fit_grid_model(reference) if reference.grids is not None else None
        if self._grid_model is not None:
            x = self._grid_model[2]
            # A distance: only a rise is drift. It also falls when a slower line (frames dropped) spreads a batch
            # over more of the belt than the reference's consecutive frames, which is no drift at all.
            add_chart("grid_drift", float(x.mean()), float(x.std(ddof=1)), 1e-6, upper_only=True)
        self._static_model = self._fit_static_model(reference) if reference.cell_medians is not None else None
        if self._static_model is not None:
            x = self._static_model[2]
            add_chart("uniformity_drift", float(x.mean()), chart_sigma(x, 1), 1e-6, upper_only=True)
        self._reset_batch()
        self._ref_hist = reference.hist[0]
        self._hist_window: deque[np.ndarray] = deque(maxlen=window)
        self._scalar_window: dict[str, deque[float]] = {k: deque(maxlen=window) for k in SCALARS}
        self._novel_window: deque[bool] = deque(maxlen=window)
        self._proj_window: deque[np.ndarray] = deque(maxlen=window)
        self.novelty_level = "ok"
        self.scores: dict[str, float] = {}
        self.points: deque[BatchPoint] = deque(maxlen=3000)  # the recent batches (readers take the new ones)
        self.batches = 0
        self.frames = 0
        self.size_mismatch = False
        self._lock = threading.Lock()
        self._last_hist = np.zeros(256)
        self.model_name = ""
        self.model_sha256 = ""
        self._embedding_verdict: bool | None = None
        self.novelty_off: str | None = None  # why novelty is not measured for the running model

    # ------------------------------------------------------------------ Measurer

    def measure(self, frame: Frame, detections: Detections | None) -> Measurement:
        image = frame.as_order("BGR")
        self.frames += 1
        alarms: list[Alarm] = []
        size = self.ref.meta.get("width"), self.ref.meta.get("height")
        if None not in size and tuple(size) != (frame.width, frame.height):
            # Another frame size: brightness, colour, contrast, histograms (as shares) and the light's pattern stay
            # comparable; focus and noise do not, and are left out. A larger frame is measured resized to the
            # reference's size (fewer pixels to measure); a smaller one as it is (enlarging it adds nothing).
            larger = frame.width * frame.height > int(size[0]) * int(size[1])
            if larger:
                image = cv2.resize(image, (int(size[0]), int(size[1])), interpolation=cv2.INTER_AREA)
            if not self.size_mismatch:
                self.size_mismatch = True
                for k in SIZE_DEPENDENT:
                    self.charts.pop(k, None)
                    self.metrics.pop(k, None)
                how = "resized to the reference's size" if larger else "as they are"
                alarms.append(Alarm("reference", "warning", f"the active reference is for {size[0]}x{size[1]} frames,"
                                    f" these are {frame.width}x{frame.height}: they are measured {how}, and "
                                    f"{' and '.join(SIZE_DEPENDENT)} are not compared"))
        st = self.stats_fn(image)
        values: dict[str, Any] = {k: round(float(v), 5) for k, v in st.scalars.items()}
        values["grid"] = [round(float(v), 2) for v in st.grid.ravel()]
        emb = detections.embedding if detections is not None else None
        if emb is not None and self.ref.embedding is not None and self._embedding_usable(emb, alarms):
            nov = self.ref.embedding.novelty(emb)
            values["novelty"] = round(nov, 4)
            self._novel_window.append(nov > 1.0)
            self._proj_window.append(self.ref.embedding.project(emb[None])[0])
        self._hist_window.append(st.hist[0])
        for k in SCALARS:
            self._sums[k] += st.scalars[k]
            self._scalar_window[k].append(st.scalars[k])
        self._grid_sum += st.grid
        if st.cell_median is not None and np.isfinite(st.cell_median).all():
            self._median_sum += st.cell_median
            self._median_count += 1
        self._count += 1
        if self._count >= self.batch:
            alarms += self._close_batch(frame)
        values["drift"] = {k: m.level for k, m in self.metrics.items() if m.level != "ok"}
        if self.novelty_level != "ok":
            values["drift"]["novelty"] = self.novelty_level
        values["drift_level"] = self.overall_level
        values["reference_id"] = self.ref.id
        if self.scores and self._count == 0:
            values["drift_scores"] = {k: round(v, 5) for k, v in self.scores.items()}
        return Measurement(values, alarms)

    # ------------------------------------------------------------------ whose embedding

    def use_model(self, detector: Any) -> None:
        """The model whose embeddings arrive from now on (its ``name`` and ``sha256``): novelty is measured only
        when the reference's embedding baseline was built with the same model."""
        self.model_name = str(getattr(detector, "name", "") or "")
        self.model_sha256 = str(getattr(detector, "sha256", "") or "")
        self._embedding_verdict = None

    def embedding_mismatch(self, emb: np.ndarray | None = None) -> str | None:
        """Why the reference's embedding baseline does not fit the running model, or None when it does."""
        e = self.ref.embedding
        if e is None:
            return "the reference holds no embedding baseline"
        meta = self.ref.meta
        ref_sha, ref_name = str(meta.get("detector_sha256") or ""), str(meta.get("detector") or "")
        whose = ref_name or (ref_sha[:12] if ref_sha else "another model")
        if self.model_sha256 and ref_sha and self.model_sha256 != ref_sha:
            return f"the reference's embedding baseline is from {whose}, not from {self.model_name or 'this model'}"
        if self.model_name and ref_name and not ref_sha and self.model_name != ref_name:
            return f"the reference's embedding baseline is from {whose}, not from {self.model_name}"
        if emb is not None and np.asarray(emb).size != e.mean.size:
            return (f"the reference's embedding baseline has {e.mean.size} values and this model's embedding "
                    f"{np.asarray(emb).size}")
        return None

    def _embedding_usable(self, emb: np.ndarray, alarms: list[Alarm]) -> bool:
        if self._embedding_verdict is None:
            why = self.embedding_mismatch(emb)
            self._embedding_verdict = why is None
            if why is not None:
                self.novelty_off = why
                alarms.append(Alarm("novelty", "warning", f"{why}: novelty is off for this model until a reference "
                                    "is built with it; everything else is measured"))
        elif self._embedding_verdict and np.asarray(emb).size != self.ref.embedding.mean.size:
            self._embedding_verdict = None  # another model came in without use_model: decide again
            return self._embedding_usable(emb, alarms)
        return bool(self._embedding_verdict)

    @property
    def warming_up(self) -> bool:
        """True during the first ``warmup_batches`` batches: means are kept, charts not fed, no level changes."""
        return self.batches < self.warmup_batches

    @property
    def overall_level(self) -> str:
        levels = [m.level for m in self.metrics.values()] + [self.novelty_level]
        return max(levels, key=LEVELS.index)

    # ------------------------------------------------------------------ batches

    def _close_batch(self, frame: Frame) -> list[Alarm]:
        t = frame.timestamp
        means = {k: self._sums[k] / self._count for k in SCALARS}
        if self._grid_model is not None:
            means["grid_drift"] = self._grid_drift(self._grid_sum / self._count)
        if self._static_model is not None and self._median_count:
            means["uniformity_drift"] = self._uniformity_drift(self._median_sum / self._median_count)
        self._reset_batch()
        alarms: list[Alarm] = []
        warming = self.warming_up
        for k, mean in means.items():
            if k not in self.charts:
                continue
            chart, m = self.charts[k], self.metrics[k]
            if warming:
                m.last_batch = mean
                continue
            signalling = chart.update(mean)
            m.value, m.last_batch = chart.state.ewma, mean
            m.history.append((t, mean))
            outside = not (m.low <= m.value <= m.high)
            level = "alarm" if signalling and outside else ("warning" if signalling else "ok")
            m.time_to_tolerance_s = self._eta(m)
            if level != m.level:
                alarms.append(self._transition(k, m.level, level, m))
                m.level = level
        self._scores()
        if self._novel_window:
            means["novel_rate"] = float(np.mean(self._novel_window))
        nov_level = self._novelty_level() if not warming else "ok"
        if nov_level != self.novelty_level:
            rate = float(np.mean(self._novel_window)) if self._novel_window else 0.0
            alarms.append(Alarm("novelty", nov_level if nov_level != "ok" else "cleared",
                                f"novelty: {rate:.0%} of the last {len(self._novel_window)} frames are unlike "
                                f"the reference ({nov_level})"))
            self.novelty_level = nov_level
        levels = {k: m.level for k, m in self.metrics.items()}
        levels["novelty"] = self.novelty_level
        point = BatchPoint(t, frame.sequence, means, levels, dict(self.scores), list(alarms))
        with self._lock:
            self.points.append(point)
            self.batches += 1
        if self.on_batch is not None:
            self.on_batch(point)
        return alarms

    def _reset_batch(self) -> None:
        self._sums = dict.fromkeys(SCALARS, 0.0)
        self._grid_sum = np.zeros((8, 8))
        self._median_sum = np.zeros((8, 8))
        self._median_count = 0
        self._count = 0

    def _batch_grids(self, grids: np.ndarray) -> np.ndarray | None:
        """Per-frame 8 x 8 grids of the reference as means over its whole batches; ``None`` under 10 batches."""
        nb = len(grids) // self.batch
        if nb < 10:
            return None
        return grids[: nb * self.batch].astype(np.float64).reshape(nb, self.batch, 8, 8).mean(1)

    def _fit_grid_model(self, ref: Reference) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Per-cell mean and spread of the batch-mean grid (each over its own mean) across the reference batches,
        and the reference's own grid-drift values."""
        batches = self._batch_grids(ref.grids)
        if batches is None:
            return None
        shapes = batches / batches.mean(axis=(1, 2), keepdims=True)
        mu = shapes.mean(0)
        sd = np.maximum(shapes.std(0, ddof=1), GRID_SIGMA_FLOOR)
        values = np.sqrt((((shapes - mu) / sd) ** 2).mean(axis=(1, 2)))
        return mu, sd, values

    def _grid_drift(self, grid: np.ndarray) -> float:
        """How far the batch's illumination pattern is from the reference's, cell by cell in reference spreads:
        cells where parts come and go count little, static ones (fixtures, background) count much."""
        mu, sd, _ = self._grid_model  # type: ignore[misc]
        m = grid.mean()
        shape = grid / m if m > 0 else grid
        return float(np.sqrt((((shape - mu) / sd) ** 2).mean()))

    def _fit_static_model(self, ref: Reference) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The static cells (whose batch-mean cell median varies by less than ``STATIC_CELL_MAX_SPREAD`` across the
        reference batches: fixtures, rails, bare belt), their reference levels, and the reference batches' own
        uniformity-drift values. ``None`` when the reference has too few batches or static cells."""
        batches = self._batch_grids(ref.cell_medians)
        if batches is None or not np.isfinite(batches).all():
            return None
        level = batches.mean(0)
        spread = batches.std(0, ddof=1) / np.maximum(level, 1e-9)
        static = (spread < STATIC_CELL_MAX_SPREAD) & (level >= 8.0)  # a cell in the dark says nothing of the light
        if static.sum() < STATIC_CELLS_MIN:
            return None
        values = np.array([self._pattern_change(b, static, level) for b in batches])
        return static, level, values

    @staticmethod
    def _pattern_change(medians: np.ndarray, static: np.ndarray, level: np.ndarray) -> float:
        r = medians[static] / level[static]
        r = r / r.mean()
        return float(np.sqrt(np.mean((r - 1.0) ** 2)))

    def _uniformity_drift(self, medians: np.ndarray) -> float:
        """How far the light's pattern over the static cells has moved from the reference's: each static cell's
        median over its reference level, over the mean of those ratios (so a brighter or dimmer lamp alone does
        not count), RMS of the difference from 1. A part passing through does not move a median unless it covers
        half the cell; a lens or lamp change moves the pattern for good."""
        static, level, _ = self._static_model  # type: ignore[misc]
        return self._pattern_change(medians, static, level)

    def _transition(self, k: str, old: str, new: str, m: MetricState) -> Alarm:
        if new == "ok":
            return Alarm(k, "cleared", f"{k} back in control ({m.value:.4g}, reference {m.reference:.4g})")
        why = "outside its tolerance" if new == "alarm" else "drifting, still within tolerance"
        eta = ""
        if m.time_to_tolerance_s is not None and new == "warning":
            eta = f"; tolerance in about {_human(m.time_to_tolerance_s)} at this trend"
        return Alarm(k, new, f"{k} {why}: {m.value:.4g} against reference {m.reference:.4g} "
                             f"(tolerance {m.low:.4g}..{m.high:.4g}){eta}")

    @staticmethod
    def _eta(m: MetricState) -> float | None:
        """Seconds until the trend of the recent batch means crosses the tolerance, if it is heading there."""
        if len(m.history) < 5 or not (m.low <= m.value <= m.high):
            return None
        t = np.array([p[0] for p in m.history])
        y = np.array([p[1] for p in m.history])
        if t[-1] - t[0] <= 0:
            return None
        slope = float(np.polyfit(t - t[0], y, 1)[0])
        eta = None
        if slope > 0 and math.isfinite(m.high):
            eta = (m.high - m.value) / slope
        elif slope < 0 and math.isfinite(m.low):
            eta = (m.low - m.value) / slope
        return eta if eta is not None and 0 <= eta <= ETA_HORIZON_S else None

    def _scores(self) -> None:
        if not self._hist_window:
            return
        cur = np.sum(self._hist_window, axis=0)
        with self._lock:
            self._last_hist = cur.astype(np.float64)
        s = {"psi_luma": luma_psi(self._ref_hist, cur), "kl_luma": kl(self._ref_hist, cur),
             "js_luma": js(self._ref_hist, cur)}
        for k in ("mean_luma", "focus", "gain_r", "gain_b"):
            if self.size_mismatch and k in SIZE_DEPENDENT:
                continue
            w = np.fromiter(self._scalar_window[k], float)
            s[f"w1_{k}"] = wasserstein1(self.ref.scalars[k], w)
            s[f"ks_{k}"] = ks(self.ref.scalars[k], w)
        if self._proj_window and self.ref.embedding is not None:
            e = self.ref.embedding
            ref = e.projected[:: max(1, len(e.projected) // 300)]
            cur_p = np.stack(self._proj_window)[-200:]
            s["mmd_embedding"] = mmd_rbf(ref, cur_p, e.bandwidth)
            s["novel_rate"] = float(np.mean(self._novel_window))
        self.scores = s

    def _novelty_level(self) -> str:
        if len(self._novel_window) < min(self.window, 50):
            return "ok"
        rate = float(np.mean(self._novel_window))
        return "alarm" if rate >= NOVELTY_ALARM_RATE else ("warning" if rate >= NOVELTY_WARNING_RATE else "ok")

    def new_points(self, seen: int) -> tuple[int, list[BatchPoint]]:
        """Batches after the first ``seen`` (thread-safe), and the new count to pass next time."""
        with self._lock:
            fresh = min(self.batches - seen, len(self.points))
            return self.batches, list(self.points)[len(self.points) - fresh:] if fresh > 0 else []

    def window_histogram(self) -> np.ndarray:
        """The luminance histogram of the sliding window, as shares (thread-safe copy)."""
        with self._lock:
            h = self._last_hist.copy()
        return h / h.sum() if h.sum() else h

    def status(self) -> dict[str, dict[str, Any]]:
        return {k: m.to_dict() for k, m in self.metrics.items()}


def _human(seconds: float) -> str:
    s = abs(seconds)
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if s >= size:
            return f"{s / size:.1f} {unit}"
    return f"{s:.0f} s"


class StatsMeasurer:
    """The per-frame statistics alone, for when no reference is active."""

    name = "stats"

    def __init__(self, stats_fn: Callable[[np.ndarray], FrameStats] = cpu_stats, backend: str = "cpu") -> None:
        self.stats_fn = stats_fn
        self.backend = backend  # where stats_fn computes ("cpu", "gpu"), for reports
        opencv_luma_is_exact()  # decided now, not on the first frame

    def measure(self, frame: Frame, detections: Detections | None) -> Measurement:
        return Measurement(self.stats_fn(frame.as_order("BGR")).to_record())


def station_reference(data_dir: Any) -> str | None:
    """The reference the station's last recalibration made active (``<data dir>/station.json``), if any."""
    if data_dir is None:
        return None
    import json
    from pathlib import Path

    try:
        return json.loads((Path(data_dir) / STATION_FILE).read_text()).get("reference") or None
    except (OSError, ValueError, AttributeError):
        return None


STATS_BACKENDS = ("auto", "cpu", "gpu")


def stats_backend(choice: str = "auto") -> tuple[str, Callable[[np.ndarray], FrameStats]]:
    """The per-frame statistics function for ``[drift] backend``, with its name: "cpu"; "gpu"
    (:mod:`engine.monitoring.gpu_stats`); or "auto", the GPU when one is present and its kernels run, else the CPU.

    Raises :class:`engine.monitoring.reference.ReferenceError` when "gpu" is asked for and cannot be used.
    """
    if choice not in STATS_BACKENDS:
        raise ReferenceError(f"[drift] backend must be one of {', '.join(STATS_BACKENDS)}, not {choice!r}")
    if choice == "cpu":
        return "cpu", cpu_stats
    from engine.monitoring.gpu_stats import default_gpu_stats, gpu_stats, gpu_status

    ok, why = gpu_status()
    if ok:
        try:
            default_gpu_stats().warm_up()  # compiled and run once now, not on the first frame
            return "gpu", gpu_stats
        except Exception as e:  # noqa: BLE001 - a compiler or driver that cannot do the work: the CPU does it
            first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
            why = f"the GPU kernels cannot run ({first_line})"
    if choice == "gpu":
        raise ReferenceError(f'[drift] backend is "gpu" but {why}')
    return "cpu", cpu_stats


def measurers_for(config: dict[str, Any], reference_path: str | None = None,
                  on_batch: Callable[[BatchPoint], None] | None = None, data_dir: Any = None) -> list[Any]:
    """The pipeline's measurers: drift against the reference named here, else the station's own (set by a
    recalibration in ``data_dir``), else the config's; with none, statistics only.

    Raises :class:`engine.monitoring.reference.ReferenceError` when a named reference, or the statistics backend
    ``[drift] backend`` names, cannot be used.
    """
    d = config["drift"]
    backend, stats_fn = stats_backend(d.get("backend", "auto"))
    if reference_path is not None and reference_path.strip().lower() in ("none", ""):
        return [StatsMeasurer(stats_fn, backend)]
    path = reference_path or station_reference(data_dir) or d["reference"]
    if not path or str(path).strip().lower() == "none":
        return [StatsMeasurer(stats_fn, backend)]
    if path == "builtin":
        import resources

        path = str(resources.path(BUILTIN_REFERENCE))
    ref = Reference.load(path)
    return [DriftMonitor(ref, d["relative_tolerance"], d["absolute_tolerance"], arl0_batches=d["arl0_batches"],
                         window=d["window_frames"], batch=d["batch_frames"], on_batch=on_batch, stats_fn=stats_fn,
                         backend=backend, warmup_batches=d.get("warmup_batches", 0))]
