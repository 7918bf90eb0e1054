"""``inspection-station accuracy``: how well the running model does on the live line.

``accuracy`` prints precision and recall per class with Wilson 95 % intervals from the operators' decisions on
the random review sample, per shift and per hour, the label-free estimate kept with the drift trends, who was
right on the shadow model's disagreements, and the suggestion to retrain when there is one.
``accuracy calibrate`` fits the score calibration the label-free estimate needs, on the simulated line.
``accuracy estimate`` runs the model over a simulated span and prints the label-free estimate per stretch beside
the true precision, recall and F1 of the same frames.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from app.cli.common import WHEN_HELP, UserError, data_dir, fraction, positive_int, when


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    a = sub.add_parser("accuracy", parents=[common],
                       help="field accuracy: precision and recall from the random review sample, the label-free "
                            "estimate, the shadow model's record, the retrain suggestion")
    a.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    a.add_argument("--since", help=f"only frames taken since then: {WHEN_HELP}")
    a.set_defaults(func=report)
    s = a.add_subparsers(dest="accuracy_command", metavar="SUBCOMMAND")
    c = s.add_parser("calibrate", parents=[common],
                     help="fit the score calibration of the label-free estimate on the simulated line")
    _span_args(c, frames=300)
    c.set_defaults(func=calibrate)
    e = s.add_parser("estimate", parents=[common],
                     help="the label-free estimate per stretch of a simulated run beside the true figures")
    _span_args(e, frames=300)
    e.add_argument("--buckets", type=positive_int, default=6, help="equal spans of simulated time (default 6)")
    e.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    e.set_defaults(func=estimate)


def _span_args(p: argparse.ArgumentParser, frames: int) -> None:
    p.add_argument("--source", default="sim://?seed=0&scenario=nominal",
                   help="a sim:// URI (its truth says which box was right); default: seed 0, nominal")
    p.add_argument("--frames", type=positive_int, default=frames, help=f"frames to run (default {frames})")
    p.add_argument("--step", type=positive_int, default=1, help="every STEP-th frame slot (default 1)")
    p.add_argument("--model", help="the model file (default: the built-in model)")
    p.add_argument("--confidence", type=fraction, help="operating threshold (default: the model's)")


def _collect(args: argparse.Namespace) -> tuple[Any, float, list[Any]]:
    from engine.inference import load_detector
    from engine.inference.evaluate import collect
    from engine.sources import open_source

    if not args.source.startswith("sim:"):
        raise UserError(f"this needs ground truth, which only the simulated line gives: use a sim:// source, "
                        f"not {args.source}")
    det = load_detector(args.model, confidence=args.confidence)
    operating = float(det.confidence)
    det.confidence = min(0.01, operating)  # the boxes below the threshold too, for a calibration over all scores
    try:
        frames = collect(open_source(args.source, realtime=False), det, args.frames, step=args.step)
    except ValueError as e:
        raise UserError(str(e)) from None
    det.confidence = operating
    return det, operating, frames


def calibrate(args: argparse.Namespace, config: dict[str, Any]) -> int:
    from engine.inference.confidence import fit_calibration

    det, operating, frames = _collect(args)
    cal = fit_calibration(frames, det.name, args.source, confidence=min(0.05, operating), threshold=operating)
    path = cal.save(data_dir(args))
    shown = cal.probability([b.score for f in frames for b in f.predictions if (b.score or 0) >= operating])
    print(f"calibration of {det.name} on {len(frames)} frames of {args.source}: {cal.boxes} boxes, "
          f"{len(cal.knots)} steps; expected precision of the boxes shown there "
          f"{float(shown.mean()) if shown.size else float('nan'):.3f}; near-threshold peaks "
          f"[{cal.near:g}, {cal.threshold:g}) per frame {cal.near_rate if cal.near_rate is not None else 0:.3f}; "
          f"saved to {path}")
    return 0


def estimate(args: argparse.Namespace, config: dict[str, Any]) -> int:
    import numpy as np

    from engine.inference.confidence import expected_f1, expected_recall, load_calibration, missed_mass
    from engine.inference.evaluate import evaluate_buckets

    cal = load_calibration(data_dir(args))
    if cal is None:
        raise UserError("no calibration in the data folder: run `inspection-station accuracy calibrate` first")
    det, operating, frames = _collect(args)
    if cal.model != det.name:
        raise UserError(f"the calibration was made for {cal.model}, not {det.name}")
    buckets = evaluate_buckets(frames, det.classes, operating, args.buckets)
    times = np.array([f.time_s for f in frames])
    rows = []
    for b in buckets:
        last = len(buckets) - 1
        sel = [f for f, t in zip(frames, times)
               if b["t_start_s"] <= t < b["t_end_s"] or (b["bucket"] == last and t >= b["t_start_s"])]
        scores = [p.score for f in sel for p in f.predictions if (p.score or 0) >= operating]
        p = cal.probability(scores)
        missed = [missed_mass(cal, [q.score for q in f.predictions if (q.score or 0) < operating]) for f in sel]
        ep = float(p.mean()) if p.size else None
        er = expected_recall(cal, float(p.sum()), sum(m for m, _ in missed), sum(n for _, n in missed), len(sel))
        ef = expected_f1(ep, er)
        rows.append({"bucket": b["bucket"], "t_start_s": b["t_start_s"], "t_end_s": b["t_end_s"],
                     "frames": b["frames"], "shown_boxes": int(p.size),
                     "near_peaks": sum(n for _, n in missed),
                     "expected_precision": None if ep is None else round(ep, 4),
                     "expected_recall": None if er is None else round(er, 4),
                     "expected_f1": None if ef is None else round(ef, 4),
                     "precision": b["precision"], "recall": b["recall"], "f1": b["f1"]})
    result = {"source": args.source, "model": det.name, "confidence": operating, "step": args.step,
              "calibration": {"source": cal.source, "boxes": cal.boxes}, "buckets": rows}
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{det.name} on {args.source}: {len(frames)} frames (every {args.step}), confidence {operating:g}; "
          f"calibrated on {cal.source}")
    if cal.near_rate is None:
        print("this calibration has no reference rate of near-threshold peaks, so no expected recall: run "
              "`inspection-station accuracy calibrate` again", file=sys.stderr)
    print(f"{'span':<14}{'frames':>7}{'shown':>6}{'near':>6}  {'expected: prec':>14}{'recall':>7}{'F1':>7}"
          f"  {'true: prec':>10}{'recall':>7}{'F1':>7}")
    for r in rows:
        span = f"{r['t_start_s'] / 86400:.1f}-{r['t_end_s'] / 86400:.1f} d"
        print(f"{span:<14}{r['frames']:>7}{r['shown_boxes']:>6}{r['near_peaks']:>6}  {_f(r['expected_precision']):>14}"
              f"{_f(r['expected_recall']):>7}{_f(r['expected_f1']):>7}"
              f"  {_f(r['precision']):>10}{_f(r['recall']):>7}{_f(r['f1']):>7}")
    return 0


def _f(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def _ci(fig: dict[str, Any]) -> str:
    if not fig["n"]:
        return "-"
    return f"{fig['value']:.3f} [{fig['low']:.3f}, {fig['high']:.3f}] n={fig['n']}"


def report(args: argparse.Namespace, config: dict[str, Any]) -> int:
    from engine.runtime.field import field_report

    out = field_report(data_dir(args), config, when(args.since))
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"field accuracy from the random review sample: {out['frames']} frames, {out['decisions']} decisions")
    print(f"  precision {_ci(out['precision'])}")
    print(f"  recall    {_ci(out['recall'])}")
    for c, f in out["classes"].items():
        print(f"  {c:<14} precision {_ci(f['precision'])}; recall {_ci(f['recall'])}")
    for s, f in out["shifts"].items():
        print(f"  shift {s}: {f['frames']} frames, precision {_ci(f['precision'])}; recall {_ci(f['recall'])}")
    ep = out["expected_precision"]
    print("label-free estimate (expected precision of the boxes shown): "
          + (f"{ep['value']:.3f}" if ep else "none kept (no calibration, or no drift reference while it ran)"))
    er, ef = out.get("expected_recall"), out.get("expected_f1")
    if er or ef:
        print(f"label-free estimate (from the candidates below the threshold): expected recall "
              f"{_f(er and er['value'])}, expected F1 {_f(ef and ef['value'])}")
    sh = out["shadow"]
    if any(sh.values()):
        print(f"shadow disagreements decided: champion right {sh['champion']}, challenger right {sh['challenger']}, "
              f"both {sh['both']}, neither {sh['neither']}")
    if out["suggestion"]:
        print(out["suggestion"])
    if not out["decisions"]:
        print("no decisions on sampled frames yet: precision and recall need operators' decisions on the random "
              "review sample", file=sys.stderr)
    return 0
