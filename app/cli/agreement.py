"""``inspection-station agreement``: how far operators agree, from the store or from any CSV of labels.

``agreement [--json]`` reports on the stored decisions; ``agreement --csv FILE [--json]`` computes the same
figures from ``item,rater,label`` rows (optional columns ``score``, ``time``, ``gold``, ``intra``), so an
engineer can check any label set. ``agreement gold-build --out DIR`` renders the gold set for the
calibration exercise from the simulated line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from app.cli.common import WHEN_HELP, UserError, data_dir, when


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("agreement", parents=[common],
                       help="annotator agreement: kappa, alpha, per operator, over time, disputed samples")
    p.add_argument("--json", action="store_true", help="the whole report as one JSON object (undefined as null)")
    p.add_argument("--csv", type=Path, metavar="FILE",
                   help="compute from item,rater,label rows instead of the store")
    p.add_argument("--since", metavar="T", help="only decisions from T on: " + WHEN_HELP)
    p.add_argument("--until", metavar="T", help="only decisions before T")
    p.set_defaults(func=show)
    asub = p.add_subparsers(dest="agreement_command", metavar="ACTION")
    gb = asub.add_parser("gold-build", parents=[common],
                         help="render the calibration gold set from the simulated line (keeps written criteria)")
    gb.add_argument("--out", type=Path, required=True, help="the gold set's folder (resources/gold_set to rebuild "
                                                               "the built-in one)")
    gb.add_argument("--seed", type=int, default=3, help="the simulated line's seed (default 3)")
    gb.set_defaults(func=gold_build)


def show(args: argparse.Namespace, config: dict[str, Any]) -> int:
    from engine.datasets.agreement.ratings import read_csv, report_from_store
    from engine.datasets.agreement.report import AgreementSettings, report

    since, until = when(args.since), when(args.until, "--until")
    if args.csv is not None:
        if not args.csv.is_file():
            raise UserError(f"{args.csv} does not exist")
        try:
            ratings = read_csv(args.csv)
        except (ValueError, UnicodeDecodeError) as e:
            raise UserError(str(e)) from None
        if since is not None or until is not None:
            ratings = [r for r in ratings if r.time is None or (
                (since is None or r.time >= since) and (until is None or r.time < until))]
        rep = report(ratings, AgreementSettings.from_config(config))
        rep["source"] = f"csv:{args.csv}"
    else:
        from app.cli.credentials import require

        # The operators' figures are the engineers' to read; a CSV the engineer brings is not gated.
        require(args, "agreement", "reviewed", config, action="agreement")
        rep = report_from_store(data_dir(args), config, since, until)
    if args.json:
        print(json.dumps(rep, indent=1, allow_nan=False))
    else:
        print(render_text(rep))
    return 0


def _f(v: float | None, pct: bool = False) -> str:
    if v is None:
        return "n/a"
    return f"{v:.0%}" if pct else f"{v:.3f}"


def render_text(rep: dict[str, Any]) -> str:
    """The report for a person: overall figures, the pairwise matrix, bands, classes, operators, disputes."""
    o = rep["overall"]
    lines = [f"Annotator agreement ({rep.get('source', '')}): {o['items']} items rated by two or more, "
             f"{rep['ratings']} ratings, {len(rep['raters'])} raters"]
    if not o["items"]:
        lines.append("no item has been rated by two operators yet: agreement cannot be measured")
    fleiss = (f"{_f(o['fleiss'])} ({o['fleiss_items']} items x {o['fleiss_raters']} ratings)"
              if o["fleiss"] is not None or o["fleiss_items"] else "n/a (no item with three or more ratings)")
    lines += [f"  Krippendorff's alpha  {_f(o['alpha'])}",
              f"  mean Cohen's kappa    {_f(o['mean_cohen'])}",
              f"  Fleiss' kappa         {fleiss}",
              f"  agreeing pairs        {_f(o['percent_agreement'], True)}",
              f"  intra-rater           {_f(rep['intra']['agreement'], True)} of {rep['intra']['n']} re-reviews "
              f"(kappa {_f(rep['intra']['kappa'])})"]
    raters = rep["raters"]
    if rep["pairwise"]:
        pair = {(p["a"], p["b"]): p for p in rep["pairwise"]}
        w = max(8, *(len(r) for r in raters))
        lines += ["", "Cohen's kappa per pair (items in common):", " " * (w + 1) + " ".join(f"{r:>{w}}" for r in raters)]
        for a in raters:
            cells = []
            for b in raters:
                p = pair.get((a, b)) or pair.get((b, a))
                cells.append(f"{'-':>{w}}" if a == b or p is None else f"{_f(p['kappa']) + f'({p[chr(110)]})':>{w}}")
            lines.append(f"{a:>{w}} " + " ".join(cells))
    lines += ["", "By confidence band:"]
    for b, blk in rep["per_band"].items():
        lines.append(f"  {b:<9} {blk['items']:>6} items  alpha {_f(blk['alpha'])}  agreeing pairs "
                     f"{_f(blk['percent_agreement'], True)}")
    if rep["per_class"]:
        lines += ["", "By class (that class against the rest):"]
        for c, v in rep["per_class"].items():
            lines.append(f"  {c:<14} {v['items']:>6} items  alpha {_f(v['alpha'])}")
    if rep["operators"]:
        lines += ["", f"{'operator':<12} {'items':>6} {'vs others':>10} {'vs gold':>8} {'intra':>6} {'calib.':>7}  trend"]
        for name, op in rep["operators"].items():
            cal = op.get("calibration", {}).get("agreement")
            d = op["drift"]
            trend = "DRIFTING" if d["flagged"] else ("steady" if d["baseline"] is not None else "too few items")
            lines.append(f"{name:<12} {op['items']:>6} {_f(op['vs_consensus']['agreement'], True):>10} "
                         f"{_f(op['vs_gold']['agreement'], True):>8} {_f(op['intra']['agreement'], True):>6} "
                         f"{_f(cal, True):>7}  {trend}")
    for w_ in rep["warnings"]:
        lines.append(f"WARNING: {w_}")
    if rep["disputed"]:
        lines += ["", f"Most disputed ({len(rep['disputed'])} of {rep['disputed_total']}):"]
        for d in rep["disputed"][:10]:
            where = f"frame {d['sequence']} of {d['source']}" if "sequence" in d else d["item"]
            labels = ", ".join(f"{k}: {v}" for k, v in d["labels"].items())
            score = f" score {d['score']:.2f}" if d.get("score") is not None else ""
            lines.append(f"  {where}{score}  {labels}")
    return "\n".join(lines)


def gold_build(args: argparse.Namespace, config: dict[str, Any]) -> int:
    from engine.datasets.agreement.gold_build import build_gold_set

    try:
        gold = build_gold_set(args.out, seed=args.seed)
    except (ValueError, OSError) as e:
        raise UserError(f"the gold set could not be built: {e}") from None
    size = sum(gold.image_path(i).stat().st_size for i in gold.items)
    print(f"gold set {gold.version}: {len(gold.items)} items ({sum(i.boundary for i in gold.items)} boundary "
          f"cases), {size / 1024:.0f} KiB of images in {args.out}")
    return 0
