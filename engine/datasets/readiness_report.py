"""The data readiness report: :func:`engine.datasets.readiness.assess` drawn as one self-contained HTML page.

The page is ``resources/reports/readiness.html.j2`` rendered by :mod:`engine.reports`: the reports' one
stylesheet inlined, every plot inline SVG (:mod:`engine.reports.svg`), example frames base64 PNG.
:func:`build_report` loads the reference, assesses production and writes the page atomically.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from markupsafe import Markup

from engine.core.files import write_atomic
from engine.datasets.readiness import (
    Readiness,
    ReadinessError,
    StatisticShift,
    agreement_kappa,
    assess,
    load_reference,
    raise_if_cancelled,
)
from engine.reports import data_uri, render
from engine.security.anchor import stamp
from engine.reports.svg import BLUE, GREEN, GREY, RED, Chart


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


def svg_histogram(s: StatisticShift, psi_max: float, width: int = 250, height: int = 120) -> Markup:
    """Reference (grey bars) and production (blue outline) shares of one statistic on shared bins."""
    nb = len(s.reference_share)
    m = max(s.reference_share + s.production_share + [1e-9])
    c = Chart(width, height, (0, max(1, nb)), (0, m), margin=(18, 4, 18, 4), label=f"{s.name} histogram")
    edges = list(range(nb + 1))
    c.bars(edges, s.reference_share, GREY, opacity=0.55)
    if s.production_share:
        c.steps(edges, s.production_share, BLUE)
    c.baseline()
    if s.psi is None:
        label, colour = "PSI: too few frames", "#666"
    else:
        label, colour = f"PSI {s.psi:.3f}", RED if s.psi > psi_max else GREEN
    c.text_px(4, 12, s.name, size=12, bold=True)
    c.text_px(width - 4, 12, label, size=11, anchor="end", fill=colour)
    if s.plot_edges:
        c.text_px(4, height - 4, _fmt(s.plot_edges[0]), fill="#444")
        c.text_px(width - 4, height - 4, _fmt(s.plot_edges[-1]), anchor="end", fill="#444")
    return c.svg()


def svg_classes(names: list[str], training: dict[str, int] | None, production: dict[str, int],
                width: int = 520, height: int = 200) -> Markup:
    """Class shares side by side: training (grey) and production feedback (blue)."""
    c = Chart(width, height, (0, max(1, len(names))), (0, 1), margin=(16, 10, 34, 40), label="class mix")
    c.yticks([(f, f"{f:.0%}") for f in (0, 0.25, 0.5, 0.75, 1.0)])
    tt = sum((training or {}).values())
    pt = sum(production.values())
    bw = 0.32
    for i, name in enumerate(names):
        for j, (counts, total, colour) in enumerate(((training or {}, tt, GREY), (production, pt, BLUE))):
            if not total:
                continue
            share = counts.get(name, 0) / total
            x = i + 0.15 + j * (bw + 0.02)
            c.rect(x, x + bw, 0, share, colour)
            c.text_px(c.px(x + bw / 2), c.py(share) - 3, f"{share:.0%}", anchor="middle")
        c.text_px(c.px(i + 0.15 + bw + 0.01), c.top + c.plot_height + 14, name, size=12, anchor="middle")
    return c.svg()


def svg_novelty(values: list[float], width: int = 520, height: int = 140) -> Markup:
    """Novelty of production frames against the reference, with the limit of 1 marked."""
    v = np.log10(np.clip(np.asarray(values, float), 1e-3, 1e4))
    edges = np.linspace(-2, max(1.0, float(v.max()) + 0.1), 41)
    counts, _ = np.histogram(np.clip(v, edges[0], edges[-1]), edges)
    c = Chart(width, height, (edges[0], edges[-1]), (0, max(1, counts.max())), margin=(10, 10, 30, 10),
              label="novelty")
    for i, n in enumerate(counts):
        c.rect(edges[i], edges[i + 1], 0, n, RED if edges[i] >= 0 else BLUE, gap=0.8)
    c.vline(0.0, "#000")
    c.xticks([(math.log10(t), f"{t:g}") for t in (0.01, 0.1, 1, 10, 100, 1000)
              if edges[0] <= math.log10(t) <= edges[-1]],
             "novelty (log scale; above 1 = unlike any reference frame)")
    return c.svg()


def _short(v: Any) -> str:
    if v is None:
        return "not measured"
    if isinstance(v, float):
        return f"{v:.3f}"
    text = ", ".join(map(str, v)) if isinstance(v, list) else json.dumps(v) if not isinstance(v, str) else v
    return text if len(text) <= 200 else text[:197] + "..."


def _utc(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(t))


def render_html(r: Readiness) -> str:
    """The report's page: verdict, what was compared, statistics, classes, coverage, agreement, examples, rules."""
    th, p, ref, c = r.thresholds, r.production, r.reference, r.classes
    compared = [("Training reference", ref["id"]),
                ("built from", f"{ref['source']} ({ref['frames']} frames, {ref['size']}, "
                               f"{ref['detector'] or 'no detector'})"),
                ("Production", f"{p['frames']} stored frames, {p['feedback_frames']} with operator feedback "
                               f"({p['decisions']} decisions)"),
                ("period", f"{_utc(p['first'])} to {_utc(p['last'])} UTC (source clock)"),
                ("sources", ", ".join(p["sources"])),
                ("frame sizes", ", ".join(f"{k}: {v}" for k, v in p["frame_sizes"].items())),
                ("trend minutes recorded", str(p["trend_minutes"]))]
    statistics = [{"name": s.name, "reference_mean": _fmt(s.reference_mean),
                   "production_mean": "-" if s.production_mean is None else _fmt(s.production_mean),
                   "frames": f"{s.reference_n} / {s.production_n}",
                   "psi": "too few frames" if s.psi is None else f"{s.psi:.3f}",
                   "bad": s.psi is not None and s.psi > th.psi_max} for s in r.statistics]
    nov = p.get("novelty") or {}
    novelty = None
    if nov.get("measured"):
        novelty = {"text": f"{nov['novel_share']:.1%} of {nov['frames']} production frames lie beyond the "
                           f"reference's 99.9 % quantile (at most {th.novel_share_max:.0%} allowed).",
                   "svg": svg_novelty(nov["values"])}
    classes = [{"name": n, "training": "-" if c["training"] is None else c["training"].get(n, 0),
                "production": c["production"].get(n, 0), "few": c["production"].get(n, 0) < th.min_examples_per_class,
                "corrected": c["corrected"].get(n, 0), "rejected": c["rejected"].get(n, 0)} for n in c["names"]]
    coverage = []
    for row in r.coverage:
        need = row["share"] >= th.condition_min_share
        coverage.append({"dimension": row["dimension"], "band": row["band"], "share": f"{row['share']:.1%}",
                         "frames": row["feedback_frames"],
                         "bad": need and row["feedback_frames"] < th.min_frames_per_condition,
                         "classes": [(row["classes"].get(n, 0), need and row["classes"].get(n, 0) == 0)
                                     for n in c["names"]]})
    agreement = None
    if r.agreement is not None:
        k = agreement_kappa(r.agreement)
        agreement = {"kappa": "not measured" if k is None else f"{k:.3f}",
                     "rows": [(str(a), _short(b)) for a, b in r.agreement.items()]}
    rules = [("statistics", f"each statistic's PSI at most {th.psi_max:g}, on at least {th.min_frames} production frames"),
             ("novelty", f"at most {th.novel_share_max:.0%} of production frames with novelty above 1"),
             ("feedback", f"at least {th.min_feedback_frames} production frames with operator feedback"),
             ("classes", f"at least {th.min_examples_per_class} labelled examples of each class; class mix PSI at most "
                         f"{th.class_psi_max:g}"),
             ("conditions", f"at least {th.min_frames_per_condition} labelled frames in every condition band holding "
                            f"{th.condition_min_share:.0%} or more of production"),
             ("agreement", f"kappa at least {th.min_kappa:g}" + (" and measured" if th.require_agreement else "")),
             ("frame size", "production frames the size of the reference's")]
    src = c["training_source"]
    return render("readiness.html.j2", audit_anchor=stamp(Path(r.production["data_dir"])), r=r, th=th, ref_id=ref["id"][:16], compared=compared,
                  histograms=[svg_histogram(s, th.psi_max) for s in r.statistics], statistics=statistics,
                  novelty=novelty, training_source=src[:1].upper() + src[1:],
                  class_svg=svg_classes(c["names"], c["training"], c["production"]), class_names=c["names"],
                  classes=classes, class_psi=None if "psi" not in c else f"{c['psi']:.3f}", coverage=coverage,
                  agreement=agreement, min_kappa=f"{th.min_kappa:g}",
                  examples=[{"label": x["label"], "caption": x["caption"], "src": data_uri(x["png"])}
                            for x in r.examples],
                  rules=rules, grey=GREY, blue=BLUE)


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
        raise_if_cancelled(cancel)
        write_report(Path(out), render_html(result))
    return result
