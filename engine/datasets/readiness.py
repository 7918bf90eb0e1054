"""Data readiness: is the feedback the station has gathered fit to retrain the model on, and does the training
reference still stand for production?

A report compares a training reference (``engine.monitoring.reference``) with *production*, the frames stored in the data
directory (reviewed frames and the kept sample, each with its statistics, detections and, on the simulated line,
its ground truth), and with the operators' feedback on those frames:

- **every statistic**: the population stability index (PSI) of the production values against the reference's,
  on ten bins at the reference's deciles, none narrower than the statistic's drift tolerance (``[drift]``),
  with both histograms drawn;
- **classes**: the training class mix against the classes the operators labelled in production (confirmed,
  re-classed and missed defects). A reference stores no labels (and the built-in model card only the total of
  its training boxes); for a reference built on the simulated line the
  training mix is the simulator's truth of the reference's own frames, re-created from its source (a simulated
  frame is a pure function of seed, scenario, size and slot). Otherwise the training mix is not known and said so;
- **coverage**: labelled frames per class and per *condition*: brightness and focus bands against the
  reference's 1st-99th percentiles, the product (novelty above 1 against this reference's embedding, when the
  frames were measured against it) and, on the simulated line, the conditions in the ground truth (lens, lamp,
  whether the new variant was on the line);
- **annotator agreement**: ``engine.datasets.agreement.ratings.summary_from_store`` (Fleiss' kappa, else the mean
  pairwise Cohen's kappa);
- a **verdict**, ready or not ready, each reason one sentence; thresholds in ``[agreement] readiness_*``.

``since`` keeps the frames stamped from then on, on the source's clock (for ``sim://`` the simulated line's
own clock); the agreement figures count the decisions made since then (UTC). Only stored frames are compared,
never invented ones: a statistic with fewer than ``readiness_min_frames`` production values gets no PSI, and
novelty counts only frames that were measured against this very reference.

The report is one self-contained HTML file: plots are inline SVG, example frames base64 PNG.
"""

from __future__ import annotations

import base64
import calendar
import html
import json
import math
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from engine.monitoring.charts import psi
from engine.storage.db import DB_NAME, read
from engine.core.files import write_atomic
from engine.monitoring.reference import Reference, ReferenceError
from engine.monitoring.stats import SCALARS

PSI_BINS = 10
NOVELTY_LIMIT = 1.0  # novelty above this: unlike anything in the reference (its 99.9 % quantile)


class ReadinessError(RuntimeError):
    """The report cannot be made; one sentence."""


class ReadinessCancelled(ReadinessError):
    """The caller asked to stop."""


@dataclass(frozen=True)
class Thresholds:
    """The verdict's rules; documented in ``resources/default_config.toml`` under ``[agreement]``."""

    min_frames: int = 100  # production frames with statistics the comparison needs
    psi_max: float = 0.25  # a statistic beyond this: production differs from the training data
    psi_bin_tolerance: float = 1.0  # no PSI bin narrower than this share of the statistic's drift tolerance
    novel_share_max: float = 0.05  # share of production frames unlike the reference
    min_feedback_frames: int = 100  # frames with at least one operator decision
    min_examples_per_class: int = 50  # labelled defects of each class
    class_psi_max: float = 0.25  # class mix, production feedback against training
    min_frames_per_condition: int = 20  # labelled frames in each condition band that production visits
    condition_min_share: float = 0.05  # a band production spends less than this share in is not required
    min_kappa: float = 0.6  # annotator agreement (Cohen's / Fleiss' kappa)
    require_agreement: bool = True  # unmeasured agreement is itself a reason

    @classmethod
    def from_config(cls, config: dict[str, Any] | None) -> Thresholds:
        section = (config or {}).get("agreement", {})
        values = {}
        for name, f in cls.__dataclass_fields__.items():
            key = f"readiness_{name}"
            if key in section:
                values[name] = type(f.default)(section[key])
        return cls(**values)


@dataclass
class StatisticShift:
    name: str
    psi: float | None  # None: too few production frames
    reference_n: int
    production_n: int
    reference_mean: float
    production_mean: float | None
    plot_edges: list[float] = field(default_factory=list)  # shared linear bins, for the picture
    reference_share: list[float] = field(default_factory=list)
    production_share: list[float] = field(default_factory=list)


@dataclass
class Readiness:
    ready: bool
    reasons: list[str]
    notes: list[str]
    thresholds: Thresholds
    reference: dict[str, Any]
    production: dict[str, Any]
    statistics: list[StatisticShift]
    classes: dict[str, Any]
    coverage: list[dict[str, Any]]
    agreement: dict[str, Any] | None
    examples: list[dict[str, Any]] = field(default_factory=list)  # label, caption, png (bytes)
    created_utc: str = ""

    @property
    def verdict(self) -> str:
        return "ready" if self.ready else "not ready"

    def to_dict(self) -> dict[str, Any]:
        """The verdict and what it rests on, without the pictures (for ``--json``)."""
        return {"verdict": self.verdict, "ready": self.ready, "reasons": self.reasons, "notes": self.notes,
                "reference": self.reference, "production": self.production,
                "psi": {s.name: None if s.psi is None else round(s.psi, 4) for s in self.statistics},
                "classes": self.classes, "coverage": self.coverage, "agreement": self.agreement,
                "thresholds": asdict(self.thresholds), "created_utc": self.created_utc}


# ------------------------------------------------------------------------------ inputs


def load_reference(spec: str) -> Reference:
    """``builtin`` or the path of a reference ``.npz``."""
    if spec == "builtin":
        import resources
        from engine.monitoring.drift import BUILTIN_REFERENCE

        spec = str(resources.path(BUILTIN_REFERENCE))
    try:
        return Reference.load(Path(spec))
    except ReferenceError as e:
        raise ReadinessError(str(e)) from None


def parse_since(text: str) -> float:
    """Seconds since the epoch from ``2026-01-01``, ``2026-01-01T08:00[:00][Z]`` or a number of seconds."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    for fmt in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return float(calendar.timegm(time.strptime(text.rstrip("Z"), fmt)))
        except ValueError:
            continue
    raise ReadinessError(f"{text!r} is not a time: use 2026-01-31, 2026-01-31T08:00 (UTC) or seconds since 1970")


def _production_frames(data_dir: Path, since: float | None) -> list[dict[str, Any]]:
    if not (Path(data_dir) / DB_NAME).exists():
        raise ReadinessError(f"there is no station database in {data_dir}, so there is no production data to assess")
    try:
        rows = read(data_dir, "SELECT f.id, f.source, f.sequence, f.timestamp, f.image_sha256, f.detections, f.stats,"
                              " f.ground_truth, f.kept_as, f.reference_id, i.width, i.height FROM frames f"
                              " JOIN images i ON i.sha256 = f.image_sha256 WHERE f.timestamp >= ?"
                              " ORDER BY f.timestamp, f.id", [since if since is not None else -math.inf])
    except Exception as e:  # a damaged or foreign file
        raise ReadinessError(f"the station database in {data_dir} cannot be read: {e}") from None
    for r in rows:
        r["stats"] = json.loads(r["stats"] or "{}")
        r["ground_truth"] = json.loads(r["ground_truth"]) if r["ground_truth"] else None
        r["detections"] = json.loads(r["detections"] or "[]")
    return rows


def _labels(data_dir: Path, frame_ids: set[int]) -> dict[int, dict[str, Any]]:
    """Per frame: decided on at all, positive labels per class, model detections rejected; undone decisions left out."""
    rows = read(data_dir, "SELECT id, frame_id, verdict, old_class, new_class, undoes FROM decisions ORDER BY id")
    undone = {r["undoes"] for r in rows if r["verdict"] == "undo" and r["undoes"] is not None}
    out: dict[int, dict[str, Any]] = {}
    for r in rows:
        if r["frame_id"] not in frame_ids or r["id"] in undone or r["verdict"] == "undo":
            continue
        f = out.setdefault(r["frame_id"], {"decided": 0, "positive": {}, "corrected": {}, "rejected": {}})
        f["decided"] += 1
        if r["verdict"] in ("confirm", "reclass", "missed") and r["new_class"]:
            f["positive"][r["new_class"]] = f["positive"].get(r["new_class"], 0) + 1
            if r["verdict"] != "confirm":
                f["corrected"][r["new_class"]] = f["corrected"].get(r["new_class"], 0) + 1
        elif r["verdict"] == "reject" and r["old_class"]:
            f["rejected"][r["old_class"]] = f["rejected"].get(r["old_class"], 0) + 1
    return out


def _sim_reference_truth(ref: Reference, max_frames: int = 300, examples: int = 3
                         ) -> tuple[dict[str, int] | None, list[dict[str, Any]], str]:
    """Defect boxes per class in the reference's own frames, re-created from its simulated source, and a few of
    those frames; ``(None, [], why)`` when the reference was not built on the simulated line."""
    src = str(ref.meta.get("source") or "")
    if not src.startswith("sim://"):
        return None, [], (f"the reference was built from {src or 'an unnamed source'}, which keeps no labels, so "
                          "the training class mix is not known")
    from engine.sources import SourceError
    from engine.sources.sim import open_sim

    try:
        sim_src = open_sim(src)
    except (SourceError, ValueError) as e:
        return None, [], f"the reference's simulated source cannot be re-created ({e})"
    sim = sim_src.sim
    w, h = ref.meta.get("width"), ref.meta.get("height")
    if (w, h) != (sim.width, sim.height) and w and h:
        from engine.simulation.line import LineSimulator

        sim = LineSimulator(seed=sim.seed, scenario=sim.scenario.name, width=int(w), height=int(h), dt=sim.dt)
    start, n = sim_src.slot, ref.frames
    slots = np.unique(np.linspace(start, start + n - 1, min(n, max_frames)).round().astype(int))
    counts: dict[str, int] = {}
    shown: list[dict[str, Any]] = []
    pick = set(slots[np.linspace(0, len(slots) - 1, examples).round().astype(int)]) if examples else set()
    for slot in slots:
        image, truth = sim.render(int(slot))
        for d in truth.defects:
            counts[d.box.class_name] = counts.get(d.box.class_name, 0) + 1
        if slot in pick:
            boxes = [d.box.to_dict() for d in truth.defects]
            shown.append({"label": "training reference", "png": _thumbnail(image, boxes),
                          "caption": f"reference frame, slot {int(slot)}: {len(boxes)} true defect(s)"})
    return counts, shown, (f"training class mix: the simulator's truth for {len(slots)} of the reference's "
                           f"{n} frames, re-created from {src}")


# ------------------------------------------------------------------------------ the comparison


def _psi_bins(ref: np.ndarray, min_width: float = 0.0) -> np.ndarray:
    """Inner bin edges: the reference's deciles, but no bin narrower than ``min_width``.

    With ``min_width`` > 0 (the statistic's drift tolerance), the bin around the reference's median spans
    ``median +- min_width / 2`` and only the deciles at least ``min_width`` beyond the previous edge are kept:
    on a very stable statistic (a nominal line's colour temperature moves by a few kelvin against a tolerance
    of hundreds) plain deciles would count shifts far inside the tolerance as a changed distribution.
    """
    deciles = np.unique(np.quantile(ref, np.linspace(0, 1, PSI_BINS + 1)[1:-1]))
    if min_width > 0:
        c = float(np.median(ref))
        lo, hi = c - min_width / 2, c + min_width / 2
        up, down = [hi], [lo]
        for e in deciles:
            if e >= up[-1] + min_width:
                up.append(float(e))
        for e in deciles[::-1]:
            if e <= down[-1] - min_width:
                down.append(float(e))
        return np.array(down[::-1] + up)
    if len(deciles) <= 1:
        c = float(ref[0])
        eps = 1e-9 * max(1.0, abs(c))
        deciles = np.array([c - eps, c + eps])
    return deciles


def statistic_shift(name: str, ref: np.ndarray, prod: np.ndarray, min_frames: int, min_width: float = 0.0
                    ) -> StatisticShift:
    """PSI of one statistic's production values against the reference's, and both histograms for the picture."""
    ref = np.asarray(ref, np.float64)
    prod = np.asarray(prod, np.float64)
    prod = prod[np.isfinite(prod)]
    s = StatisticShift(name, None, len(ref), len(prod), float(ref.mean()),
                       float(prod.mean()) if len(prod) else None)
    if len(prod) >= min_frames:
        edges = _psi_bins(ref, min_width)
        nb = len(edges) + 1
        r = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=nb)
        p = np.bincount(np.searchsorted(edges, prod, side="right"), minlength=nb)
        s.psi = psi(r / r.sum(), p / p.sum())
    both = np.concatenate([ref, prod]) if len(prod) else ref
    lo, hi = np.quantile(both, [0.005, 0.995])
    if hi <= lo:
        lo, hi = float(both.min()) - 0.5, float(both.max()) + 0.5
        if hi <= lo:
            lo, hi = lo - 1, hi + 1
    plot = np.linspace(lo, hi, 31)
    s.plot_edges = [float(v) for v in plot]
    s.reference_share = _shares(ref, plot)
    s.production_share = _shares(prod, plot) if len(prod) else []
    return s


def _shares(x: np.ndarray, edges: np.ndarray) -> list[float]:
    c, _ = np.histogram(np.clip(x, edges[0], edges[-1]), edges)
    return [float(v) for v in c / max(1, c.sum())]


def _band(value: float | None, lo: float, hi: float, names: tuple[str, str, str]) -> str | None:
    if value is None or not math.isfinite(value):
        return None
    return names[0] if value < lo else names[2] if value > hi else names[1]


def _conditions(frame: dict[str, Any], bands: dict[str, tuple[float, float]], novelty_measured: bool
                ) -> list[tuple[str, str]]:
    """The condition bands one production frame falls in, as (dimension, band); ``bands`` holds the limits of
    the brightness and focus bands "within the reference"."""
    st = frame["stats"]
    out: list[tuple[str, str]] = []
    for dim, key, names in (("brightness", "mean_luma", ("darker than the reference", "within the reference",
                                                         "brighter than the reference")),
                            ("focus", "focus", ("softer than the reference", "within the reference",
                                                "sharper than the reference"))):
        lo, hi = bands[key]
        b = _band(st.get(key), lo, hi, names)
        if b:
            out.append((dim, b))
    if novelty_measured and isinstance(st.get("novelty"), (int, float)):
        out.append(("product", "novel (novelty above 1)" if st["novelty"] > NOVELTY_LIMIT
                    else "like the reference"))
    cond = (frame.get("ground_truth") or {}).get("conditions") or {}
    if cond:
        if "variant_share" in cond:
            out.append(("simulated product mix", "new variant on the line" if cond["variant_share"] > 0
                        else "steel plates only"))
        if "lens" in cond:
            out.append(("simulated lens", str(cond["lens"])))
        if "lamp_gain" in cond:
            out.append(("simulated lamp", "as new (95 % or more)" if cond["lamp_gain"] >= 0.95 else "aged (below 95 %)"))
    return out


def _agreement(data_dir: Path, since: float | None) -> dict[str, Any] | None:
    """Annotator agreement over the store's decisions (``engine.datasets.agreement.ratings.summary_from_store``:
    items, raters, alpha, mean pairwise Cohen's kappa, Fleiss' kappa, ...); ``None`` where that is not available."""
    try:
        from engine.datasets.agreement.ratings import summary_from_store
    except ImportError:
        return None
    return dict(summary_from_store(data_dir, since, None))


def _kappa(agreement: dict[str, Any]) -> float | None:
    """The kappa the verdict uses: Fleiss' (three or more raters per item), else the mean pairwise Cohen's."""
    for key in ("kappa", "fleiss", "mean_cohen"):
        v = agreement.get(key)
        if isinstance(v, (int, float)) and math.isfinite(v):
            return float(v)
    return None


def _tolerance(name: str, reference: Reference, config: dict[str, Any] | None) -> float:
    """Half-width of a statistic's drift tolerance band (``[drift]`` in the config), 0 where it has none."""
    from engine.core.config import default_config
    from engine.monitoring.drift import tolerance_band

    drift = (config or default_config())["drift"]
    lo, hi = tolerance_band(name, float(np.mean(reference.scalars[name])), drift["relative_tolerance"],
                            drift["absolute_tolerance"])
    return (hi - lo) / 2 if math.isfinite(hi - lo) else 0.0


def _check(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise ReadinessCancelled("the readiness report was cancelled")


def assess(reference: Reference, data_dir: Path, since: float | None = None, config: dict[str, Any] | None = None,
           progress: Callable[[float, str], None] | None = None, cancel: threading.Event | None = None,
           examples: int = 6) -> Readiness:
    """Compare production in ``data_dir`` (frames from ``since``, source clock) with ``reference``."""
    th = Thresholds.from_config(config)
    say = progress or (lambda f, m: None)
    data_dir = Path(data_dir)
    say(0.0, "reading production frames")
    frames = _production_frames(data_dir, since)
    if not frames:
        when = f" since {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(since))} UTC" if since is not None else ""
        raise ReadinessError(f"no production frames are stored in {data_dir}{when}; review some frames first")
    _check(cancel)
    labels = _labels(data_dir, {f["id"] for f in frames})
    reasons: list[str] = []
    notes: list[str] = []

    # --- the statistics
    say(0.15, "comparing statistics")
    ref_size = (ref_w, ref_h) = (reference.meta.get("width"), reference.meta.get("height"))
    sizes: dict[tuple[int, int], int] = {}
    for f in frames:
        sizes[(f["width"], f["height"])] = sizes.get((f["width"], f["height"]), 0) + 1
    main_size = max(sizes, key=sizes.get)
    shifts = [statistic_shift(k, reference.scalars[k],
                              np.array([f["stats"][k] for f in frames if isinstance(f["stats"].get(k), (int, float))]),
                              th.min_frames, th.psi_bin_tolerance * _tolerance(k, reference, config))
              for k in SCALARS]
    measured = [s for s in shifts if s.psi is not None]
    if not measured:
        n = max(s.production_n for s in shifts)
        reasons.append(f"Only {n} production frames carry statistics; comparing them with the training data needs "
                       f"at least {th.min_frames}.")
    else:
        worst = sorted((s for s in measured if s.psi > th.psi_max), key=lambda s: -s.psi)
        if worst:
            listed = ", ".join(f"{s.name} {s.psi:.2f}" for s in worst[:4])
            more = f" and {len(worst) - 4} more" if len(worst) > 4 else ""
            reasons.append(f"Production differs from the training data: the PSI of {len(worst)} of {len(measured)} "
                           f"statistics is above {th.psi_max:g} ({listed}{more}).")
    if ref_w and ref_h and main_size != ref_size:
        reasons.append(f"The reference was built on {ref_w}x{ref_h} frames but production frames are "
                       f"{main_size[0]}x{main_size[1]}, so their statistics are not comparable.")

    # --- novelty against this reference's embedding
    novelty_measured = False
    nov = [f["stats"]["novelty"] for f in frames
           if f.get("reference_id") == reference.id and isinstance(f["stats"].get("novelty"), (int, float))]
    novelty: dict[str, Any] = {"measured": False}
    if reference.embedding is None:
        notes.append("The reference holds no embeddings, so novelty (a new product) is not assessed.")
    elif len(nov) < th.min_frames:
        notes.append(f"{len(nov)} stored frames were measured against this reference's embedding (at least "
                     f"{th.min_frames} are needed), so novelty is not assessed; run the station with this "
                     f"reference active to measure it.")
    else:
        novelty_measured = True
        share = float(np.mean(np.asarray(nov) > NOVELTY_LIMIT))
        novelty = {"measured": True, "frames": len(nov), "novel_share": round(share, 4),
                   "values": [float(v) for v in nov]}
        if share > th.novel_share_max:
            reasons.append(f"Production differs from the training data: {share:.0%} of production frames are unlike "
                           f"any reference frame (novelty above 1; at most {th.novel_share_max:.0%} allowed).")
    _check(cancel)

    # --- classes
    say(0.3, "training class mix")
    train_counts, ref_examples, how = _sim_reference_truth(reference)
    notes.append(how[0].upper() + how[1:] + ".")
    _check(cancel)
    prod_counts: dict[str, int] = {}
    corrected: dict[str, int] = {}
    rejected: dict[str, int] = {}
    for lab in labels.values():
        for target, src in ((prod_counts, lab["positive"]), (corrected, lab["corrected"]),
                            (rejected, lab["rejected"])):
            for c, n in src.items():
                target[c] = target.get(c, 0) + n
    from engine.simulation.defects import DEFECT_CLASSES

    names = list(DEFECT_CLASSES) + sorted((set(prod_counts) | set(train_counts or {})) - set(DEFECT_CLASSES))
    classes: dict[str, Any] = {"names": names, "training": train_counts, "production": prod_counts,
                               "corrected": corrected, "rejected": rejected, "training_source": how}
    for c in names:
        if prod_counts.get(c, 0) < th.min_examples_per_class:
            reasons.append(f"The class {c} has {prod_counts.get(c, 0)} labelled examples in production feedback; "
                           f"at least {th.min_examples_per_class} are needed.")
    if train_counts and sum(prod_counts.values()) >= th.min_examples_per_class:
        t = np.array([train_counts.get(c, 0) for c in names], float)
        p = np.array([prod_counts.get(c, 0) for c in names], float)
        class_psi = psi(t / t.sum(), p / p.sum())
        classes["psi"] = round(class_psi, 4)
        if class_psi > th.class_psi_max:
            reasons.append(f"The class mix of production feedback differs from training (PSI {class_psi:.2f}, above "
                           f"{th.class_psi_max:g}).")

    # --- coverage by condition
    say(0.45, "feedback coverage")
    feedback_frames = sum(1 for f in frames if f["id"] in labels)
    if feedback_frames < th.min_feedback_frames:
        reasons.append(f"Only {feedback_frames} production frames carry operator feedback; at least "
                       f"{th.min_feedback_frames} are needed.")
    bands = {}
    for key in ("mean_luma", "focus"):  # the reference's 1st-99th percentiles, at least its tolerance wide
        x = reference.scalars[key]
        lo, hi = (float(v) for v in np.quantile(x, [0.01, 0.99]))
        half = th.psi_bin_tolerance * _tolerance(key, reference, config) / 2
        bands[key] = (min(lo, float(np.median(x)) - half), max(hi, float(np.median(x)) + half))
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for f in frames:
        lab = labels.get(f["id"])
        for key in _conditions(f, bands, novelty_measured):
            c = cells.setdefault(key, {"dimension": key[0], "band": key[1], "frames": 0, "feedback_frames": 0,
                                       "classes": {n: 0 for n in names}})
            c["frames"] += 1
            if lab:
                c["feedback_frames"] += 1
                for cls, n in lab["positive"].items():
                    c["classes"][cls] = c["classes"].get(cls, 0) + n
    coverage = sorted(cells.values(), key=lambda c: (c["dimension"], -c["frames"]))
    for c in coverage:
        c["share"] = round(c["frames"] / len(frames), 4)
        if c["share"] >= th.condition_min_share and c["feedback_frames"] < th.min_frames_per_condition:
            reasons.append(f"Only {c['feedback_frames']} labelled frames cover {c['dimension']} '{c['band']}', "
                           f"{c['share']:.0%} of production; at least {th.min_frames_per_condition} are needed.")
    _check(cancel)

    # --- agreement
    say(0.55, "annotator agreement")
    agreement = _agreement(data_dir, since)
    if agreement is None:
        if th.require_agreement:
            reasons.append("Annotator agreement has not been measured, so the labels' reliability is unknown.")
    else:
        k = _kappa(agreement)
        raters = agreement.get("raters") or []
        if k is None:
            if th.require_agreement:
                who = ("no operator has confirmed or rejected a detection in these frames" if not raters
                       else f"only one operator ({raters[0]}) has reviewed these frames" if len(raters) == 1
                       else "no detection has been reviewed by two operators")
                reasons.append(f"Annotator agreement cannot be measured: {who}, so the labels' reliability is "
                               "unknown.")
        elif k < th.min_kappa:
            reasons.append(f"Annotator agreement is kappa {k:.2f}, below {th.min_kappa:g}: the labels are not "
                           "reliable enough to train on.")

    # --- pictures of production
    say(0.65, "example frames")
    shown = list(ref_examples)
    shown += _production_examples(data_dir, frames, novelty_measured, examples)
    say(1.0, "done")
    ts = [f["timestamp"] for f in frames]
    production = {"data_dir": str(data_dir), "frames": len(frames), "feedback_frames": feedback_frames,
                  "decisions": sum(lab["decided"] for lab in labels.values()),
                  "sources": sorted({f["source"] for f in frames}), "first": min(ts), "last": max(ts),
                  "since": since, "frame_sizes": {f"{w}x{h}": n for (w, h), n in sorted(sizes.items())},
                  "novelty": novelty, "trend_minutes": _trend_minutes(data_dir, since)}
    ref_info = {"id": reference.id, "frames": reference.frames, "source": reference.meta.get("source"),
                "size": f"{ref_w}x{ref_h}" if ref_w else None, "detector": reference.meta.get("detector"),
                "created_utc": reference.meta.get("created_utc")}
    return Readiness(not reasons, reasons, notes, th, ref_info, production, shifts, classes, coverage, agreement,
                     shown, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


def _trend_minutes(data_dir: Path, since: float | None) -> int:
    rows = read(data_dir, "SELECT count(DISTINCT minute) AS n FROM trend_minutes WHERE minute >= ?",
                [since if since is not None else -math.inf])
    return int(rows[0]["n"]) if rows else 0


def _thumbnail(image: np.ndarray, boxes: list[dict[str, Any]], width: int = 320) -> bytes:
    """A PNG of the frame, ``width`` pixels wide, with its boxes drawn a little outside them in the class colour."""
    from engine.simulation.defects import DEFECT_CLASSES

    colours = [(40, 40, 230), (30, 160, 250), (200, 80, 40)]
    scale = width / image.shape[1]
    small = cv2.resize(image, (width, max(1, round(image.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    for b in boxes:
        x0, y0, x1, y1 = (int(round(v * scale)) for v in b["box"])
        cls = b.get("class_name")
        col = colours[DEFECT_CLASSES.index(cls) % 3] if cls in DEFECT_CLASSES else (0, 200, 0)
        cv2.rectangle(small, (x0 - 2, y0 - 2), (x1 + 2, y1 + 2), col, 1, cv2.LINE_AA)
    ok, buf = cv2.imencode(".png", small)
    return buf.tobytes() if ok else b""


def _production_examples(data_dir: Path, frames: list[dict[str, Any]], novelty_measured: bool,
                         count: int) -> list[dict[str, Any]]:
    """The frames least like the reference (by novelty, when measured) and frames spread over the period."""
    if count <= 0:
        return []
    picked: list[tuple[str, dict[str, Any]]] = []
    if novelty_measured:
        by_nov = sorted((f for f in frames if isinstance(f["stats"].get("novelty"), (int, float))),
                        key=lambda f: -f["stats"]["novelty"])
        picked += [("least like the reference", f) for f in by_nov[: count // 2]]
    ids = {f["id"] for _, f in picked}
    rest = [f for f in frames if f["id"] not in ids]
    n = count - len(picked)
    if rest and n > 0:
        idx = np.unique(np.linspace(0, len(rest) - 1, n).round().astype(int))
        picked += [("spread over the period", rest[i]) for i in idx]
    out = []
    for label, f in picked:
        path = Path(data_dir) / "images" / f["image_sha256"][:2] / f"{f['image_sha256']}.png"
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            continue
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(f["timestamp"]))
        bits = [f"frame {f['sequence']}, {when} UTC", f"{len(f['detections'])} detection(s)"]
        if isinstance(f["stats"].get("novelty"), (int, float)):
            bits.append(f"novelty {f['stats']['novelty']:.2f}")
        if isinstance(f["stats"].get("mean_luma"), (int, float)):
            bits.append(f"brightness {f['stats']['mean_luma']:.0f}")
        out.append({"label": f"production: {label}", "png": _thumbnail(image, f["detections"]),
                    "caption": "; ".join(bits)})
    return out


# ------------------------------------------------------------------------------ the HTML report

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#1d1d1f;margin:24px auto;max-width:1100px;padding:0 16px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ccc;padding-bottom:3px}
.verdict{padding:14px 18px;border-radius:6px;margin:14px 0;border:2px solid}
.ready{background:#e8f6ec;border-color:#2e7d32}.notready{background:#fdecea;border-color:#c62828}
.verdict b{font-size:20px}.verdict ul{margin:6px 0 0 0}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}
th{background:#f0f0f0}td.l,th.l{text-align:left}.bad{background:#f9d6d2}.ok{background:#dcefdc}
.grid{display:flex;flex-wrap:wrap;gap:10px}.fig{border:1px solid #ddd;padding:4px;break-inside:avoid;page-break-inside:avoid}
.fig img{display:block;width:320px;height:auto}.cap{font-size:12px;color:#444;max-width:320px}
.muted{color:#666}
@media print{body{margin:0;max-width:none}h2{break-after:avoid}.verdict{break-inside:avoid}}
"""
_REF_COLOUR = "#9e9e9e"
_PROD_COLOUR = "#1565c0"


def _fmt(v: float) -> str:
    a = abs(v)
    if a == 0:
        return "0"
    if a >= 1000:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 0.01:
        return f"{v:.3f}"
    return f"{v:.1e}"


def svg_histogram(s: StatisticShift, psi_max: float, width: int = 250, height: int = 120) -> str:
    """Reference (grey bars) and production (blue outline) shares of one statistic on shared bins."""
    e = html.escape
    top, bottom, left, right = 18, 18, 4, 4
    pw, ph = width - left - right, height - top - bottom
    m = max(s.reference_share + s.production_share + [1e-9])
    nb = len(s.reference_share)
    bw = pw / max(1, nb)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{e(s.name)} histogram">',
             f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>']
    for i, v in enumerate(s.reference_share):
        hgt = ph * v / m
        parts.append(f'<rect x="{left + i * bw:.1f}" y="{top + ph - hgt:.1f}" width="{max(0.5, bw - 0.6):.1f}" '
                     f'height="{hgt:.1f}" fill="{_REF_COLOUR}" fill-opacity="0.55"/>')
    if s.production_share:
        pts = []
        for i, v in enumerate(s.production_share):
            y = top + ph - ph * v / m
            pts += [f"{left + i * bw:.1f},{y:.1f}", f"{left + (i + 1) * bw:.1f},{y:.1f}"]
        parts.append(f'<polyline points="{left:.1f},{top + ph:.1f} {" ".join(pts)} {left + pw:.1f},{top + ph:.1f}" '
                     f'fill="none" stroke="{_PROD_COLOUR}" stroke-width="1.6"/>')
    parts.append(f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="#333" stroke-width="0.8"/>')
    if s.psi is None:
        label, colour = "PSI: too few frames", "#666"
    else:
        label, colour = f"PSI {s.psi:.3f}", "#c62828" if s.psi > psi_max else "#2e7d32"
    parts.append(f'<text x="{left}" y="12" font-size="12" font-family="sans-serif" font-weight="bold">{e(s.name)}</text>')
    parts.append(f'<text x="{width - right}" y="12" font-size="11" font-family="sans-serif" text-anchor="end" '
                 f'fill="{colour}">{e(label)}</text>')
    if s.plot_edges:
        parts.append(f'<text x="{left}" y="{height - 4}" font-size="10" font-family="sans-serif" fill="#444">'
                     f'{e(_fmt(s.plot_edges[0]))}</text>')
        parts.append(f'<text x="{width - right}" y="{height - 4}" font-size="10" font-family="sans-serif" '
                     f'text-anchor="end" fill="#444">{e(_fmt(s.plot_edges[-1]))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def svg_classes(names: list[str], training: dict[str, int] | None, production: dict[str, int],
                width: int = 520, height: int = 200) -> str:
    """Class shares side by side: training (grey) and production feedback (blue)."""
    e = html.escape
    top, bottom, left = 16, 34, 40
    pw, ph = width - left - 10, height - top - bottom
    tt = sum((training or {}).values()) or 0
    pt = sum(production.values()) or 0
    group = pw / max(1, len(names))
    bw = group * 0.32
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
             f' role="img" aria-label="class mix"><rect width="{width}" height="{height}" fill="#fff"/>']
    for frac in (0, 0.25, 0.5, 0.75, 1.0):
        y = top + ph - ph * frac
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#ddd"/>'
                     f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end" '
                     f'font-family="sans-serif">{frac:.0%}</text>')
    for i, c in enumerate(names):
        x = left + i * group + group * 0.15
        for j, (counts, total, colour) in enumerate(((training or {}, tt, _REF_COLOUR), (production, pt, _PROD_COLOUR))):
            if not total:
                continue
            share = counts.get(c, 0) / total
            hgt = ph * share
            bx = x + j * (bw + 4)
            parts.append(f'<rect x="{bx:.1f}" y="{top + ph - hgt:.1f}" width="{bw:.1f}" height="{hgt:.1f}" '
                         f'fill="{colour}"/><text x="{bx + bw / 2:.1f}" y="{top + ph - hgt - 3:.1f}" font-size="10"'
                         f' text-anchor="middle" font-family="sans-serif">{share:.0%}</text>')
        parts.append(f'<text x="{x + bw + 2:.1f}" y="{top + ph + 14}" font-size="12" text-anchor="middle" '
                     f'font-family="sans-serif">{e(c)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def svg_novelty(values: list[float], width: int = 520, height: int = 140) -> str:
    """Novelty of production frames against the reference, with the limit of 1 marked."""
    v = np.log10(np.clip(np.asarray(values, float), 1e-3, 1e4))
    edges = np.linspace(-2, max(1.0, float(v.max()) + 0.1), 41)
    c, _ = np.histogram(np.clip(v, edges[0], edges[-1]), edges)
    top, bottom, left = 10, 30, 10
    pw, ph = width - 2 * left, height - top - bottom
    m = max(1, c.max())
    bw = pw / len(c)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
             f' role="img" aria-label="novelty"><rect width="{width}" height="{height}" fill="#fff"/>']
    for i, n in enumerate(c):
        hgt = ph * n / m
        novel = edges[i] >= 0
        parts.append(f'<rect x="{left + i * bw:.1f}" y="{top + ph - hgt:.1f}" width="{bw - 0.8:.1f}" height="{hgt:.1f}"'
                     f' fill="{"#c62828" if novel else _PROD_COLOUR}"/>')
    x1 = left + pw * (0 - edges[0]) / (edges[-1] - edges[0])
    parts.append(f'<line x1="{x1:.1f}" y1="{top}" x2="{x1:.1f}" y2="{top + ph}" stroke="#000" stroke-dasharray="4 3"/>')
    for val in (0.01, 0.1, 1, 10, 100, 1000):
        lv = math.log10(val)
        if edges[0] <= lv <= edges[-1]:
            x = left + pw * (lv - edges[0]) / (edges[-1] - edges[0])
            parts.append(f'<text x="{x:.1f}" y="{top + ph + 14}" font-size="10" text-anchor="middle" '
                         f'font-family="sans-serif">{val:g}</text>')
    parts.append(f'<text x="{left + pw / 2:.1f}" y="{height - 3}" font-size="11" text-anchor="middle" '
                 f'font-family="sans-serif">novelty (log scale; above 1 = unlike any reference frame)</text></svg>')
    return "".join(parts)


def render_html(r: Readiness) -> str:
    e = html.escape
    th = r.thresholds
    out = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
           "<title>Data readiness report</title>", f"<style>{_CSS}</style></head><body>",
           "<h1>Data readiness report</h1>",
           f"<div class='muted'>made {e(r.created_utc)}; reference <code>{e(r.reference['id'][:16])}</code>; "
           f"production in <code>{e(r.production['data_dir'])}</code></div>"]
    cls = "ready" if r.ready else "notready"
    out.append(f"<div class='verdict {cls}'><b>Verdict: {e(r.verdict.upper())}</b>")
    if r.reasons:
        out.append("<ul>" + "".join(f"<li>{e(x)}</li>" for x in r.reasons) + "</ul>")
    else:
        out.append("<div>Every rule below is met.</div>")
    out.append("</div>")
    if r.notes:
        out.append("<ul class='muted'>" + "".join(f"<li>{e(x)}</li>" for x in r.notes) + "</ul>")

    # what was compared
    p, ref = r.production, r.reference
    span = (f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(p['first']))} to "
            f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(p['last']))} UTC (source clock)")
    out.append("<h2>What is compared</h2><table>")
    rows = [("Training reference", f"{ref['id']}"), ("built from", f"{ref['source']} ({ref['frames']} frames, "
                                                                    f"{ref['size']}, {ref['detector'] or 'no detector'})"),
            ("Production", f"{p['frames']} stored frames, {p['feedback_frames']} with operator feedback "
                           f"({p['decisions']} decisions)"),
            ("period", span), ("sources", ", ".join(p["sources"])),
            ("frame sizes", ", ".join(f"{k}: {v}" for k, v in p["frame_sizes"].items())),
            ("trend minutes recorded", str(p["trend_minutes"]))]
    out += [f"<tr><th class='l'>{e(a)}</th><td class='l'>{e(b)}</td></tr>" for a, b in rows]
    out.append("</table>")

    # statistics
    out.append("<h2>Every statistic: training reference against production</h2>")
    out.append(f"<p>Population stability index on ten bins at the reference's deciles, none narrower than "
               f"{th.psi_bin_tolerance:g} x the statistic's drift tolerance; above {th.psi_max:g} the "
               f"production data differs from the training data. <span style='color:"
               f"{_REF_COLOUR}'>&#9632;</span> reference (bars), <span style='color:{_PROD_COLOUR}'>&#9632;</span> "
               "production (outline).</p>")
    out.append("<div class='grid'>" + "".join(f"<div class='fig'>{svg_histogram(s, th.psi_max)}</div>"
                                              for s in r.statistics) + "</div>")
    out.append("<table><tr><th class='l'>statistic</th><th>reference mean</th><th>production mean</th>"
               "<th>frames (ref / prod)</th><th>PSI</th></tr>")
    for s in r.statistics:
        bad = s.psi is not None and s.psi > th.psi_max
        psi_txt = "too few frames" if s.psi is None else f"{s.psi:.3f}"
        pm = "-" if s.production_mean is None else _fmt(s.production_mean)
        out.append(f"<tr><td class='l'>{e(s.name)}</td><td>{_fmt(s.reference_mean)}</td><td>{pm}</td>"
                   f"<td>{s.reference_n} / {s.production_n}</td><td class='{'bad' if bad else 'ok'}'>{psi_txt}</td></tr>")
    out.append("</table>")
    nov = p.get("novelty") or {}
    if nov.get("measured"):
        out.append(f"<h3>Novelty</h3><p>{nov['novel_share']:.1%} of {nov['frames']} production frames lie beyond the "
                   f"reference's 99.9 % quantile (at most {th.novel_share_max:.0%} allowed).</p>"
                   f"<div class='fig'>{svg_novelty(nov['values'])}</div>")

    # classes
    c = r.classes
    out.append("<h2>Class distribution: training against production feedback</h2>")
    src = c["training_source"]
    out.append(f"<p class='muted'>{e(src[:1].upper() + src[1:])}. Production: defects the operators confirmed, re-classed "
               "or drew (missed by the model).</p>")
    out.append(f"<p><span style='color:{_REF_COLOUR}'>&#9632;</span> training, <span style='color:{_PROD_COLOUR}'>"
               "&#9632;</span> production feedback: each class's share.</p>")
    out.append(f"<div class='fig'>{svg_classes(c['names'], c['training'], c['production'])}</div>")
    out.append("<table><tr><th class='l'>class</th><th>training boxes</th><th>labelled in production</th>"
               "<th>of which corrected</th><th>model detections rejected</th></tr>")
    for n in c["names"]:
        few = c["production"].get(n, 0) < th.min_examples_per_class
        tr = "-" if c["training"] is None else str(c["training"].get(n, 0))
        out.append(f"<tr><td class='l'>{e(n)}</td><td>{tr}</td><td class='{'bad' if few else 'ok'}'>"
                   f"{c['production'].get(n, 0)}</td><td>{c['corrected'].get(n, 0)}</td>"
                   f"<td>{c['rejected'].get(n, 0)}</td></tr>")
    out.append("</table>")
    if "psi" in c:
        out.append(f"<p>Class mix PSI: {c['psi']:.3f} (at most {th.class_psi_max:g}).</p>")

    # coverage
    out.append("<h2>Feedback coverage by class and condition</h2>")
    out.append("<p class='muted'>Brightness and focus bands: below, within or above the reference's 1st-99th "
               "percentiles (at least the drift tolerance wide). Product: novelty against this reference. Simulated conditions come from the "
               "simulator's ground truth of each frame.</p>")
    out.append("<table><tr><th class='l'>condition</th><th class='l'>band</th><th>share of production</th>"
               "<th>labelled frames</th>" + "".join(f"<th>{e(n)}</th>" for n in c["names"]) + "</tr>")
    for row in r.coverage:
        need = row["share"] >= th.condition_min_share
        bad = need and row["feedback_frames"] < th.min_frames_per_condition
        cells = "".join(f"<td class='{'bad' if need and row['classes'].get(n, 0) == 0 else ''}'>"
                        f"{row['classes'].get(n, 0)}</td>" for n in c["names"])
        out.append(f"<tr><td class='l'>{e(row['dimension'])}</td><td class='l'>{e(row['band'])}</td>"
                   f"<td>{row['share']:.1%}</td><td class='{'bad' if bad else ''}'>{row['feedback_frames']}</td>"
                   f"{cells}</tr>")
    out.append("</table>")

    # agreement
    out.append("<h2>Annotator agreement</h2>")
    if r.agreement is None:
        out.append("<p><b>agreement: not measured</b></p>")
    else:
        k = _kappa(r.agreement)
        out.append(f"<p>kappa: <b>{'not measured' if k is None else f'{k:.3f}'}</b> (at least {th.min_kappa:g}; "
                   "Fleiss' kappa where three or more operators rated a detection, else the mean pairwise Cohen's)"
                   "</p>")
        out.append("<table>" + "".join(f"<tr><th class='l'>{e(str(a))}</th><td class='l'>{e(_short(b))}</td></tr>"
                                       for a, b in r.agreement.items()) + "</table>")

    # examples
    if r.examples:
        out.append("<h2>Example frames</h2><p class='muted'>Reference frames show the simulator's true defects; "
                   "production frames show the model's detections as the operators saw them.</p><div class='grid'>")
        for x in r.examples:
            b64 = base64.b64encode(x["png"]).decode()
            out.append(f"<div class='fig'><img alt='{e(x['label'])}' src='data:image/png;base64,{b64}'>"
                       f"<div class='cap'><b>{e(x['label'])}</b><br>{e(x['caption'])}</div></div>")
        out.append("</div>")

    # rules
    out.append("<h2>The rules</h2><table>")
    rules = [("statistics", f"each statistic's PSI at most {th.psi_max:g}, on at least {th.min_frames} production frames"),
             ("novelty", f"at most {th.novel_share_max:.0%} of production frames with novelty above 1"),
             ("feedback", f"at least {th.min_feedback_frames} production frames with operator feedback"),
             ("classes", f"at least {th.min_examples_per_class} labelled examples of each class; class mix PSI at most "
                         f"{th.class_psi_max:g}"),
             ("conditions", f"at least {th.min_frames_per_condition} labelled frames in every condition band holding "
                            f"{th.condition_min_share:.0%} or more of production"),
             ("agreement", f"kappa at least {th.min_kappa:g}" + (" and measured" if th.require_agreement else "")),
             ("frame size", "production frames the size of the reference's")]
    out += [f"<tr><th class='l'>{e(a)}</th><td class='l'>{e(b)}</td></tr>" for a, b in rules]
    out.append("</table><p class='muted'>Thresholds: <code>[agreement] readiness_*</code> in the configuration.</p>")
    out.append("</body></html>")
    return "\n".join(out)


def _short(v: Any) -> str:
    if v is None:
        return "not measured"
    if isinstance(v, float):
        return f"{v:.3f}"
    text = ", ".join(map(str, v)) if isinstance(v, list) else json.dumps(v) if not isinstance(v, str) else v
    return text if len(text) <= 200 else text[:197] + "..."


def write_report(path: Path, text: str) -> Path:
    """Write through a temporary file in the same folder, fsync, rename."""
    path = Path(path)
    if path.is_dir():
        raise ReadinessError(f"{path} is a folder; name the report file")
    try:
        write_atomic(path, text)
    except OSError as e:
        raise ReadinessError(f"the report cannot be written to {path}: {e.strerror or e}") from None
    return path


def build_report(reference: str, data_dir: Path, out: Path | None, since: float | None = None,
                 config: dict[str, Any] | None = None, progress: Callable[[float, str], None] | None = None,
                 cancel: threading.Event | None = None) -> Readiness:
    """Load the reference (``builtin`` or a path), assess production, and write the HTML report to ``out``."""
    if out is not None:
        parent = Path(out).resolve().parent
        if not parent.is_dir():
            raise ReadinessError(f"the folder {parent} for the report does not exist")
        if Path(out).is_dir():
            raise ReadinessError(f"{out} is a folder; name the report file")
        if not os.access(parent, os.W_OK):
            raise ReadinessError(f"the report cannot be written to {parent} (read-only or no permission)")
    ref = load_reference(reference)
    result = assess(ref, data_dir, since, config, progress, cancel)
    if out is not None:
        _check(cancel)
        write_report(Path(out), render_html(result))
    return result
