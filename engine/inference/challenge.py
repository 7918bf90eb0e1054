"""Champion against challenger on the same evidence, and whether the challenger should replace the champion.

Three kinds of evidence, each scored for both models on the very same frames:

* ``gold``: the golden set in ``resources/gold_set`` (small crops, one marked region each; the answer a class or
  none). Shown, not part of the verdict: it is too small to decide on.
* ``bundles``: the held-out split (``test``, else ``val``) of every feedback bundle the station exported (the
  audit trail's ``exported`` entries whose folder or ZIP is still there) and of each ``--bundle`` given. Bundles
  are split by time, so a model fine-tuned on a bundle's ``train`` split never saw these frames. This is the
  drifted evidence: the line as it is now, labelled by its operators.
* ``replay``: the reference line replayed, the nominal simulated line on seeds no model trained on (0, 1, 2 by
  default; the built-in model trained on 1000-1099), ``frames`` frames each, every third slot.

Figures: precision, recall and F1 at each model's own operating threshold and AP@0.5 (predictions down to 0.01),
per class and overall, each with a bootstrap 95 % interval resampling frames (:mod:`engine.inference.bootstrap`;
the bundles' and the replay's in blocks of ``block`` consecutive frames, since a defect stays in view for
several, shortened where needed so that there are at least ten blocks),
and the paired interval of the F1 difference (challenger minus champion).

Verdict (:func:`verdict`): promote only when the challenger is better on the drifted evidence (the paired 95 %
interval of its F1 gain lies above 0) and not worse on the replay by more than the margin (default 1 F1 point:
the paired interval's lower end above minus the margin).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from engine.core.frame import Box
from engine.inference import bootstrap, registry
from engine.inference.evaluate import FrameMatch

AP_CONFIDENCE = 0.01  # every prediction down to this score counts for AP
MIN_BLOCKS = 10  # blocks are shortened so that a resample draws at least this many: a handful says nothing
Progress = Callable[[str], None]


@dataclass(frozen=True)
class ChallengeOptions:
    frames: int = 60
    seeds: tuple[int, ...] = (0, 1, 2)
    step: int = 3
    bundles: tuple[Path, ...] = ()
    margin: float = 0.01  # F1 (as a fraction) the challenger may lose on the replay
    resamples: int = 1000
    # the bundles' and the replay's frames are drawn in blocks of this many consecutive frames: a part and its
    # defects stay in view for about twelve frames taken every third slot, and one defect seen twelve times is
    # one piece of evidence, not twelve (the golden set's pictures are independent: drawn one by one)
    block: int = 12
    seed: int = 0
    gold: bool = True
    known_bundles: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


class _Truth(NamedTuple):
    x0: float
    y0: float
    x1: float
    y1: float
    class_name: str


class _GoldItem:
    """A golden-set picture (a 144-pixel crop) pasted at its own scale in the middle of a camera-sized frame of its
    median colour, so the model sees its defects at the size it was trained on; ``region`` is the marked region
    in that frame, the only place judged."""

    FRAME = (1280, 1024)

    def __init__(self, folder: Path, item: dict[str, Any], k: int) -> None:
        self.folder, self.item, self.name, self.time, self.id = folder, item, str(item.get("id", k)), 0.0, k + 1
        self.offset = (0.0, 0.0)
        self.region = tuple(float(v) for v in item["box"])

    def read(self) -> tuple[np.ndarray, list[_Truth]]:
        import cv2

        img = cv2.imread(str(self.folder / self.item["image"]), cv2.IMREAD_COLOR)
        if img is None:
            from engine.inference.common import ModelError

            raise ModelError(f"gold set picture {self.item['image']} cannot be read")
        w, h = self.FRAME
        ih, iw = img.shape[:2]
        frame = np.empty((h, w, 3), np.uint8)
        frame[:] = np.median(img.reshape(-1, 3), axis=0).astype(np.uint8)
        ox, oy = (w - iw) // 2, (h - ih) // 2
        frame[oy:oy + ih, ox:ox + iw] = img
        x0, y0, x1, y1 = (float(v) for v in self.item["box"])
        self.region = (x0 + ox, y0 + oy, x1 + ox, y1 + oy)
        answer = self.item.get("answer")
        if answer in (None, "none"):
            return frame, []
        return frame, [_Truth(*self.region, str(answer))]


def _in_region(frames: list[FrameMatch], items: list[_GoldItem]) -> list[FrameMatch]:
    """Only the predictions that touch each item's marked region (the rest of the crop is not labelled)."""
    out = []
    for fm, it in zip(frames, items):
        x0, y0, x1, y1 = it.region
        keep = tuple(p for p in fm.predictions if p.x0 < x1 and p.x1 > x0 and p.y0 < y1 and p.y1 > y0)
        out.append(FrameMatch(keep, fm.truth, fm.time_s))
    return out


def gold_items() -> tuple[list[_GoldItem], list[str]]:
    import resources

    folder = resources.path("gold_set")
    spec = json.loads((folder / "gold_set.json").read_text(encoding="utf-8"))
    return [_GoldItem(folder, it, k) for k, it in enumerate(spec.get("items", []))], list(spec.get("classes", []))


def known_bundles(data_dir: Path) -> list[Path]:
    """Bundles the station exported (the audit trail's ``exported`` entries) that are still where they were."""
    from engine.security.audit import entries

    out: list[Path] = []
    for e in entries(data_dir):
        if e.get("action") == "exported" and e.get("object"):
            p = Path(str(e["object"]))
            if p.exists() and p not in out:
                out.append(p)
    return out


def _held_out(path: Path) -> Any:
    """The test split of a bundle, else its val split; None when it has neither with frames."""
    from engine.datasets.labelled import DatasetError, open_dataset

    for split in ("test", "val"):
        try:
            ds = open_dataset(path, split)
        except DatasetError:
            continue
        if ds.images:
            return ds
    return None


def _load(entry: Any) -> tuple[Any, float]:
    """The entry's detector, predicting down to :data:`AP_CONFIDENCE`, and its own operating threshold."""
    from engine.inference import load_detector

    det = load_detector(entry.path, device="cpu")
    operating = float(det.confidence)
    det.confidence = AP_CONFIDENCE
    return det, operating


def _remap(frames: list[FrameMatch], classes: list[str]) -> list[FrameMatch]:
    """Class ids by name into ``classes`` (names not in it are added for truth, dropped for predictions)."""
    idx = {c: i for i, c in enumerate(classes)}
    out = []
    for fm in frames:
        truth = []
        for t in fm.truth:
            if t.class_name not in idx:
                idx[t.class_name] = len(classes)
                classes.append(t.class_name)
            truth.append(Box(t.x0, t.y0, t.x1, t.y1, idx[t.class_name], t.class_name, t.score))
        preds = tuple(Box(p.x0, p.y0, p.x1, p.y1, idx[p.class_name], p.class_name, p.score)
                      for p in fm.predictions if p.class_name in idx)
        out.append(FrameMatch(preds, tuple(truth), fm.time_s))
    return out


def _score(name: str, description: str, sources: list[str], runs: dict[str, list[FrameMatch]],
           classes: list[str], operating: dict[str, float], opts: ChallengeOptions) -> dict[str, Any]:
    n = len(runs["champion"])
    block = 1 if name == "gold" else max(1, min(opts.block, n // MIN_BLOCKS))
    w = bootstrap.weights(n, opts.resamples, opts.seed, block)
    out: dict[str, Any] = {"name": name, "description": description, "sources": sources,
                           "frames": n, "bootstrap_block_frames": block,
                           "truth_boxes": int(sum(len(f.truth) for f in runs["champion"])), "classes": classes}
    boots = {}
    for role in ("champion", "challenger"):
        c = bootstrap.counts(runs[role], classes, operating[role])
        out[role], boots[role] = bootstrap.summarise(c, w)
    out["difference"] = {m: bootstrap.paired_difference(boots["champion"], boots["challenger"], m)
                         for m in ("f1", "ap50")}
    return out


def run_challenge(data_dir: Path, champion: Any, challenger: Any, opts: ChallengeOptions | None = None,
                  progress: Progress | None = None) -> dict[str, Any]:
    """Every figure of the challenge and the verdict (see the module description), as one JSON-ready dict.
    ``champion`` and ``challenger`` are registry entries (``path`` None: the built-in model)."""
    from engine.inference.evaluate import collect, collect_labelled
    from engine.sources import open_source

    opts = opts or ChallengeOptions()
    say = progress or (lambda text: None)
    t0 = time.perf_counter()
    dets, operating = {}, {}
    for role, entry in (("champion", champion), ("challenger", challenger)):
        say(f"loading the {role} {entry.name}")
        dets[role], operating[role] = _load(entry)
    evidence: dict[str, Any] = {}
    if opts.gold:
        items, classes = gold_items()
        runs = {}
        for role, det in dets.items():
            run = collect_labelled(items, classes, det, operating[role],
                                   progress=lambda d, n, r=role: say(f"golden set, {r}: {d}/{n}"))
            runs[role] = _in_region(run.frames, items)
            classes = list(run.classes)
        evidence["gold"] = _score("gold", "the golden set (resources/gold_set): one marked region per picture, "
                                  "each pasted at its scale in a camera-sized frame; predictions touching the region",
                                  ["resources/gold_set/gold_set.json"], runs, classes, operating, opts)
    paths = (known_bundles(data_dir) if opts.known_bundles else []) + [p for p in opts.bundles]
    paths = list(dict.fromkeys(Path(p) for p in paths))
    runs = {"champion": [], "challenger": []}
    sources, classes = [], []
    for p in paths:
        ds = _held_out(p)
        if ds is None:
            sources.append(f"{p}: no held-out frames (no test or val split with pictures)")
            continue
        trained = [role for role, e in (("champion", champion), ("challenger", challenger))
                   if str(p) in registry.lineage_bundles(e.card) or str(p.resolve()) in registry.lineage_bundles(e.card)]
        note = f" (the {' and the '.join(trained)} trained on its train split only)" if trained else ""
        sources.append(f"{p}: {ds.split} split, {len(ds.images)} frames{note}")
        classes += [c for c in ds.classes if c not in classes]
        for role, det in dets.items():
            run = collect_labelled(ds.images, ds.classes, det, operating[role], category_ids=ds.category_ids,
                                   progress=lambda d, n, r=role, q=p.name: say(f"bundle {q}, {r}: {d}/{n}"))
            runs[role] += _remap(run.frames, classes)
    evidence["bundles"] = _score("bundles", "held-out frames of the station's feedback bundles (the drifted "
                                 "evidence)", sources, runs, classes, operating, opts)
    runs = {"champion": [], "challenger": []}
    classes = list(dets["champion"].classes)
    for s in opts.seeds:
        for role, det in dets.items():
            src = open_source(f"sim://?seed={s}&scenario=nominal&realtime=0", realtime=False)
            frames = collect(src, det, opts.frames, step=opts.step,
                             progress=lambda d, n, r=role, s=s: say(f"replay seed {s}, {r}: {d}/{n}"))
            runs[role] += _remap(frames, classes)
    evidence["replay"] = _score("replay", f"the reference line replayed: nominal simulated line, seeds "
                                f"{', '.join(map(str, opts.seeds))}, {opts.frames} frames each, every "
                                f"{opts.step}rd slot", [f"sim://?seed={s}&scenario=nominal" for s in opts.seeds],
                                runs, classes, operating, opts)
    promote, reason = verdict(evidence["bundles"]["difference"]["f1"] if evidence["bundles"]["frames"] else None,
                              evidence["replay"]["difference"]["f1"] if evidence["replay"]["frames"] else None,
                              opts.margin)
    return {"champion": _who(champion, operating["champion"]), "challenger": _who(challenger, operating["challenger"]),
            "options": {"frames": opts.frames, "seeds": list(opts.seeds), "step": opts.step,
                        "margin_f1_points": round(opts.margin * 100, 3), "resamples": opts.resamples,
                        "bootstrap_block_frames": opts.block,
                        "bootstrap_seed": opts.seed, "iou": 0.5, "ap_confidence": AP_CONFIDENCE},
            "evidence": evidence, "verdict": {"promote": promote, "reason": reason},
            "seconds": round(time.perf_counter() - t0, 1)}


def _who(entry: Any, operating: float) -> dict[str, Any]:
    return {"name": entry.name, "title": entry.title, "sha256": entry.sha256, "status": entry.status,
            "confidence": operating, "lineage": entry.card.get("lineage")}


def _pts(iv: dict[str, Any]) -> str:
    return (f"{iv['value'] * 100:+.1f} F1 points (95 % interval {iv['low'] * 100:+.1f} to "
            f"{iv['high'] * 100:+.1f})")


def verdict(drifted: dict[str, Any] | None, replay: dict[str, Any] | None, margin: float) -> tuple[bool, str]:
    """Whether to promote, and why. ``drifted`` and ``replay``: the paired F1 differences (challenger minus
    champion, ``{"value", "low", "high"}`` as fractions) on the bundles' held-out frames and on the replay, None
    where there were no frames; ``margin``: the F1 the challenger may lose on the replay."""
    if drifted is None or drifted.get("value") is None:
        return False, ("keep the champion: there is no drifted evidence (no feedback bundle with held-out frames is "
                       "known to the station; export one, or give --bundle)")
    if drifted["low"] <= 0:
        return False, (f"keep the champion: on the bundles' held-out frames the challenger is not surely better, "
                       f"{_pts(drifted)}, an interval that does not lie above 0")
    if replay is None or replay.get("value") is None:
        return False, "keep the champion: the reference line was not replayed, so a loss there cannot be ruled out"
    if replay["low"] < -margin:
        return False, (f"keep the champion: better on the bundles' held-out frames ({_pts(drifted)}) but on the "
                       f"replay of the reference line it may lose more than the {margin * 100:g}-point margin, "
                       f"{_pts(replay)}")
    return True, (f"promote the challenger: better on the bundles' held-out frames, {_pts(drifted)}, and on the "
                  f"replay of the reference line within the {margin * 100:g}-point margin, {_pts(replay)}")
