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

The report (:mod:`engine.datasets.readiness_report`) is one self-contained HTML file: plots are inline SVG,
example frames base64 PNG.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from engine.core.errors import StationError
from engine.monitoring.charts import psi
from engine.storage.db import DB_NAME, read
from engine.storage.images import ImageStore
from engine.storage import queries
from engine.monitoring.reference import Reference, ReferenceError
from engine.monitoring.stats import SCALARS

PSI_BINS = 10
NOVELTY_LIMIT = 1.0  # novelty above this: unlike anything in the reference (its 99.9 % quantile)


class ReadinessError(StationError):
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


def _production_frames(data_dir: Path, since: float | None) -> list[dict[str, Any]]:
    if not (Path(data_dir) / DB_NAME).exists():
        raise ReadinessError(f"there is no station database in {data_dir}, so there is no production data to assess")
    try:
        rows = queries.frames_in_period(data_dir, since)
    except sqlite3.Error as e:  # a database, but not the station's (a damaged file is a DatabaseError already)
        raise ReadinessError(f"the station database in {data_dir} cannot be read: {e}") from None
    for r in rows:
        r["stats"] = json.loads(r["stats"] or "{}")
        r["ground_truth"] = json.loads(r["ground_truth"]) if r["ground_truth"] else None
        r["detections"] = json.loads(r["detections"] or "[]")
    return rows


def _labels(data_dir: Path, frame_ids: set[int]) -> dict[int, dict[str, Any]]:
    """Per frame: decided on at all, positive labels per class, model detections rejected; undone decisions left out."""
    rows = queries.decisions(data_dir)
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


def agreement_kappa(agreement: dict[str, Any]) -> float | None:
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


def raise_if_cancelled(cancel: threading.Event | None) -> None:
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
    raise_if_cancelled(cancel)
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
    raise_if_cancelled(cancel)

    # --- classes
    say(0.3, "training class mix")
    train_counts, ref_examples, how = _sim_reference_truth(reference)
    notes.append(how[0].upper() + how[1:] + ".")
    raise_if_cancelled(cancel)
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
    raise_if_cancelled(cancel)

    # --- agreement
    say(0.55, "annotator agreement")
    agreement = _agreement(data_dir, since)
    if agreement is None:
        if th.require_agreement:
            reasons.append("Annotator agreement has not been measured, so the labels' reliability is unknown.")
    else:
        k = agreement_kappa(agreement)
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
    images = ImageStore(data_dir)
    for label, f in picked:
        image = images.load(f["image_sha256"])
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
