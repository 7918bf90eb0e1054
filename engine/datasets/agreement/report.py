"""The agreement report over a set of ratings, and the few figures other reports quote from it.

A rater's *primary* rating of an item is their last one outside a blind re-review; a re-review by the same
rater (``intra``) is kept apart and measures intra-rater consistency. A detection's *confidence band* is
``boundary`` when its score lies in ``[boundary_low, boundary_high]`` (default 0.3-0.7), ``easy`` otherwise.
The statistics and their edge cases are in :mod:`engine.datasets.agreement.statistics`.

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

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from engine.datasets.agreement.statistics import (
    cohen_kappa,
    count_table,
    fleiss_kappa,
    krippendorff_alpha,
    percent_agreement,
)

NONE_LABEL = "none"  # a detection rejected as no defect

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


def json_ready(x: Any) -> Any:
    """NaN -> None throughout, so the report is valid JSON."""
    if isinstance(x, float):
        return None if math.isnan(x) else round(x, 6)
    if isinstance(x, dict):
        return {k: json_ready(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_ready(v) for v in x]
    if isinstance(x, np.floating):
        return json_ready(float(x))
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
    return json_ready(out)


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

