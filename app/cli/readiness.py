"""``inspection-station readiness``: is the gathered feedback ready to retrain on? An HTML report and a verdict."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from app.cli.common import UserError, data_dir


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    r = sub.add_parser("readiness", parents=[common],
                       help="data readiness: training reference against production, classes, coverage, agreement")
    r.add_argument("--reference", required=True,
                   help="the training reference: a .npz from 'reference build', or 'builtin'")
    r.add_argument("--since", metavar="T",
                   help="only production frames from T on (source clock): 2026-01-31, 2026-01-31T08:00 (UTC) "
                        "or seconds since 1970")
    r.add_argument("--out", type=Path, help="the HTML report to write (default: no report, with --json)")
    r.add_argument("--json", action="store_true", help="print the verdict and its reasons as one JSON object")
    r.set_defaults(func=readiness)


def readiness(args: argparse.Namespace, config: dict[str, Any]) -> int:
    from engine.datasets.readiness import build_report, parse_since

    if args.out is None and not args.json:
        raise UserError("say where the report goes with --out report.html (or ask for --json)")
    from app.cli.credentials import require

    require(args, "readiness", "reviewed", config, action="readiness", obj=str(args.out or ""))
    since = parse_since(args.since) if args.since else None
    tty = sys.stderr.isatty()

    def progress(fraction: float, message: str) -> None:
        if tty:
            print(f"\r{fraction:4.0%} {message:<40}", end="", file=sys.stderr, flush=True)

    result = build_report(args.reference, data_dir(args), args.out, since, config, progress)
    if tty:
        print(file=sys.stderr)
    if args.json:
        d = result.to_dict()
        d.pop("coverage", None)
        out = {"verdict": d["verdict"], "ready": d["ready"], "reasons": d["reasons"], "notes": d["notes"],
               "reference": d["reference"]["id"], "frames": d["production"]["frames"],
               "feedback_frames": d["production"]["feedback_frames"], "psi": d["psi"],
               "report": str(args.out) if args.out else None}
        print(json.dumps(out, indent=1))
    else:
        print(f"{result.verdict.upper()}: report written to {args.out}")
        for reason in result.reasons:
            print(f"  - {reason}")
    return 0
