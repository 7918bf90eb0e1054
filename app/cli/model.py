"""``inspection-station model``: the built-in detector's training, and what a model file is."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from app.cli.common import UserError, positive_float, positive_int


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
    ft = msub.add_parser("train", parents=[common],
                         help="fine-tune the built-in network from feedback bundles' corrected frames (their train "
                              "split); writes PATH and its card PATH.json, measured on the bundles' test split")
    ft.add_argument("--bundle", action="append", required=True, type=Path, metavar="BUNDLE",
                    help="a feedback bundle (folder or ZIP) from export; repeat for more")
    ft.add_argument("--base", type=Path, default=None, metavar="MODEL",
                    help="the weights to start from, a .pt with its .json card beside it, e.g. the current "
                         "champion (default: the built-in model)")
    ft.add_argument("--out", required=True, type=Path, help="weights file to write, e.g. tuned.pt")
    ft.add_argument("--seed", type=int, default=0, help="seed of crops and augmentation (default 0)")
    ft.add_argument("--steps", type=positive_int, default=None, help="optimiser steps (default 900)")
    ft.add_argument("--minutes", type=positive_float, default=None,
                    help="stop training after this many minutes of wall time (the card says where it stopped)")
    ft.add_argument("--replay-frames", type=int, default=None, metavar="N",
                    help="top the bundles' replay frames up to N with simulated nominal frames (default 600)")
    ft.set_defaults(func=train_finetune)
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


def train_finetune(args: argparse.Namespace, config: dict[str, Any]) -> int:
    """Fine-tune from operators' corrections (engine/inference/finetune.py); Ctrl+C writes nothing."""
    from dataclasses import replace

    from engine.inference.finetune import FinetuneConfig, Interrupted
    from engine.inference.finetune_card import train_from_bundles

    out: Path = args.out.expanduser()
    if out.suffix != ".pt":
        raise UserError(f"the weights file must end in .pt (its card is written beside it as .json), not {out.name}")
    if not out.parent.is_dir():
        raise UserError(f"folder {out.parent} does not exist")
    missing = [b for b in args.bundle if not b.expanduser().exists()]
    if missing:
        raise UserError(f"bundle {missing[0]} does not exist")
    if args.replay_frames is not None and args.replay_frames < 0:
        raise UserError(f"--replay-frames must be 0 or more, got {args.replay_frames}")
    from app.cli.credentials import require

    require(args, "models", "authored", config, action="model train", obj=str(out))
    cfg = replace(FinetuneConfig(), seed=args.seed, minutes=args.minutes,
                  **({"steps": args.steps} if args.steps else {}),
                  **({"replay_frames": args.replay_frames} if args.replay_frames is not None else {}))
    command = "inspection-station model train " + " ".join(
        [f"--bundle {b}" for b in args.bundle] + ([f"--base {args.base}"] if args.base else [])
        + [f"--out {out}", f"--seed {args.seed}"] + ([f"--steps {args.steps}"] if args.steps else [])
        + ([f"--minutes {args.minutes:g}"] if args.minutes else [])
        + ([f"--replay-frames {args.replay_frames}"] if args.replay_frames is not None else []))
    try:
        card = train_from_bundles(list(args.bundle), out, args.base, cfg, progress=sys.stderr, command=command)
    except Interrupted as e:
        print(f"inspection-station: {e}", file=sys.stderr)
        raise
    q = card.get("quality", {})
    figures = (f"held-out {q.get('measured_on')}: F1 {q['f1']:.3f}, precision {q['precision']:.3f}, recall "
               f"{q['recall']:.3f} (parent: F1 {q['parent_on_the_same_frames']['f1']:.3f})"
               if "f1" in q else "no held-out frames to measure on")
    print(f"wrote {out} and {out.with_suffix('.json')} (sha256 {card['sha256'][:16]}..., "
          f"{card['training']['steps_done']} steps, {card['training']['total_s']:.0f} s); {figures}")
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
