"""Annotator agreement: how far operators agree with each other, with themselves and with the gold set.

Label noise sets the ceiling of every model trained from the station's feedback, so the station
measures it continuously, from the decisions it stores.

**Items and labels.** An *item* is one detection on one stored frame (``f<frame id>/d<index>``).
An operator's label for it is what the detection really is: the class they confirmed or changed it
to (``scratch``, ``dent``, ``contamination``), or ``none`` when they rejected it. Undone decisions
and undos do not count. Each operator's own first look at an item is their *primary* rating (the
last one if they decided it more than once outside a re-review); a blind re-review by the same
operator (``queue_reason = 'recheck-intra'``) is kept apart and measures intra-rater consistency.
A detection's *confidence band* is ``boundary`` when its score lies in
``[boundary_low, boundary_high]`` (default 0.3-0.7), ``easy`` otherwise. Where the frame carries
the simulator's ground truth, the *gold* label of a detection is the class of the true defect it
overlaps with IoU >= 0.5, or ``none``.

**Statistics** (NumPy, nominal data), and their edge cases, chosen to match the reference packages:

- Cohen's kappa of two raters on the items both rated: ``(p_o - p_e) / (1 - p_e)``. When
  ``p_e = 1`` (both used one and the same label throughout) it is undefined: NaN, as scikit-learn's
  ``cohen_kappa_score`` returns. No common item: NaN.
- Fleiss' kappa on items that all have the same number ``n >= 2`` of ratings (the raters may differ
  from item to item). All ratings one label: ``p_e = 1``, NaN (statsmodels' ``fleiss_kappa`` returns
  NaN from its 0/0). In a report it is computed on the items with the most common number (>= 3) of
  ratings; with fewer than three raters per item it is not reported (``None``).
- Krippendorff's alpha (nominal) with missing ratings: units with fewer than two ratings are left
  out; ``alpha = 1 - (n - 1) * sum_{c != k} o_ck / sum_{c != k} n_c n_k`` on the coincidence matrix.
  When only one value occurs (no expected disagreement) it is NaN; the ``krippendorff`` package raises
  ``ValueError`` there unless given a ``value_domain`` of two or more values, and then returns NaN.
  No pairable unit: NaN (the package raises ``ValueError``).

**Consensus and drift.** An operator's label is compared with the label more than half of the *other*
raters gave the item (with one other rater, that rater's label; items with no such majority are left out
of this comparison), so one careless colleague does not drag everyone's figure down. Agreement over time is
that comparison in consecutive windows of ``trend_window`` items. A warning is raised when the latest
window's share is below the operator's first ``baseline_items`` by at least ``drift_drop`` and a one-sided
two-proportion z-test gives ``p < drift_p``. Where items have only two raters a fall shows for both; the
operator who drifted is the one whose fall shows against every partner.

Per class, agreement is alpha on the data recoded as "this class" against "anything else"; percent
agreement is Fleiss' mean share of agreeing rater pairs per item. In JSON, NaN is written as ``null``:
undefined, not zero.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from engine.core.files import write_atomic

NONE_LABEL = "none"  # a detection rejected as no defect
INTRA = "recheck-intra"
INTER = "recheck-inter"


# --------------------------------------------------------------------------- statistics


def _codes(*label_lists: Sequence[Any]) -> tuple[list[np.ndarray], list[Any]]:
    values = sorted({v for labels in label_lists for v in labels}, key=str)
    index = {v: i for i, v in enumerate(values)}
    return [np.array([index[v] for v in labels], dtype=np.int64) for labels in label_lists], values


def cohen_kappa(a: Sequence[Any], b: Sequence[Any]) -> float:
    """Cohen's kappa of two raters' labels for the same items, in order. NaN when undefined (see above)."""
    if len(a) != len(b):
        raise ValueError("both raters must label the same items")
    if len(a) == 0:
        return float("nan")
    (ca, cb), values = _codes(a, b)
    k = len(values)
    m = np.zeros((k, k))
    np.add.at(m, (ca, cb), 1.0)
    n = m.sum()
    po = np.trace(m) / n
    pe = float((m.sum(1) / n) @ (m.sum(0) / n))
    if math.isclose(pe, 1.0):
        return float("nan")
    return float((po - pe) / (1.0 - pe))


def fleiss_kappa(table: np.ndarray | Sequence[Sequence[float]]) -> float:
    """Fleiss' kappa of an items x categories table of counts; every item needs the same number of ratings."""
    t = np.asarray(table, dtype=np.float64)
    if t.ndim != 2 or t.shape[0] == 0:
        return float("nan")
    n = t.sum(1)
    if not np.all(n == n[0]):
        raise ValueError("Fleiss' kappa needs the same number of ratings for every item")
    n0 = n[0]
    if n0 < 2:
        return float("nan")
    p_item = ((t * t).sum(1) - n0) / (n0 * (n0 - 1.0))
    p_cat = t.sum(0) / t.sum()
    pe = float((p_cat * p_cat).sum())
    if math.isclose(pe, 1.0):
        return float("nan")
    return float((p_item.mean() - pe) / (1.0 - pe))


def count_table(units: Sequence[Sequence[Any]], values: Sequence[Any] | None = None) -> np.ndarray:
    """Items x categories counts from each item's list of labels (missing ratings simply absent)."""
    if values is None:
        values = sorted({v for u in units for v in u}, key=str)
    index = {v: i for i, v in enumerate(values)}
    t = np.zeros((len(units), max(1, len(values))))
    sizes = [len(u) for u in units]
    rows = np.repeat(np.arange(len(units)), sizes)
    cols = np.fromiter((index[v] for u in units for v in u), dtype=np.int64, count=int(sum(sizes)))
    np.add.at(t, (rows, cols), 1.0)
    return t


def krippendorff_alpha(units: Sequence[Sequence[Any]] | np.ndarray, counts: bool = False) -> float:
    """Krippendorff's alpha, nominal, from each unit's labels (any number, missing ones absent), or from an
    items x categories count table with ``counts=True``."""
    t = np.asarray(units, dtype=np.float64) if counts else count_table(units)
    if t.ndim != 2 or t.size == 0:
        return float("nan")
    m = t.sum(1)
    t = t[m >= 2]
    m = m[m >= 2]
    if t.shape[0] == 0:
        return float("nan")
    w = t / (m - 1.0)[:, None]
    o = w.T @ t - np.diag(w.sum(0))  # coincidences: ordered pairs of values within a unit, weighted 1/(m_u - 1)
    nc = o.sum(1)
    n = nc.sum()
    observed = o.sum() - np.trace(o)
    expected = nc.sum() ** 2 - (nc * nc).sum()
    if expected <= 0:
        return float("nan")
    return float(1.0 - (n - 1.0) * observed / expected)


def percent_agreement(a: Sequence[Any], b: Sequence[Any]) -> float:
    if not len(a):
        return float("nan")
    return float(np.mean([x == y for x, y in zip(a, b)]))


# --------------------------------------------------------------------------- ratings


@dataclass(frozen=True)
class Rating:
    """One rater's label for one item; ``intra`` marks a blind re-review by the same rater."""

    item: str
    rater: str
    label: str
    time: float | None = None
    score: float | None = None
    gold: str | None = None
    intra: bool = False
    info: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass
class AgreementSettings:
    boundary_low: float = 0.3
    boundary_high: float = 0.7
    trend_window: int = 50
    baseline_items: int = 100
    drift_drop: float = 0.15
    drift_p: float = 0.001
    disputed: int = 20

    @classmethod
    def from_config(cls, config: dict[str, Any] | None) -> AgreementSettings:
        a = (config or {}).get("agreement", {})
        keys = cls.__dataclass_fields__
        return cls(**{k: type(getattr(cls(), k))(v) for k, v in a.items() if k in keys})


def band(score: float | None, s: AgreementSettings) -> str | None:
    if score is None:
        return None
    return "boundary" if s.boundary_low <= score <= s.boundary_high else "easy"


def _clean(x: Any) -> Any:
    """NaN -> None throughout, so the report is valid JSON."""
    if isinstance(x, float):
        return None if math.isnan(x) else round(x, 6)
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, np.floating):
        return _clean(float(x))
    return x


def _majority(others: list[str]) -> str | None:
    """The label more than half of ``others`` gave (the one other rater's label when there is one), or None."""
    label, k = Counter(others).most_common(1)[0]
    return label if k * 2 > len(others) else None


def _trend_and_drift(series: list[tuple[float, float]], s: AgreementSettings) -> tuple[list[dict], dict]:
    """Windowed agreement over time and the drift test: the latest window against the rater's first items."""
    series = sorted(series)
    trend = []
    w = max(1, s.trend_window)
    for start in range(0, len(series) - w + 1, w):
        chunk = series[start:start + w]
        trend.append({"time": chunk[-1][0], "index": start + len(chunk), "agreement": float(np.mean([c for _, c in chunk])),
                      "n": len(chunk)})
    drift: dict[str, Any] = {"flagged": False, "baseline": None, "recent": None, "drop": None, "p": None,
                             "n": len(series)}
    if len(series) >= s.baseline_items + w:
        base = np.array([c for _, c in series[:s.baseline_items]])
        recent = np.array([c for _, c in series[-w:]])
        pb, pr = float(base.mean()), float(recent.mean())
        pooled = (base.sum() + recent.sum()) / (base.size + recent.size)
        se = math.sqrt(max(pooled * (1 - pooled), 1e-12) * (1 / base.size + 1 / recent.size))
        z = (pb - pr) / se
        p = 0.5 * math.erfc(z / math.sqrt(2))  # one-sided: has it fallen?
        drift.update(baseline=pb, recent=pr, drop=pb - pr, p=p,
                     flagged=bool(pb - pr >= s.drift_drop and p < s.drift_p))
    return trend, drift


def _block(units: dict[str, dict[str, str]]) -> dict[str, Any]:
    """Alpha, Fleiss (modal number >= 3 of ratings), mean share of agreeing pairs over a set of items."""
    t = count_table([list(r.values()) for r in units.values() if len(r) >= 2])
    m = t.sum(1)
    out: dict[str, Any] = {"items": int(t.shape[0]), "alpha": krippendorff_alpha(t, counts=True),
                           "fleiss": None, "fleiss_items": 0, "fleiss_raters": None}
    per_item = ((t * t).sum(1) - m) / np.maximum(m * (m - 1), 1.0)
    out["percent_agreement"] = float(per_item.mean()) if per_item.size else float("nan")  # Fleiss' P-bar
    sizes = Counter(int(n) for n in m if n >= 3)
    if sizes:
        k = max(sizes, key=lambda n: (sizes[n], n))
        rows = t[m == k]
        out.update(fleiss=fleiss_kappa(rows), fleiss_items=int(rows.shape[0]), fleiss_raters=k)
    return out


def report(ratings: Iterable[Rating], settings: AgreementSettings | None = None,
           calibrations: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Every agreement figure for a set of ratings, as a JSON-ready dict (NaN as None)."""
    s = settings or AgreementSettings()
    primary: dict[str, dict[str, Rating]] = defaultdict(dict)  # item -> rater -> rating
    intra: dict[tuple[str, str], Rating] = {}
    n_ratings = 0
    for r in ratings:
        n_ratings += 1
        if r.intra:
            intra.setdefault((r.item, r.rater), r)
        else:
            primary[r.item][r.rater] = r  # a later decision by the same rater replaces the earlier one
    raters = sorted({r for by in primary.values() for r in by} | {k[1] for k in intra})
    labels_seen = sorted({r.label for by in primary.values() for r in by.values()})
    units = {i: {k: r.label for k, r in by.items()} for i, by in primary.items()}
    out: dict[str, Any] = {"ratings": n_ratings, "raters": raters, "labels": labels_seen,
                           "overall": _block(units), "settings": vars(s).copy()}

    # Pairwise Cohen's kappa on each pair's common items.
    pairwise = []
    for i, a in enumerate(raters):
        for b in raters[i + 1:]:
            common = [(by[a].label, by[b].label) for by in primary.values() if a in by and b in by]
            if common:
                x, y = zip(*common)
                pairwise.append({"a": a, "b": b, "n": len(common), "kappa": cohen_kappa(x, y),
                                 "agreement": percent_agreement(x, y)})
    out["pairwise"] = pairwise
    kappas = [p["kappa"] for p in pairwise if not math.isnan(p["kappa"])]
    out["overall"]["mean_cohen"] = float(np.mean(kappas)) if kappas else float("nan")

    # Per class (that class against all others, alpha) and per confidence band.
    per_class = {}
    for c in labels_seen:
        binary = {i: {k: str(v == c) for k, v in u.items()} for i, u in units.items()}
        blk = _block(binary)
        per_class[c] = {"alpha": blk["alpha"], "items": sum(1 for u in units.values() if len(u) >= 2
                                                             and c in u.values())}
    out["per_class"] = per_class
    bands: dict[str, dict[str, dict[str, str]]] = defaultdict(dict)
    for i, by in primary.items():
        score = next((r.score for r in by.values() if r.score is not None), None)
        b = band(score, s)
        if b is not None:
            bands[b][i] = units[i]
    out["per_band"] = {b: _block(bands.get(b, {})) for b in ("boundary", "easy")}

    # Each operator: against the majority of the others, against gold, with themselves, over time.
    operators: dict[str, Any] = {}
    warnings: list[str] = []
    for rater in raters:
        series, pairs_cons, pairs_gold = [], [], []
        n_items = 0
        for item, by in primary.items():
            if rater not in by:
                continue
            n_items += 1
            mine = by[rater]
            if mine.gold is not None:
                pairs_gold.append((mine.label, mine.gold))
            others = [r.label for k, r in by.items() if k != rater]
            if not others:
                continue
            consensus = _majority(others)
            if consensus is not None:
                series.append((mine.time if mine.time is not None else float(len(series)),
                               float(mine.label == consensus)))
                pairs_cons.append((mine.label, consensus))
        op: dict[str, Any] = {"items": n_items}
        for name, pairs in (("vs_consensus", pairs_cons), ("vs_gold", pairs_gold)):
            x, y = zip(*pairs) if pairs else ((), ())
            op[name] = {"n": len(pairs), "agreement": percent_agreement(x, y), "kappa": cohen_kappa(x, y)}
        own = [(primary[i][rt].label, r.label) for (i, rt), r in intra.items() if rt == rater and rt in primary[i]]
        x, y = zip(*own) if own else ((), ())
        op["intra"] = {"n": len(own), "agreement": percent_agreement(x, y), "kappa": cohen_kappa(x, y)}
        op["trend"], op["drift"] = _trend_and_drift(series, s)
        if calibrations and rater in calibrations:
            op["calibration"] = calibrations[rater]
        if op["drift"]["flagged"]:
            d = op["drift"]
            warnings.append(f"{rater}'s agreement with the other operators fell from {d['baseline']:.0%} to "
                            f"{d['recent']:.0%} over the last {s.trend_window} items")
        operators[rater] = op
    out["operators"] = operators
    all_intra = [(primary[i][rt].label, r.label) for (i, rt), r in intra.items() if rt in primary[i]]
    x, y = zip(*all_intra) if all_intra else ((), ())
    out["intra"] = {"n": len(all_intra), "agreement": percent_agreement(x, y), "kappa": cohen_kappa(x, y)}

    # The most disputed items: the largest share of disagreeing rater pairs, boundary cases first on ties.
    disputed = []
    for item, by in primary.items():
        if len(by) < 2:
            continue
        ls = [r.label for r in by.values()]
        k = len(ls)
        agree = sum(v * (v - 1) for v in Counter(ls).values()) / (k * (k - 1))
        if agree >= 1.0:
            continue
        first = next(iter(by.values()))
        score = next((r.score for r in by.values() if r.score is not None), None)
        disputed.append({"item": item, "disagreement": 1.0 - agree, "raters": k,
                         "labels": {rt: r.label for rt, r in sorted(by.items())},
                         "gold": next((r.gold for r in by.values() if r.gold is not None), None),
                         "score": score, "band": band(score, s), **first.info})
    disputed.sort(key=lambda d: (-d["disagreement"], -d["raters"], d["band"] != "boundary", d.get("frame_id", 0),
                                 d.get("detection", 0), d["item"]))
    out["disputed"] = disputed[:s.disputed]
    out["disputed_total"] = len(disputed)
    out["warnings"] = warnings
    return _clean(out)


def summary(rep: dict[str, Any]) -> dict[str, Any]:
    """The few figures other reports quote: items, raters, overall kappa (Fleiss' where items have three or
    more ratings, else the mean of the pairwise Cohen's kappas; ``kappa_kind`` says which) and alpha,
    intra-rater agreement, drift warnings."""
    o = rep["overall"]
    kind = "fleiss" if o["fleiss"] is not None else "mean_cohen"
    return {"items": o["items"], "ratings": rep["ratings"], "raters": rep["raters"], "kappa": o[kind],
            "kappa_kind": kind, "alpha": o["alpha"],
            "mean_cohen": o["mean_cohen"], "fleiss": o["fleiss"], "percent_agreement": o["percent_agreement"],
            "intra_agreement": rep["intra"]["agreement"], "warnings": rep["warnings"]}


# --------------------------------------------------------------------------- sources of ratings


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
    from engine.storage.db import read

    sql = ("SELECT d.id, d.frame_id, d.detection, d.operator, d.time_utc, d.verdict, d.new_class, d.old_class,"
           " d.old_box, d.score, d.queue_reason, f.source, f.sequence, f.image_sha256, f.ground_truth"
           " FROM decisions d JOIN frames f ON f.id = d.frame_id"
           " WHERE d.verdict IN ('confirm', 'reject', 'reclass') AND d.detection IS NOT NULL"
           " AND d.id NOT IN (SELECT undoes FROM decisions WHERE undoes IS NOT NULL)")
    args: list[Any] = []
    if since is not None:
        sql += " AND d.time_utc >= ?"
        args.append(since)
    if until is not None:
        sql += " AND d.time_utc < ?"
        args.append(until)
    rows = read(data_dir, sql + " ORDER BY d.id", args)
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


# --------------------------------------------------------------------------- gold set and calibration


GOLD_FILE = "gold_set.json"


@dataclass(frozen=True)
class GoldItem:
    id: str
    image: str  # file name beside the gold set's JSON
    box: tuple[float, float, float, float]  # the marked region, in the image's pixels
    answer: str  # a class name or "none"
    criterion: str  # key into the criteria
    boundary: bool
    note: str  # why the answer is what it is, for this item


@dataclass
class GoldSet:
    folder: Path
    version: str
    classes: tuple[str, ...]
    criteria: dict[str, str]
    items: list[GoldItem]

    @property
    def choices(self) -> tuple[str, ...]:
        return (*self.classes, NONE_LABEL)

    def image_path(self, item: GoldItem) -> Path:
        return self.folder / item.image


def default_gold_folder() -> Path:
    import resources

    return resources.path("gold_set")


def load_gold_set(folder: Path | None = None) -> GoldSet:
    """The gold set in ``folder`` (default: the built-in one). ValueError with one sentence if it is unusable."""
    folder = Path(folder) if folder else default_gold_folder()
    path = folder / GOLD_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"there is no gold set in {folder} (no {GOLD_FILE})") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None
    classes = tuple(data.get("classes", ()))
    criteria = dict(data.get("criteria", {}))
    items = []
    for n, it in enumerate(data.get("items", [])):
        try:
            item = GoldItem(str(it["id"]), str(it["image"]), tuple(float(v) for v in it["box"]),  # type: ignore[arg-type]
                            str(it["answer"]), str(it["criterion"]), bool(it.get("boundary", False)),
                            str(it.get("note", "")))
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{path}: item {n + 1} needs id, image, box, answer and criterion") from None
        if item.answer not in (*classes, NONE_LABEL):
            raise ValueError(f"{path}: item {item.id} answers {item.answer!r}, which is not a class or 'none'")
        if item.criterion not in criteria:
            raise ValueError(f"{path}: item {item.id} names the criterion {item.criterion!r}, which is not written")
        if not (folder / item.image).is_file():
            raise ValueError(f"{path}: item {item.id}'s image {item.image} is missing")
        items.append(item)
    if not items:
        raise ValueError(f"{path} has no items")
    return GoldSet(folder, str(data.get("version", "")), classes, criteria, items)


class CalibrationExercise:
    """A new operator labels the gold set; the result says where and why they differ from its answers."""

    def __init__(self, gold: GoldSet, operator: str) -> None:
        self.gold = gold
        self.operator = operator
        self.answers: dict[str, str] = {}
        self.started = time.time()

    def answer(self, item_id: str, label: str) -> None:
        if label not in self.gold.choices:
            raise ValueError(f"{label!r} is not one of {', '.join(self.gold.choices)}")
        if item_id not in {i.id for i in self.gold.items}:
            raise ValueError(f"the gold set has no item {item_id!r}")
        self.answers[item_id] = label

    @property
    def done(self) -> bool:
        return all(i.id in self.answers for i in self.gold.items)

    def result(self) -> dict[str, Any]:
        """Accuracy and Cohen's kappa against the reference answers, per class and for boundary cases apart,
        and every disagreement with the written criterion that decides it."""
        answered = [i for i in self.gold.items if i.id in self.answers]
        mine = [self.answers[i.id] for i in answered]
        ref = [i.answer for i in answered]
        disagreements = [{"item": i.id, "image": i.image, "given": self.answers[i.id], "answer": i.answer,
                          "boundary": i.boundary, "criterion": i.criterion, "why": self.gold.criteria[i.criterion],
                          "note": i.note} for i in answered if self.answers[i.id] != i.answer]
        per_class = {}
        for c in self.gold.choices:
            idx = [k for k, i in enumerate(answered) if i.answer == c]
            per_class[c] = {"n": len(idx), "correct": sum(mine[k] == c for k in idx)}
        bands = {}
        for name, want in (("boundary", True), ("easy", False)):
            idx = [k for k, i in enumerate(answered) if i.boundary == want]
            bands[name] = {"n": len(idx), "agreement": percent_agreement([mine[k] for k in idx], [ref[k] for k in idx])}
        return _clean({"operator": self.operator, "gold_version": self.gold.version, "time": time.time(),
                       "started": self.started, "answered": len(answered), "items": len(self.gold.items),
                       "agreement": percent_agreement(mine, ref), "kappa": cohen_kappa(mine, ref),
                       "per_class": per_class, "per_band": bands, "disagreements": disagreements,
                       "answers": dict(self.answers)})


def save_calibration(data_dir: Path, result: dict[str, Any]) -> Path:
    """Keep a calibration result as ``<data dir>/calibration/<utc>-<operator>.json`` (atomic, durable)."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in result["operator"]) or "operator"
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(result.get("time", time.time())))
    path = Path(data_dir) / "calibration" / f"{stamp}-{safe}.json"
    write_atomic(path, json.dumps(result, indent=1))
    return path


def latest_calibrations(data_dir: Path) -> dict[str, dict[str, Any]]:
    """Each operator's latest calibration result (agreement and kappa against the gold set)."""
    folder = Path(data_dir) / "calibration"
    out: dict[str, dict[str, Any]] = {}
    for p in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        try:
            r = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue  # a damaged file is skipped, not fatal to the report
        prev = out.get(r.get("operator", ""))
        if prev is None or r.get("time", 0) >= prev["time"]:
            out[r.get("operator", "")] = {"time": r.get("time", 0), "agreement": r.get("agreement"),
                                          "kappa": r.get("kappa"), "items": r.get("answered"),
                                          "gold_version": r.get("gold_version"),
                                          "disagreements": len(r.get("disagreements", []))}
    return out


# --------------------------------------------------------------------------- building the gold set

GOLD_CROP = 144  # pixels of a 1280-wide frame (0.1 mm each) around the marked region

DEFAULT_CRITERIA = {
    "scratch": "A scratch is a thin line mark, darker or brighter than the brushed surface, at least 1.5 mm "
               "(15 px at 1280 px width) long. Faint scratches count: a line 2-3 mm long with only 10 grey levels "
               "of contrast is a scratch when it reads as one continuous line at 100 % zoom. The brushing grain "
               "(short streaks all over the plate, all in one direction) is not a scratch.",
    "dent": "A dent is a round pit shaded dark on one side and lit on the other (the light comes from the upper "
            "left). Dents down to 0.7 mm across count. A round mark of one flat colour with no lit side is "
            "contamination, not a dent.",
    "contamination": "Contamination is an irregular smear of oil or dirt, flat-coloured (brown, grey or bluish) "
                     "with no highlight. A faint smear counts, however light, when its outline can be traced.",
    "none": "No defect: the plain brushed surface, the plate's edge, a mounting hole, the belt. When the marked "
            "region shows none of the three defects, the detection is rejected.",
}


def build_gold_set(folder: Path, seed: int = 3, per_class: tuple[int, int] = (3, 3), none_items: int = 6,
                   max_slots: int = 3000) -> GoldSet:
    """Render a gold set from the simulated line: for each class ``per_class`` = (clear, faint) defects, and
    ``none_items`` regions without a defect, cropped to PNG with their reference answers. Written criteria
    already in ``folder`` are kept (engineers edit them); the items are replaced."""
    import cv2

    from engine.simulation.line import DEFECT_CLASSES, LineSimulator, mm_per_px

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    criteria = dict(DEFAULT_CRITERIA)
    old = folder / GOLD_FILE
    if old.exists():
        try:
            criteria.update(json.loads(old.read_text(encoding="utf-8")).get("criteria", {}))
        except (OSError, json.JSONDecodeError):
            pass
    sim = LineSimulator(seed=seed, scenario="nominal", width=1280, height=1024)
    mm = mm_per_px(1280)
    want = {(c, f): per_class[1 if f else 0] for c in DEFECT_CLASSES for f in (False, True)}
    used: set[tuple] = set()
    items: list[dict[str, Any]] = []
    crops: dict[str, np.ndarray] = {}
    rng = np.random.default_rng(seed)
    half = GOLD_CROP // 2
    nones = 0
    for slot in range(max_slots):
        if not any(want.values()) and nones >= none_items:
            break
        image, truth = sim.render(slot)
        h, w = image.shape[:2]
        boxes = [d.box for d in truth.defects]
        for d in truth.defects:
            key = (d.box.class_name, d.faint)
            ident = (d.part_id, d.box.class_name, round(d.size_px, 1))
            if want.get(key, 0) <= 0 or ident in used:
                continue
            cx, cy = (d.box.x0 + d.box.x1) / 2, (d.box.y0 + d.box.y1) / 2
            x0, y0 = int(round(cx)) - half, int(round(cy)) - half
            if x0 < 0 or y0 < 0 or x0 + GOLD_CROP > w or y0 + GOLD_CROP > h:
                continue
            if d.box.width > GOLD_CROP - 8 or d.box.height > GOLD_CROP - 8:
                continue
            if any(b is not d.box and b.x1 > x0 and b.x0 < x0 + GOLD_CROP and b.y1 > y0 and b.y0 < y0 + GOLD_CROP
                   for b in boxes):
                continue  # one defect per picture, so the answer is not ambiguous
            used.add(ident)
            want[key] -= 1
            iid = f"{d.box.class_name}-{'faint' if d.faint else 'clear'}-{want[key] + 1}"
            crops[iid] = image[y0:y0 + GOLD_CROP, x0:x0 + GOLD_CROP]
            extent = f"{d.size_px * mm:.1f} mm" + (" long" if d.box.class_name == "scratch" else " across")
            items.append({"id": iid, "image": f"{iid}.png",
                          "box": [round(d.box.x0 - x0 - 2, 1), round(d.box.y0 - y0 - 2, 1),
                                  round(d.box.x1 - x0 + 2, 1), round(d.box.y1 - y0 + 2, 1)],
                          "answer": d.box.class_name, "criterion": d.box.class_name, "boundary": bool(d.faint),
                          "note": f"{'faint ' if d.faint else ''}{d.box.class_name}, {extent}, contrast "
                                  f"{d.contrast:.0f} grey levels"})
        if nones < none_items and slot % 7 == 3:
            luma = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
            for _ in range(40):
                cx, cy = int(rng.integers(half, w - half)), int(rng.integers(half, h - half))
                x0, y0 = cx - half, cy - half
                win = luma[y0:y0 + GOLD_CROP, x0:x0 + GOLD_CROP]
                edge = nones % 2 == 1  # every other one straddles the plate's edge
                ok = (90 < win.mean() < 135) if edge else (win.min() > 110)
                clear = not any(b.x1 > x0 - 10 and b.x0 < x0 + GOLD_CROP + 10 and b.y1 > y0 - 10
                                and b.y0 < y0 + GOLD_CROP + 10 for b in boxes)
                if ok and clear:
                    nones += 1
                    iid = f"none-{'edge' if edge else 'surface'}-{nones}"
                    s = float(rng.uniform(14, 34))
                    crops[iid] = image[y0:y0 + GOLD_CROP, x0:x0 + GOLD_CROP]
                    items.append({"id": iid, "image": f"{iid}.png",
                                  "box": [round(half - s / 2, 1), round(half - s / 2, 1),
                                          round(half + s / 2, 1), round(half + s / 2, 1)],
                                  "answer": NONE_LABEL, "criterion": NONE_LABEL, "boundary": edge,
                                  "note": "the plate's edge and the belt, no defect" if edge
                                  else "brushed surface only, no defect"})
                    break
    if any(v > 0 for v in want.values()) or nones < none_items:
        raise ValueError(f"the simulated line gave too few suitable defects in {max_slots} frames")
    order = sorted(items, key=lambda it: int.from_bytes(
        hashlib.sha256(f"{seed}:{it['id']}".encode()).digest()[:4], "big"))  # mixed, stable order
    for p in folder.glob("*.png"):
        p.unlink()
    for iid, crop in crops.items():
        ok, buf = cv2.imencode(".png", crop, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        if not ok:
            raise ValueError("a gold image could not be encoded")
        write_atomic(folder / f"{iid}.png", buf.tobytes())
    doc = {"version": f"sim-{seed}-{time.strftime('%Y%m%d', time.gmtime())}",
           "about": "Reference answers for the calibration exercise. Each item is a picture of part of a plate "
                    "with a marked region; the answer is what the region shows (a class, or none). Edit the "
                    "criteria to sharpen them; regenerate the pictures with `inspection-station agreement "
                    "gold-build`.",
           "classes": list(DEFECT_CLASSES), "criteria": criteria, "items": order}
    write_atomic(folder / GOLD_FILE, json.dumps(doc, indent=1) + "\n")
    return load_gold_set(folder)
