"""A fine-tuning run from end to end (``model train``): the parent's weights in; the new weights, measured on the
bundles' held-out frames, and their card out.

The card has the parent card's form (classes, input, threshold, box refinement ... copied), its own SHA-256, a
``training`` record, a ``lineage`` (the parent's SHA-256, each bundle with the SHA-256 of its manifest and of
its ``SHA256SUMS``, boxes per origin and class, frames per kind) and a ``quality`` measured on the bundles'
test split (else val), beside the parent's figures on the same frames. The weights and the card are written
only when everything before succeeded: first under temporary names beside ``out``, then renamed (weights, then
card), so an interrupted run leaves the files as they were.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import torch

from engine.inference.finetune import (
    ORIGINS,
    FinetuneConfig,
    FinetuneError,
    TrainingData,
    add_simulated_replay,
    finetune,
    open_bundles,
    read_bundles,
)
from engine.inference.finetune_replay import normalise_lamp
from engine.inference.lamp_norm import LampNorm
from engine.inference.model import TinyCenterNet
from engine.inference.train import _log

FIGURES = ("precision", "recall", "f1", "ap50", "map50")


def load_parent(base: str | Path | None) -> tuple[Path, Path, dict[str, Any], dict[str, torch.Tensor], str]:
    """The parent's weights file, card file, card, state dict and SHA-256; ``None``: the shipped built-in model."""
    from engine.inference.builtin import builtin_paths, card_path_for, read_card, verify_against_card

    if base is None:
        weights, card_file = builtin_paths()
    else:
        weights = Path(base).expanduser()
        if not weights.exists():
            raise FinetuneError(f"base model {weights} does not exist")
        card_file = card_path_for(weights)
        if weights.suffix != ".pt" or not weights.is_file() or not card_file.is_file():
            raise FinetuneError(f"base model {weights.name} is not a weights file of the built-in network with its "
                                f"card beside it (NAME.pt and NAME.json), the only kind that can be fine-tuned")
    card = read_card(card_file)
    sha = verify_against_card(weights, card, "base model weights")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - whatever is wrong with the file is one sentence
        raise FinetuneError(f"base model {weights.name} cannot be read as a state dict ({type(e).__name__})") from None
    try:
        TinyCenterNet(len(card["classes"])).load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError, ValueError):
        raise FinetuneError(f"base model {weights.name} does not fit the built-in network") from None
    return weights, card_file, card, state, sha


def held_out(bundles: list[Path], models: dict[str, tuple[Path, Path]], classes: tuple[str, ...],
             confidence: float, progress: TextIO | None = None) -> dict[str, Any]:
    """Each model's figures on the bundles' test split (else val), all bundles together and per bundle."""
    from engine.datasets.labelled import DatasetError, open_bundle
    from engine.inference.builtin import BuiltinDetector
    from engine.inference.evaluate import collect_labelled, evaluate

    images: list[Any] = []
    spans: list[tuple[str, str | None, int, int]] = []
    for p in bundles:
        split = None
        for s in ("test", "val"):
            try:
                ds = open_bundle(Path(p).expanduser(), s)
            except DatasetError:
                continue
            if ds.images:
                split = s
                break
        spans.append((str(p), split, len(images), len(images) + (len(ds.images) if split else 0)))
        if split:
            images += ds.images
    if not images:
        return {"measured_on": "nothing: no bundle has a test or val split with images"}
    out: dict[str, Any] = {
        "measured_on": "; ".join(f"{p}: {s} split, {b - a} frames" for p, s, a, b in spans if s),
        "truth": "the operators' corrected truth (as eval --dataset BUNDLE reads it)",
        "iou": 0.5, "confidence": confidence}
    for who, (weights, card) in models.items():
        det = BuiltinDetector(weights, card=card, device="cpu", confidence=0.01)
        run = collect_labelled(images, classes, det, confidence)
        res = evaluate(run.frames, run.classes, confidence)
        entry = {k: res[k] for k in ("frames", "truth_boxes", *FIGURES)}
        entry["bundles"] = [{"path": p, "split": s, **{k: r[k] for k in ("frames", *FIGURES)}}
                            for p, s, a, b in spans if s
                            for r in [evaluate(run.frames[a:b], run.classes, confidence)]]
        out[who] = entry
        _log(progress, f"{who} on the held-out frames: F1 {res['f1']:.3f}, precision {res['precision']:.3f}, "
                       f"recall {res['recall']:.3f}, mAP@0.5 {res['map50'] if res['map50'] is not None else '-'}")
    return out


def lineage(parent: Path, parent_card: dict[str, Any], parent_sha: str, data: TrainingData) -> dict[str, Any]:
    by_origin = {o: dict(data.boxes[o]) for o in ORIGINS}
    return {
        "parent": {"sha256": parent_sha, "file": parent.name, "name": parent_card.get("name"),
                   "version": parent_card.get("version")},
        "bundles": data.bundles,
        "boxes_by_origin": {o: sum(v.values()) for o, v in by_origin.items()},
        "boxes_by_origin_and_class": by_origin,
        "boxes_by_class": {c: sum(by_origin[o].get(c, 0) for o in ORIGINS if o != "rejected") for c in data.classes},
        "rejected_by_class": by_origin["rejected"],
        "frames": dict(data.frames),
        "left_out": dict(data.left_out),
        "origins": "confirmed, relabelled (class or box corrected), missed (drawn by an operator), undecided (a "
                   "detection left standing on a reviewed frame): positives; rejected: pushed down where they "
                   "were; replay: the bundle's replay frames and nominal simulated frames",
    }


def make_card(out: Path, sha: str, parent: Path, parent_card: dict[str, Any], parent_sha: str, data: TrainingData,
              cfg: FinetuneConfig, record: dict[str, Any], command: str, norm: LampNorm | None = None
              ) -> dict[str, Any]:
    keep = {k: v for k, v in parent_card.items() if k not in ("quality", "training", "lineage", "runtime",
                                                              "sha256", "weights_file", "limitations",
                                                              "input_normalisation")}
    base_name = str(parent_card.get("name", "tiny-centernet-defects")).removesuffix("-finetuned")
    return {
        **keep,
        "name": f"{base_name}-finetuned",
        "weights_file": out.name,
        "weights_format": "PyTorch state_dict, load with torch.load(weights_only=True)",
        "sha256": sha,
        "training": {
            "command": command,
            "kind": "fine-tuned from operators' corrections (engine/inference/finetune.py)",
            **cfg.to_dict(),
            "lamp_norm": norm.percentile if norm is not None else 0.0,  # as applied (a parent's is kept)
            "optimizer": "AdamW, warm-up then cosine decay",
            "augmentation": "random crops" + (f"; lamp output, colour temperature and slope on "
                                              f"{cfg.photometric_share:.0%} of the corrected frames' crops and "
                                              f"{cfg.replay_lamp_share:.0%} of the replay crops"
                                              if cfg.photometric_share or cfg.replay_lamp_share else ""),
            "steps_done": record["steps"], "stopped": record["stopped"],
            "torch": torch.__version__, "read_s": record["read_s"], "train_s": record["train_s"],
            **({"corrected_lamp_rgb": record["corrected_lamp_rgb"]} if "corrected_lamp_rgb" in record else {}),
            "reproducibility": "same weights (every tensor equal) from the same seed on the same CPU type, thread "
                               "count and torch version, unless the time cap stopped it; the file's SHA-256 differs "
                               "(torch.save stamps each file with a random id)",
        },
        **({"input_normalisation": norm.to_card()} if norm is not None else {}),
        "lineage": lineage(parent, parent_card, parent_sha, data),
        "limitations": "fine-tuned on the frames of the bundles named in lineage; measured on their held-out "
                       "split only (see quality): check it on the line (eval, shadow) before it replaces a model. "
                       + str(parent_card.get("limitations", "")),
    }


def _tmp(out: Path, suffix: str) -> Path:
    return out.with_name(f".{out.stem}{suffix}.{os.getpid()}.tmp")


def train_from_bundles(bundles: list[Path], out: Path, base: str | Path | None = None,
                       cfg: FinetuneConfig | None = None, progress: TextIO | None = sys.stderr,
                       command: str = "", on_step: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """Fine-tune ``base`` (default: the built-in model) on ``bundles``; write ``out`` and its card beside it
    (``out`` with ``.json``); return the card. Errors that the user can fix are one sentence
    (:class:`FinetuneError` and the other StationErrors); Ctrl+C writes nothing."""
    from engine.core.files import write_atomic
    from engine.inference.builtin import card_path_for, sha256_of
    from engine.simulation.defects import DEFECT_CLASSES

    cfg = cfg or FinetuneConfig()
    out = Path(out).expanduser()
    if not bundles:
        raise FinetuneError("name at least one bundle to train on (--bundle)")
    if cfg.lamp_norm != 0 and not 50 <= cfg.lamp_norm <= 100:
        raise FinetuneError(f"the lamp normalisation's percentile must be 0 (off) or 50-100, not {cfg.lamp_norm:g}")
    t0 = time.monotonic()
    parent, parent_card_file, parent_card, state, parent_sha = load_parent(base)
    try:
        LampNorm.from_card(parent_card)
    except ValueError as e:
        raise FinetuneError(f"base model card {parent_card_file.name} cannot be used: {e}") from None
    if out.resolve() == parent.resolve():
        raise FinetuneError(f"{out} is the base model itself; write the new weights to another file")
    classes = tuple(parent_card["classes"])
    opened = open_bundles(list(bundles))  # every check before the first line of progress
    _log(progress, f"parent {parent} (sha256 {parent_sha[:16]}...), classes {', '.join(classes)}")
    data = read_bundles(opened, classes, progress)
    if classes == tuple(DEFECT_CLASSES):
        add_simulated_replay(data, cfg, progress)
    norm = None
    if cfg.lamp_norm > 0 or "input_normalisation" in parent_card:  # a parent's normalisation is kept: it saw no other
        norm, where = normalise_lamp(data, cfg.lamp_norm, parent_card)
        _log(progress, f"frames normalised to the lamp reference (R, G, B) "
                       f"{', '.join(f'{v:.1f}' for v in norm.reference)} at their {norm.percentile:g}th percentile, "
                       f"from {where}" if norm is not None else f"{where}: frames left as they are")
    read_s = time.monotonic() - t0
    f = data.frames
    _log(progress, f"{f['corrected']} corrected frames ({f['negative_only']} with rejections only), "
                   f"{f['unsure_left_out']} unsure left out, {len(data.replay)} replay frames "
                   f"({f['replay_bundle']} from the bundles, {f['replay_simulated']} simulated nominal); boxes: "
                   + ", ".join(f"{o} {sum(data.boxes[o].values())}" for o in ORIGINS))
    _log(progress, f"fine-tuning {cfg.steps} steps, batch {cfg.batch} crops of {cfg.crop} px, lr {cfg.lr:g}, "
                   f"seed {cfg.seed}" + (f", at most {cfg.minutes:g} min" if cfg.minutes else ""))
    new_state, record = finetune(state, data, cfg, progress=progress, on_step=on_step)
    record["read_s"] = round(read_s, 1)
    tmp_w, tmp_c = _tmp(out, ".pt"), _tmp(out, ".json")
    try:
        torch.save(new_state, tmp_w)
        sha = sha256_of(tmp_w)
        card = make_card(out, sha, parent, parent_card, parent_sha, data, cfg, record, command, norm)
        tmp_c.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        conf = float(card.get("confidence_threshold", 0.3))
        _log(progress, "measuring the new weights and the parent on the bundles' held-out frames")
        q = held_out(bundles, {"model": (tmp_w, tmp_c), "parent": (parent, parent_card_file)}, classes, conf,
                     progress)
        card["quality"] = {**{k: v for k, v in q.items() if k not in ("model", "parent")},
                           **q.get("model", {}), "parent_on_the_same_frames": q.get("parent")}
        card["training"]["total_s"] = round(time.monotonic() - t0, 1)
        os.replace(tmp_w, out)
        write_atomic(card_path_for(out), (json.dumps(card, indent=2) + "\n").encode("utf-8"))
    finally:
        tmp_w.unlink(missing_ok=True)
        tmp_c.unlink(missing_ok=True)
    return card
