"""``inspection-station feedback list|import-qc``: the decisions the station has stored."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from app.cli.common import UserError, data_dir


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    f = sub.add_parser("feedback", parents=[common], help="list stored decisions, import downstream QC findings")
    fsub = f.add_subparsers(dest="feedback_command", metavar="ACTION", required=True)
    ls = fsub.add_parser("list", parents=[common], help="the stored decisions, oldest first")
    ls.add_argument("--json", action="store_true", help="one JSON array")
    ls.add_argument("--limit", type=int)
    ls.set_defaults(func=list_)
    qc = fsub.add_parser("import-qc", parents=[common],
                         help="record defects found further down the line as missed detections")
    qc.add_argument("csv", type=Path, help="columns: source,sequence,class[,x0,y0,x1,y1][,inspector]")
    qc.set_defaults(func=import_qc)


def list_(args: argparse.Namespace, config: dict[str, Any]) -> int:
    from engine.review.feedback import list_decisions

    rows = list_decisions(data_dir(args), args.limit)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    if not rows:
        print("no decisions stored yet")
    for r in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r["time_utc"]))
        what = r["new_class"] or r["old_class"] or ""
        print(f"{when}  {r['operator']:<10} {r['verdict']:<8} {what:<14} frame {r['sequence']} of {r['source']}"
              f"  {r['review_id'][:8]}")
    return 0


def import_qc(args: argparse.Namespace, config: dict[str, Any]) -> int:
    from engine.review.feedback import FeedbackStore, read_qc_csv
    from engine.simulation.defects import DEFECT_CLASSES

    if not args.csv.is_file():
        raise UserError(f"{args.csv} does not exist")
    try:
        good, bad = read_qc_csv(args.csv, DEFECT_CLASSES)
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(str(e)) from None
    store = FeedbackStore(data_dir(args))
    try:
        outcomes = store.record_qc([r for _, r in good]).result(60) if good else []
    finally:
        store.close()
    for (line, _), why in zip(good, outcomes):
        if why is not None:
            bad.append((line, why))
    imported = sum(1 for w in outcomes if w is None)
    for line, why in sorted(bad):
        print(f"{args.csv}:{line}: {why}")
    print(f"imported {imported} of {imported + len(bad)} rows as missed detections")
    return 0 if not bad else 1
