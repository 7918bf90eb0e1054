"""``inspection-station eval``: a detector's predictions against ground truth: the simulated line's, or a labelled
dataset's (``--dataset``: a COCO file with its images, a YOLO folder with its data.yaml, or a feedback bundle)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from app.cli.common import UserError, fraction, positive_int


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    e = sub.add_parser("eval", parents=[common],
                       help="precision, recall, F1 and AP@0.5 against the simulator's ground truth, over time, "
                            "or against a labelled dataset (--dataset)")
    e.add_argument("--source", default="sim://?seed=0&scenario=nominal",
                   help="a sim:// URI (it carries ground truth); default: seed 0, nominal")
    e.add_argument("--frames", type=positive_int, default=300, help="frames to score (default 300)")
    e.add_argument("--step", type=positive_int, default=1,
                   help="score every STEP-th frame slot, skipping the rest (default 1: every slot)")
    e.add_argument("--model", help="a .pt2 or TorchScript file (default: the built-in model)")
    e.add_argument("--confidence", type=fraction, help="operating threshold (default: the model's)")
    e.add_argument("--buckets", type=positive_int, default=1,
                   help="also score K equal spans of simulated time, to show a trend (default 1: none)")
    e.add_argument("--device", help="cpu, cuda or cuda:N (default: CUDA when available)")
    e.add_argument("--dataset", type=Path, metavar="PATH",
                   help="score on labelled images instead of the simulator: a COCO .json (images beside it, in "
                        "images/ beside it or one folder up, or --images), a YOLO folder or data.yaml, or a feedback "
                        "bundle (its operator-corrected truth); classes are matched by name")
    e.add_argument("--split", choices=("train", "val", "test", "all"),
                   help="the split of a bundle (default test) or a YOLO dataset (default test, else val)")
    e.add_argument("--images", type=Path, metavar="DIR", help="the folder of a COCO file's images")
    e.add_argument("--save-predictions", type=Path, metavar="PATH",
                   help="with --dataset: write the model's boxes as a COCO results file (a COCO dataset's or a "
                        "bundle's own image and category ids; for YOLO 1.. in image and class order)")
    e.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    e.set_defaults(func=run)


def _confidence_of(det: Any) -> float:
    return float(det.confidence)


def run(args: argparse.Namespace, config: dict[str, Any]) -> int:
    from engine.inference import load_detector
    from engine.inference.evaluate import collect, evaluate, evaluate_buckets
    from engine.sources import open_source

    det = load_detector(args.model, device=args.device, confidence=args.confidence)
    operating = _confidence_of(det)
    det.confidence = min(0.01, operating)  # low-scored boxes too, for the precision-recall curve
    if args.dataset is not None:
        return _run_dataset(args, det, operating)
    if args.split or args.images or args.save_predictions:
        raise UserError("--split, --images and --save-predictions go with --dataset")
    if not args.source.startswith("sim:"):
        raise UserError(f"eval needs ground truth, which only the simulated line gives: use a sim:// source, "
                        f"not {args.source}")
    source = open_source(args.source, realtime=False)
    tty = sys.stderr.isatty()
    t0 = time.monotonic()

    def progress(done: int, total: int) -> None:
        if tty and (done % 25 == 0 or done == total):
            print(f"\r{done}/{total} frames, {done / max(1e-9, time.monotonic() - t0):.1f} frames/s",
                  end="", file=sys.stderr, flush=True)

    try:
        frames = collect(source, det, args.frames, step=args.step, progress=progress)
    except ValueError as e:
        raise UserError(str(e)) from None
    finally:
        if tty:
            print(file=sys.stderr)
    overall = evaluate(frames, det.classes, operating)
    result = {"source": args.source, "model": det.name, "device": det.device, "confidence": operating,
              "iou": 0.5, "step": args.step, **overall}
    if args.buckets > 1:
        result["buckets"] = evaluate_buckets(frames, det.classes, operating, args.buckets)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{det.name} on {args.source}: {len(frames)} frames, {overall['truth_boxes']} defects, "
          f"confidence {operating:g}, IoU 0.5, device {det.device}")
    print(_table([("all", overall)] + [(f"{b['t_start_s'] / 3600:.1f}-{b['t_end_s'] / 3600:.1f} h", b)
                                       for b in result.get("buckets", [])], det.classes))
    return 0


def _run_dataset(args: argparse.Namespace, det: Any, operating: float) -> int:
    from engine.datasets.labelled import open_dataset
    from engine.inference.evaluate import coco_results, collect_labelled, evaluate

    ds = open_dataset(args.dataset, args.split, args.images)
    if not ds.images:
        raise UserError(f"the {ds.describe()} holds no images")
    tty = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if tty:
            print(f"\r{done}/{total} images", end="", file=sys.stderr, flush=True)

    try:
        run_ = collect_labelled(ds.images, ds.classes, det, operating, progress=progress,
                                category_ids=ds.category_ids)
    finally:
        if tty:
            print(file=sys.stderr)
    overall = evaluate(run_.frames, run_.classes, operating)
    shared = [c for c in run_.classes if c in det.classes and overall["ap50"].get(c) is not None]
    result = {"dataset": str(args.dataset), "kind": ds.kind, "split": ds.split, "model": det.name,
              "device": det.device, "confidence": operating, "iou": 0.5, **overall,
              "classes": list(run_.classes),
              "map50_shared_classes": (round(sum(overall["ap50"][c] for c in shared) / len(shared), 4)
                                       if shared else None),
              "dataset_classes_not_in_model": run_.truth_not_in_model,
              "model_classes_not_in_dataset": run_.predictions_not_in_dataset}
    if args.save_predictions is not None:
        try:
            args.save_predictions.write_text(json.dumps(coco_results(run_)), encoding="utf-8")
        except OSError as e:
            raise UserError(f"{args.save_predictions} cannot be written ({e.strerror or e})") from None
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{det.name} on the {ds.describe()}: {len(run_.frames)} images, {overall['truth_boxes']} defects, "
          f"confidence {operating:g}, IoU 0.5, device {det.device}")
    print(_table([("all", overall)], run_.classes))
    for c, n in run_.truth_not_in_model.items():
        print(f"the model has no class {c!r}: its {n} boxes count as missed (AP 0); mAP over the classes both "
              f"know: {_fmt(result['map50_shared_classes'])}")
    for c, n in run_.predictions_not_in_dataset.items():
        print(f"the dataset labels no {c!r}: {n} such predictions were left out of the figures")
    return 0


def _fmt(v: float | None) -> str:
    return "   -" if v is None else f"{v:.3f}"


def _table(rows: list[tuple[str, dict[str, Any]]], classes: tuple[str, ...]) -> str:
    head = f"{'span':<16}{'frames':>7}{'defects':>8}{'prec':>7}{'recall':>7}{'F1':>7}{'mAP50':>7}" + "".join(
        f"{('AP ' + c)[:13]:>14}" for c in classes)
    lines = [head]
    for label, r in rows:
        lines.append(f"{label:<16}{r['frames']:>7}{r['truth_boxes']:>8}{_fmt(r['precision']):>7}{_fmt(r['recall']):>7}"
                     f"{_fmt(r['f1']):>7}{_fmt(r['map50']):>7}" + "".join(f"{_fmt(r['ap50'][c]):>14}" for c in classes))
    return "\n".join(lines)
