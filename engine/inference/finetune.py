"""Fine-tuning the built-in detector from operators' corrections: ``model train --bundle B --out M.pt``.

The network (:class:`~engine.inference.model.TinyCenterNet`) starts from a parent's weights (the shipped ones,
or a model fine-tuned before, with its card beside it) and learns from the **train split** of one or more
feedback bundles (:mod:`engine.datasets.bundle`), read as the bundle's corrected truth:

* positives: the boxes an operator confirmed, relabelled (a corrected class or box) or drew for a missed
  defect, and the detections of a reviewed frame that the operator let stand (``undecided``);
* negatives: every rejected detection (``decisions.csv``) pushes the heat map of its class down inside its
  box, beyond the usual penalty on cells without a defect; a frame whose only decisions were rejections is a
  negative frame;
* left out: every frame an operator marked unsure, and the val and test splits (the test split, else val,
  is where the new weights are measured);
* replay, so that the model keeps what it did well: the bundle's replay frames, topped up to
  :attr:`FinetuneConfig.replay_frames` with nominal frames of the simulated line rendered from the built-in
  model's own training seeds (1000-1099, never used for evaluation); on replay crops the frozen parent's own
  heat maps, offsets and sizes are soft targets too (distillation, :func:`distill_loss`), so that the model
  keeps the parent's behaviour on the nominal line and not only its labels. The distillation can weigh the
  cells where the parent finds something above the empty plate (:attr:`FinetuneConfig.distill_fg`), and the
  replay crops around defects can go where the student has drifted furthest from the parent
  (:class:`ReplayFocus`, prioritised replay).

Every frame, corrected and replay, is first normalised to the parent's lamp (:attr:`FinetuneConfig.lamp_norm`,
:mod:`engine.inference.lamp_norm`), and the new model's card carries that stage, so the network sees every lamp as
the one it learnt under. Without it, a share of the crops from corrected frames can get a photometric change
(lamp output, colour temperature, left-right slope), and a share of the replay crops can be shown to the student
under another lamp (a random one, or the corrected frames' own: :attr:`FinetuneConfig.replay_matched_share`)
while the parent sees them unchanged; both are off by default.

Reproducible: the data are read in the bundles' order, crops and augmentation come from ``seed``, and PyTorch
runs deterministically on a fixed number of threads; the same seed gives the same weights, bit for bit, on
the same CPU type, thread count and torch version. A time cap (``minutes``) stops training early (the card
says so, and how many steps were made), which then depends on the machine's speed.

The target building and the losses are those of from-scratch training (:mod:`engine.inference.train`).
Figures and the card are written by :mod:`engine.inference.finetune_card`.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch

from engine.core.errors import StationError
from engine.inference.common import letterbox
from engine.inference.finetune_replay import ReplayFocus, lamp_ratio
from engine.inference.model import INPUT_H, INPUT_W, STRIDE, TinyCenterNet
from engine.inference.train import TrainConfig, _log, box_loss, focal_loss, optimiser_step, render_dataset, targets

ORIGINS = ("confirmed", "relabelled", "missed", "undecided", "rejected", "replay")
_STATUS_ORIGIN = {"confirmed": "confirmed", "corrected": "relabelled", "missed": "missed", "undecided": "undecided",
                  "unreviewed": "replay", "predicted": "replay"}


EARLY_LAYERS = ("stem", "mid")  # the network's first stages: the ones that see the pixels


class FinetuneError(StationError):
    """A fine-tuning run cannot start; the message says why in one sentence."""


@dataclass(frozen=True)
class FinetuneConfig:
    seed: int = 0
    steps: int = 900
    batch: int = 16
    crop: int = 256  # input pixels (a multiple of STRIDE)
    lr: float = 5e-4
    weight_decay: float = 1e-4
    warmup: int = 50
    threads: int = 2
    replay_share: float = 0.5  # share of each batch's crops taken from replay frames
    replay_frames: int = 600  # the replay set is topped up with simulated nominal frames to this many
    replay_sim_seeds: tuple[int, ...] = tuple(range(1000, 1100))  # the built-in model's training seeds
    object_crop_share: float = 0.75  # crops placed around a defect; else around a rejected box or anywhere
    rejected_crop_share: float = 0.5  # of the crops of a frame with rejections not around a defect
    rejected_weight: float = 4.0  # the extra penalty on a rejected box's cells, relative to the usual one
    # crops of corrected frames whose lamp is changed. 0 by default: with the lamp normalised (lamp_norm) the
    # network never sees another lamp's frame, and teaching it one cost nominal F1 (README, runs 28-29); without
    # lamp_norm, 0.5 of each was best (run 27)
    photometric_share: float = 0.0
    # replay crops whose lamp is changed: the student sees the crop under the other lamp, the frozen parent the
    # crop as it was (its outputs there are the targets), so the parent's behaviour is taught under any lamp
    replay_lamp_share: float = 0.0
    minutes: float | None = None  # wall-time cap on the training loop
    freeze_bn_stats: bool = False  # True: batch norm keeps the parent's running statistics (worse on both lines)
    distill_weight: float = 4.0  # replay crops: pull the heat map and boxes towards the frozen parent's outputs
    l2sp_weight: float = 0.0  # pull every weight towards the parent's (L2-SP); 0: off
    # after training, each weight moves this share of the way back to the parent's (weight-space averaging of
    # the fine-tuned and the parent network, as WiSE-FT): keeps more of the parent's line at a small cost on the new
    parent_share: float = 0.2
    # the learning rate of the layers after the first stages (stem, mid) relative to theirs: below 1 adapts the
    # layers that see the pixels (a lamp, a lens) and keeps the ones that decide (surgical fine-tuning)
    late_lr_scale: float = 1.0
    # prioritised replay: a replay crop placed around a defect (object_crop_share of them) picks the defect among
    # all replay defects with probability growing with how far the student's score there was from the parent's
    # when last seen (to this power); 0: off, a replay frame at random and then one of its defects. Needs the
    # parent (distill_weight above 0).
    replay_focus: float = 1.0
    # the heat-map distillation of a cell counts (1 + this x the parent's strongest score there): what the parent
    # finds weighs more than the empty plate around it; 0: every cell the same
    distill_fg: float = 10.0
    # of the replay crops put under another lamp, this share gets the corrected frames' own lamp (the ratio of
    # their mean colour to the replay frames', within 5 %) instead of a random one: the nominal line as it would
    # look under the drifted lamp, with the parent's answers on the unchanged crop as targets
    replay_matched_share: float = 0.5
    # lamp normalisation (engine/inference/lamp_norm.py): every frame, in training and in the new model's use, has
    # its channels scaled so that this percentile of each matches the replay frames' (the parent's reference, when
    # its card has one); the new card carries it. 0: off, the frames as they are
    lamp_norm: float = 99.0

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        s = self.replay_sim_seeds
        d["replay_sim_seeds"] = f"{min(s)}-{max(s)}" if s else ""
        return d


@dataclass
class Pool:
    """Frames at the model's input size with their targets; ``reject`` marks rejected boxes' cells per class."""

    images: list[np.ndarray] = field(default_factory=list)  # H x W x 3 uint8 RGB
    heat: list[np.ndarray] = field(default_factory=list)  # C x H/S x W/S float16
    objects: list[np.ndarray] = field(default_factory=list)  # K x 7 (cls, ci, cj, dx, dy, lw, lh)
    reject: list[np.ndarray | None] = field(default_factory=list)  # C x H/S x W/S uint8, or None
    reject_cells: list[np.ndarray] = field(default_factory=list)  # R x 3 (cls, ci, cj): rejected boxes' centres

    def __len__(self) -> int:
        return len(self.images)

    def add(self, image: np.ndarray, heat: np.ndarray, objects: np.ndarray, reject: np.ndarray | None = None,
            reject_cells: np.ndarray | None = None) -> None:
        self.images.append(image)
        self.heat.append(heat.astype(np.float16))
        self.objects.append(objects)
        self.reject.append(reject)
        self.reject_cells.append(reject_cells if reject_cells is not None else np.zeros((0, 3), np.int64))


@dataclass
class TrainingData:
    corrected: Pool
    replay: Pool
    classes: tuple[str, ...]
    bundles: list[dict[str, Any]]  # per bundle: path, hashes, frames read
    frames: Counter  # corrected, negative_only, unsure_left_out, replay_bundle, replay_simulated
    boxes: dict[str, Counter]  # origin -> class -> boxes
    left_out: Counter = field(default_factory=Counter)  # boxes not used, by why
    lamp: np.ndarray | None = None  # RGB gains from the replay frames' mean colour to the corrected frames'


# ------------------------------------------------------------------ reading bundles

def _to_input(bgr: np.ndarray) -> tuple[np.ndarray, Callable[[Any], np.ndarray]]:
    """A frame (BGR) letterboxed to the model's input (RGB), and how its boxes (x0 y0 x1 y1, frame pixels) move."""
    img, lb = letterbox(bgr, INPUT_W, INPUT_H)
    shift = np.array([lb.pad_x, lb.pad_y, lb.pad_x, lb.pad_y], np.float32)

    def boxes(b: Any) -> np.ndarray:
        return np.asarray(b, np.float32).reshape(-1, 4) * lb.scale + shift

    return np.ascontiguousarray(img[:, :, ::-1]), boxes


def _reject_mask(boxes: np.ndarray, classes: np.ndarray, num_classes: int, gw: int, gh: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Cells under each rejected box (input pixels) in its class's channel; and each box's centre cell."""
    mask = np.zeros((num_classes, gh, gw), np.uint8)
    centres = []
    for (x0, y0, x1, y1), c in zip(boxes, classes):
        j0, j1 = max(0, int(x0 // STRIDE)), min(gw, math.ceil(x1 / STRIDE))
        i0, i1 = max(0, int(y0 // STRIDE)), min(gh, math.ceil(y1 / STRIDE))
        if j1 > j0 and i1 > i0:
            mask[int(c), i0:i1, j0:j1] = 1
            centres.append((int(c), min(gh - 1, (i0 + i1) // 2), min(gw - 1, (j0 + j1) // 2)))
    return mask, np.array(centres, np.int64).reshape(-1, 3)


def _rejected_boxes(reader: Any, shas: set[str]) -> dict[str, list[tuple[tuple[float, ...], str]]]:
    """The effective rejections of the bundle's decisions on the given images: image hash -> (box, class)."""
    from engine.datasets.bundle.formats import DECISIONS_CSV, read_table

    out: dict[str, list[tuple[tuple[float, ...], str]]] = {}
    if not reader.exists(DECISIONS_CSV):
        return out
    for r in read_table(reader.read(DECISIONS_CSV)):
        if r.get("verdict") != "reject" or str(r.get("effective")) != "True" or r.get("image_sha256") not in shas:
            continue
        try:
            box = tuple(float(v) for v in json.loads(r["old_box"]))
        except (KeyError, TypeError, ValueError):
            continue
        if len(box) == 4 and r.get("old_class"):
            out.setdefault(r["image_sha256"], []).append((box, r["old_class"]))
    return out


def bundle_hashes(reader: Any) -> dict[str, str | None]:
    """The SHA-256 of the bundle's manifest and of its SHA256SUMS (which covers every other file)."""
    from engine.datasets.bundle.formats import MANIFEST, SUMS

    return {"manifest_sha256": reader.sha256(MANIFEST) if reader.exists(MANIFEST) else None,
            "sums_sha256": reader.sha256(SUMS) if reader.exists(SUMS) else None}


def open_bundles(paths: list[Path]) -> list[tuple[Path, Any, list[dict[str, Any]], dict[str, Any]]]:
    """Each bundle's reader, train-split images and COCO truth, checked before anything is decoded: a missing
    bundle, one without a train split, or train splits without a corrected frame is a :class:`FinetuneError`."""
    from engine.datasets.bundle.check import BundleReader
    from engine.datasets.bundle.formats import MANIFEST, coco_split_name

    opened: list[tuple[Path, Any, list[dict[str, Any]], dict[str, Any]]] = []
    try:
        for path in paths:
            path = Path(path).expanduser()
            if not path.exists():
                raise FinetuneError(f"bundle {path} does not exist")
            reader = BundleReader(path)
            opened.append((path, reader, [], {}))
            if not reader.exists(MANIFEST):
                raise FinetuneError(f"{path} is not a feedback bundle (it has no {MANIFEST})")
            name = coco_split_name("train")
            if not reader.exists(name):
                raise FinetuneError(f"bundle {path} has no train split ({name}); export it again to get one")
            gt = reader.json(name)
            images = gt.get("images", []) if isinstance(gt, dict) else []
            if not images:
                raise FinetuneError(f"the train split of bundle {path} holds no images")
            opened[-1] = (path, reader, images, gt)
        if not any("unsure" not in set(i.get("kinds") or ()) and set(i.get("kinds") or ()) != {"replay"}
                   for _, _, images, _ in opened for i in images):
            raise FinetuneError("the train split of " + ", ".join(str(p) for p in paths) + " holds no corrected "
                                "frames (only unsure or replay frames)")
    except BaseException:
        for _, reader, _, _ in opened:
            reader.close()
        raise
    return opened


def read_bundles(opened: list[tuple[Path, Any, list[dict[str, Any]], dict[str, Any]]], classes: tuple[str, ...],
                 progress: TextIO | None = None) -> TrainingData:
    """The train split of each bundle (from :func:`open_bundles`, closed here), as corrected frames and replay
    frames at the model's input size."""
    import cv2

    gw, gh = INPUT_W // STRIDE, INPUT_H // STRIDE
    idx = {c: i for i, c in enumerate(classes)}
    frames = Counter({k: 0 for k in ("corrected", "negative_only", "without_boxes", "unsure_left_out", "replay_bundle",
                                     "replay_simulated")})
    data = TrainingData(Pool(), Pool(), classes, [], frames, {o: Counter() for o in ORIGINS})
    try:
        for path, reader, images, gt in opened:
            cats = {int(c["id"]): str(c["name"]) for c in gt.get("categories", [])}
            anns: dict[int, list[dict[str, Any]]] = {}
            for a in gt.get("annotations", []):
                anns.setdefault(int(a["image_id"]), []).append(a)
            rejected = _rejected_boxes(reader, {Path(str(i["file_name"])).stem for i in images})
            used = 0
            t0 = time.monotonic()
            for img in images:
                kinds = set(img.get("kinds") or ())
                if "unsure" in kinds:
                    data.frames["unsure_left_out"] += 1
                    continue
                replay = kinds == {"replay"}
                raw = cv2.imdecode(np.frombuffer(reader.read(f"images/{img['file_name']}"), np.uint8),
                                   cv2.IMREAD_COLOR)
                if raw is None:
                    raise FinetuneError(f"images/{img['file_name']} in {path} is not an image OpenCV can read")
                boxes, cls = [], []
                for a in anns.get(int(img["id"]), []):
                    cname = cats.get(int(a["category_id"]))
                    origin = "replay" if replay else _STATUS_ORIGIN.get(str(a.get("status")), "confirmed")
                    if cname not in idx:
                        data.left_out[f"boxes of class {cname} the model does not have"] += 1
                        continue
                    x, y, w, h = (float(v) for v in a["bbox"])
                    boxes.append((x, y, x + w, y + h))
                    cls.append(idx[cname])
                    data.boxes[origin][cname] += 1
                image, moved = _to_input(raw)
                heat, objs = targets(moved(boxes), np.array(cls, np.int64), len(classes), gw, gh)
                if replay:
                    data.replay.add(image, heat, objs)
                    data.frames["replay_bundle"] += 1
                    used += 1
                    continue
                rej = [(bx, c) for bx, c in rejected.get(Path(str(img["file_name"])).stem, []) if c in idx]
                mask = centres = None
                if rej:
                    mask, centres = _reject_mask(moved([bx for bx, _ in rej]), np.array([idx[c] for _, c in rej]),
                                                 len(classes), gw, gh)
                    for _, c in rej:
                        data.boxes["rejected"][c] += 1
                data.corrected.add(image, heat, objs, mask, centres)
                data.frames["corrected"] += 1
                if not boxes:
                    data.frames["negative_only" if rej else "without_boxes"] += 1
                used += 1
            data.bundles.append({"path": str(path), **bundle_hashes(reader), "train_images": len(images),
                                 "train_images_used": used})
            _log(progress, f"read {used} of {len(images)} train-split frames of {path} "
                           f"({time.monotonic() - t0:.0f} s)")
    finally:
        for _, reader, _, _ in opened:
            reader.close()
    return data


def add_simulated_replay(data: TrainingData, cfg: FinetuneConfig, progress: TextIO | None = None) -> None:
    """Top the replay set up to ``cfg.replay_frames`` with nominal frames of the built-in model's training seeds,
    spread over the seeds and their slots."""
    need = cfg.replay_frames - len(data.replay)
    if need <= 0 or not cfg.replay_sim_seeds:
        return
    seeds = cfg.replay_sim_seeds
    per_seed = max(1, math.ceil(need / len(seeds)))
    seeds = seeds[:math.ceil(need / per_seed)]
    t0 = time.monotonic()
    sim = render_dataset(TrainConfig(sim_seeds=tuple(seeds), frames_per_seed=per_seed, first_slot=30,
                                     slot_step=11 * 24 // per_seed))
    from engine.simulation.defects import DEFECT_CLASSES

    for i in range(min(need, len(sim.images))):
        data.replay.add(sim.images[i], sim.heat[i], sim.objects[i])
        for o in sim.objects[i]:
            data.boxes["replay"][DEFECT_CLASSES[int(o[0])]] += 1
    data.frames["replay_simulated"] += min(need, len(sim.images))
    _log(progress, f"rendered {min(need, len(sim.images))} nominal replay frames from simulator seeds "
                   f"{seeds[0]}-{seeds[-1]} ({time.monotonic() - t0:.0f} s)")


# ------------------------------------------------------------------ batches

def _lamp(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A crop (H x W x 3 float RGB in [0, 1]) under another lamp: output, colour temperature, left-right slope."""
    from engine.simulation.lamp import colour_temperature_gains

    gain = rng.uniform(0.6, 1.15)
    bgr = colour_temperature_gains(float(rng.uniform(3900.0, 6200.0)))
    slope = rng.uniform(-0.12, 0.12)
    lateral = 1.0 + slope * np.linspace(-0.5, 0.5, x.shape[1], dtype=np.float32)
    field_ = lateral[None, :, None] * (gain * bgr[::-1].astype(np.float32))[None, None, :]
    return np.clip(x * field_, 0.0, 1.0)


def make_batch(data: TrainingData, rng: np.random.Generator, cfg: FinetuneConfig,
               focus: ReplayFocus | None = None) -> tuple[torch.Tensor, ...]:
    """Crops from corrected and replay frames: images, heat targets, box targets, box mask, rejected cells,
    which crops are replay crops, and the replay crops as they were before a lamp change (for the parent).
    With ``focus``, a replay crop around a defect picks the defect by priority, and the picks are noted in it."""
    cs = cfg.crop // STRIDE
    c = len(data.classes)
    gh, gw = INPUT_H // STRIDE, INPUT_W // STRIDE
    if focus is not None:
        focus.picks.clear()  # the picks describe this batch only
    imgs = np.empty((cfg.batch, cfg.crop, cfg.crop, 3), np.float32)
    heat = np.empty((cfg.batch, c, cs, cs), np.float32)
    reg = np.zeros((cfg.batch, 4, cs, cs), np.float32)
    mask = np.zeros((cfg.batch, cs, cs), np.float32)
    reject = np.zeros((cfg.batch, c, cs, cs), np.float32)
    is_replay = np.zeros(cfg.batch, bool)
    clean: list[np.ndarray] = []
    for b in range(cfg.batch):
        replay = len(data.replay) > 0 and rng.random() < cfg.replay_share
        is_replay[b] = replay
        pool = data.replay if replay else data.corrected
        focused = replay and focus is not None
        pick = focus.draw(rng) if focused and rng.random() < cfg.object_crop_share else None  # type: ignore[union-attr]
        i = pick[1] if pick is not None else int(rng.integers(len(pool)))
        objs, centres = pool.objects[i], pool.reject_cells[i]
        around = None
        if pick is not None:
            o = objs[pick[2]]
            around = int(o[1]), int(o[2])
        elif not focused and len(objs) and rng.random() < cfg.object_crop_share:
            o = objs[int(rng.integers(len(objs)))]
            around = int(o[1]), int(o[2])
        elif len(centres) and rng.random() < cfg.rejected_crop_share:
            r = centres[int(rng.integers(len(centres)))]
            around = int(r[1]), int(r[2])
        if around is not None:
            oi = int(np.clip(around[0] - rng.integers(2, cs - 2), 0, gh - cs))
            oj = int(np.clip(around[1] - rng.integers(2, cs - 2), 0, gw - cs))
        else:
            oi, oj = int(rng.integers(0, gh - cs + 1)), int(rng.integers(0, gw - cs + 1))
        if pick is not None:
            focus.picks.append((b, pick[0], int(o[0]), around[0] - oi, around[1] - oj))  # type: ignore[union-attr]
        crop = pool.images[i][oi * STRIDE:(oi + cs) * STRIDE, oj * STRIDE:(oj + cs) * STRIDE].astype(np.float32)
        crop /= 255.0
        if replay:
            clean.append(crop)
            if cfg.replay_lamp_share > 0 and rng.random() < cfg.replay_lamp_share:
                if data.lamp is not None and cfg.replay_matched_share > 0 and rng.random() < cfg.replay_matched_share:
                    crop = np.clip(crop * (data.lamp * rng.uniform(0.95, 1.05, 3)).astype(np.float32), 0.0, 1.0)
                else:
                    crop = _lamp(crop, rng)
        elif rng.random() < cfg.photometric_share:
            crop = _lamp(crop, rng)
        imgs[b] = crop
        heat[b] = pool.heat[i][:, oi:oi + cs, oj:oj + cs]
        if pool.reject[i] is not None:
            reject[b] = pool.reject[i][:, oi:oi + cs, oj:oj + cs]
        for _, ci, cj, dx, dy, lw, lh in objs:
            ci, cj = int(ci) - oi, int(cj) - oj
            if 0 <= ci < cs and 0 <= cj < cs:
                reg[b, :, ci, cj] = (dx, dy, lw, lh)
                mask[b, ci, cj] = 1.0
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
    shape = (0, cfg.crop, cfg.crop, 3)
    parent_x = torch.from_numpy(np.stack(clean) if clean else np.empty(shape, np.float32)).permute(0, 3, 1, 2)
    return (x, torch.from_numpy(heat), torch.from_numpy(reg), torch.from_numpy(mask), torch.from_numpy(reject),
            torch.from_numpy(is_replay), parent_x.contiguous(memory_format=torch.channels_last))


def rejected_loss(logits: torch.Tensor, target: torch.Tensor, reject: torch.Tensor) -> torch.Tensor:
    """The focal loss's negative term again on the cells of rejected boxes (not where a true defect's peak is),
    normalised like the focal loss, by the number of objects."""
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    where = reject * (1 - target) ** 4
    n = target.eq(1).float().sum().clamp(min=1)
    return -(torch.log(1 - p) * p ** 2 * where).sum() / n


def distill_loss(heat: torch.Tensor, box: torch.Tensor, parent_heat: torch.Tensor, parent_box: torch.Tensor,
                 fg: float = 0.0) -> torch.Tensor:
    """How far the student's outputs are from the frozen parent's on the same crops (zero when they agree): the
    squared difference of the heat maps (after the sigmoid) summed per crop, each cell counting ``1 + fg`` times
    the parent's strongest class score there, plus the L1 difference of offsets and log sizes weighted by that
    score."""
    if heat.shape[0] == 0:
        return heat.sum() * 0.0
    ps = torch.sigmoid(parent_heat)
    w = ps.amax(dim=1, keepdim=True)
    lh = ((torch.sigmoid(heat) - ps).pow(2) * (1.0 + fg * w)).sum() / heat.shape[0]
    lb = ((box - parent_box).abs() * w).sum() / w.sum().clamp(min=1.0)
    return lh + lb


def l2sp_loss(model: torch.nn.Module, start: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum of squared differences between the model's trainable weights and the parent's (L2-SP)."""
    return sum(((p - start[n]) ** 2).sum() for n, p in model.named_parameters())  # type: ignore[return-value]


# ------------------------------------------------------------------ training

class Interrupted(KeyboardInterrupt):
    """Ctrl+C during fine-tuning; ``step`` is the last step done. Nothing has been written."""

    def __init__(self, step: int, steps: int) -> None:
        super().__init__(f"interrupted at step {step} of {steps}; nothing was written")
        self.step, self.steps = step, steps


def finetune(state: dict[str, torch.Tensor], data: TrainingData, cfg: FinetuneConfig,
             progress: TextIO | None = sys.stderr, on_step: Callable[[int, float], None] | None = None
             ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Train from the parent's ``state`` on ``data``; the new state dict and a record of what was done."""
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    model = TinyCenterNet(len(data.classes))
    model.load_state_dict(state)
    model = model.to(memory_format=torch.channels_last)
    model.train()
    if cfg.freeze_bn_stats:
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.eval()  # normalise with the parent's statistics; scale and shift still learn
    parent = None
    if cfg.distill_weight > 0:
        parent = TinyCenterNet(len(data.classes))
        parent.load_state_dict(state)
        parent = parent.to(memory_format=torch.channels_last).eval()
        for p in parent.parameters():
            p.requires_grad_(False)
    start = {n: p.detach().clone() for n, p in model.named_parameters()} if cfg.l2sp_weight > 0 else None
    early = [p for n, p in model.named_parameters() if n.split(".")[0] in EARLY_LAYERS]
    late = [p for n, p in model.named_parameters() if n.split(".")[0] not in EARLY_LAYERS]
    opt = torch.optim.AdamW([{"params": early}, {"params": late, "lr": cfg.lr * cfg.late_lr_scale}], lr=cfg.lr,
                            weight_decay=cfg.weight_decay)
    warm = max(1, min(cfg.warmup, cfg.steps // 10))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, cfg.steps - warm))))
    rng = np.random.default_rng([cfg.seed, 29])
    if cfg.replay_lamp_share * cfg.replay_matched_share > 0 and len(data.replay) and len(data.corrected) \
            and data.lamp is None:
        data.lamp = lamp_ratio(data.corrected, data.replay)
        _log(progress, "the corrected frames' lamp against the replay's (R, G, B): "
                       + ", ".join(f"{v:.2f}" for v in data.lamp))
    focus = ReplayFocus.of(data.replay, cfg.replay_focus) if cfg.replay_focus > 0 and parent is not None else None
    if focus is not None and not len(focus.where):
        focus = None  # replay frames without a defect: nothing to focus on
    every = max(1, min(50, cfg.steps // 10))
    t0 = time.monotonic()
    cap = cfg.minutes * 60.0 if cfg.minutes else None
    avg = None
    step = 0
    stopped = "all steps done"
    try:
        for step in range(1, cfg.steps + 1):
            x, heat, reg, mask, reject, is_replay, parent_x = make_batch(data, rng, cfg, focus)
            hl, bo, _ = model(x)
            lh, lb, lr_ = focal_loss(hl, heat), box_loss(bo, reg, mask), rejected_loss(hl, heat, reject)
            loss = lh + lb + cfg.rejected_weight * lr_
            ld = torch.zeros(())
            if parent is not None and bool(is_replay.any()):
                with torch.no_grad():
                    ph, pb, _ = parent(parent_x)  # the replay crops before any lamp change
                ld = distill_loss(hl[is_replay], bo[is_replay], ph, pb, cfg.distill_fg)
                if focus is not None:
                    focus.update(hl, ph, is_replay)
                loss = loss + cfg.distill_weight * ld
            if start is not None:
                loss = loss + cfg.l2sp_weight * l2sp_loss(model, start)
            v = optimiser_step(model, opt, sched, loss)
            avg = v if avg is None else 0.95 * avg + 0.05 * v
            if on_step is not None:
                on_step(step, v)
            el = time.monotonic() - t0
            capped = cap is not None and el >= cap and step < cfg.steps
            if step % every == 0 or step == cfg.steps or capped:
                eta = el / step * (cfg.steps - step)
                if cap is not None:
                    eta = min(eta, max(0.0, cap - el))
                _log(progress, f"step {step}/{cfg.steps}  loss {avg:.3f} (heat {float(lh.detach()):.3f}, box "
                               f"{float(lb.detach()):.3f}, rejected {max(0.0, float(lr_.detach())):.3f}, "
                               f"parent {float(ld.detach()):.3f})  {el:.0f} s, "
                               f"about {eta:.0f} s left")
            if capped:
                stopped = f"stopped by the {cfg.minutes:g}-minute cap after {step} of {cfg.steps} steps"
                _log(progress, stopped)
                break
    except KeyboardInterrupt:
        raise Interrupted(max(0, step - 1), cfg.steps) from None
    model.eval()
    out = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    record = {"steps": step, "stopped": stopped, "train_s": round(time.monotonic() - t0, 1)}
    if data.lamp is not None and cfg.replay_lamp_share * cfg.replay_matched_share > 0:
        record["corrected_lamp_rgb"] = [round(float(v), 3) for v in data.lamp]
    return mix_with_parent(out, state, cfg.parent_share), record


def mix_with_parent(state: dict[str, torch.Tensor], parent: dict[str, torch.Tensor], share: float
                    ) -> dict[str, torch.Tensor]:
    """``(1 - share) * state + share * parent`` for every floating-point tensor (weights, biases, batch-norm
    statistics); counters are the trained network's."""
    if share <= 0:
        return state
    return {k: ((1.0 - share) * v + share * parent[k].to(v.dtype)).contiguous() if v.is_floating_point() else v
            for k, v in state.items()}
