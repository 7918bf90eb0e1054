"""``inspection-station model``: the built-in detector's training, and what a model file is."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from app.cli.common import UserError, positive_int


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    m = sub.add_parser("model", parents=[common], help="train the built-in detector, show a model's card")
    msub = m.add_subparsers(dest="model", metavar="WHAT", required=True)
    t = msub.add_parser("train-builtin", parents=[common],
                        help="train the built-in detector on the simulated nominal line (about half an hour "
                             "on two CPU cores); writes PATH and its card PATH.json")
    t.add_argument("--out", required=True, type=Path, help="weights file to write, e.g. builtin_detector.pt")
    t.add_argument("--seed", type=int, default=0, help="seed of weights and crops (default 0, as shipped)")
    t.add_argument("--steps", type=positive_int, default=None,
                   help="optimiser steps (default: as shipped); fewer for a quick try")
    t.set_defaults(func=train_builtin)
    ms = msub.add_parser("measure-builtin", parents=[common],
                         help="choose the threshold and measure the built-in model again; rewrite its card's quality")
    ms.add_argument("--weights", type=Path, default=None,
                    help="weights file with its card beside it (default: the shipped built-in model)")
    ms.set_defaults(func=measure_builtin)
    e = msub.add_parser("export-onnx", parents=[common],
                        help="write the built-in detector as ONNX, for ONNX Runtime (resources/builtin_detector.onnx "
                             "beside the weights is used when ONNX Runtime is installed)")
    e.add_argument("--out", required=True, type=Path, help="the .onnx file to write")
    e.add_argument("--weights", type=Path, default=None, help="weights file with its card beside it "
                                                               "(default: the shipped built-in model)")
    e.set_defaults(func=export_onnx)
    i = msub.add_parser("info", parents=[common], help="print a model's card (default: the built-in model)")
    i.add_argument("path", nargs="?", help="an ONNX, .pt2 or TorchScript file (default: the built-in model)")
    i.add_argument("--json", action="store_true", help="the card as JSON")
    i.set_defaults(func=info)
    from app.cli import model_registry

    model_registry.register(msub, common)


def train_builtin(args: argparse.Namespace, config: dict[str, Any]) -> int:
    from dataclasses import replace

    from engine.inference.train import TrainConfig
    from engine.inference.train import train_builtin as train

    out: Path = args.out.expanduser()
    if out.suffix != ".pt":
        raise UserError(f"the weights file must end in .pt (its card is written beside it as .json), not {out.name}")
    if out.parent and not out.parent.exists():
        raise UserError(f"folder {out.parent} does not exist")
    from app.cli.credentials import require

    require(args, "models", "authored", config, action="model train-builtin", obj=str(out))
    cfg = replace(TrainConfig(), seed=args.seed, **({"steps": args.steps} if args.steps else {}))
    card = train(str(out), cfg, progress=sys.stderr)
    q = card["quality"]
    print(f"wrote {out} and {out.with_suffix('.json')} (sha256 {card['sha256'][:16]}...); unseen nominal seeds: "
          f"F1 {q['f1']:.3f}, precision {q['precision']:.3f}, recall {q['recall']:.3f}, mAP@0.5 {q['map50']:.3f}")
    return 0


def measure_builtin(args: argparse.Namespace, config: dict[str, Any]) -> int:
    """The card's threshold and quality measured again on the same seeds (after a change to the decoding or
    the box refinement, which leave the weights as they are)."""
    from engine.inference.builtin import builtin_paths, card_path_for
    from engine.inference.train import measure_card

    weights, card = builtin_paths() if args.weights is None else (args.weights.expanduser(),
                                                                  card_path_for(args.weights.expanduser()))
    from app.cli.credentials import require

    require(args, "models", "authored", config, action="model measure-builtin", obj=str(weights))
    try:
        q = measure_card(weights, card, progress=sys.stderr)["quality"]
    except PermissionError:
        raise UserError(f"cannot write {card}: permission denied") from None
    print(f"rewrote {card}: confidence {q['confidence']:g}; unseen nominal seeds: F1 {q['f1']:.3f}, precision "
          f"{q['precision']:.3f}, recall {q['recall']:.3f}, mAP@0.5 {q['map50']:.3f} (network boxes only: F1 "
          f"{q['network_boxes_only']['f1']:.3f})")
    return 0


def export_onnx(args: argparse.Namespace, config: dict[str, Any]) -> int:
    from engine.inference.builtin import export_onnx as export

    out: Path = args.out.expanduser()
    if out.suffix != ".onnx":
        raise UserError(f"the file must end in .onnx, not {out.name}")
    if not out.parent.exists():
        raise UserError(f"folder {out.parent} does not exist")
    export(out, args.weights.expanduser() if args.weights else None)
    print(f"wrote {out} ({out.stat().st_size // 1024} KB)")
    return 0


def info(args: argparse.Namespace, config: dict[str, Any]) -> int:
    from engine.inference import load_detector, prove

    det = load_detector(args.path, device="cpu")
    card = dict(det.card)
    card["proven"] = prove(det)  # loaded and run on one frame: classes and input as the station sees them
    card.setdefault("classes", list(det.classes))
    w, h = det.input_size
    card["input"] = f"{w}x{h} RGB in [0, 1], letterboxed (grey 114)"
    if args.path is None:
        card["sha256_matches_file"] = card.get("sha256") == det.sha256
    if args.json:
        print(json.dumps(card, indent=2))
        return 0
    print(_render(card))
    return 0


def _render(d: Any, indent: int = 0) -> str:
    pad = "  " * indent
    lines = []
    for k, v in d.items():
        if isinstance(v, dict):
            lines.append(f"{pad}{k}:")
            lines.append(_render(v, indent + 1))
        elif isinstance(v, list):
            lines.append(f"{pad}{k}: {', '.join(map(str, v))}")
        else:
            lines.append(f"{pad}{k}: {v}")
    return "\n".join(lines)
