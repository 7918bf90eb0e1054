"""What goes into a feedback bundle: the stored frames, their corrected truth, and which of them are chosen.

A frame's *corrected truth* is built from its stored decisions (``engine/review/feedback.py``):

* the model's boxes as shown (``frames.detections``), minus the rejected ones, with corrected classes
  (reclass) and corrected boxes (a ``new_box`` on a confirm or reclass) applied, plus the missed defects
  the operator drew;
* an undone decision does not count (an undo of an undo restores the decision it took back);
* when several effective decisions speak of the same detection, the latest one wins;
* a detection on a reviewed frame that no decision speaks of is **kept as predicted** (the operator saw it
  and let it stand) and marked ``"status": "undecided"`` in the COCO annotations; the manifest counts them;
* a frame kept only as a sample (``kept_as = 'sample'``, no decision) is unreviewed: its truth is the model's
  boxes, marked ``"status": "unreviewed"``; such frames only enter a bundle as replay frames;
* a missed defect recorded without a box (downstream QC can do that) cannot be drawn: the frame is left
  out of the images and labels (its decisions stay in ``decisions.csv``) and the manifest counts it.

Kinds of a frame (a frame can have several): ``fp`` a rejected detection, ``fn`` a missed defect,
``unsure`` an unsure flag, ``confirmed`` reviewed with none of those (every decision confirms the model).
A corrected class counts as ``fp`` and ``fn`` both, as COCO evaluation counts it: the model's box is a
false positive of its class and the true defect a miss of the other. A corrected box alone does not.

The period filter is on the frame's timestamp (the source's clock, as the trends and events are);
``since`` is inclusive, ``until`` exclusive.
"""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

from engine.core.errors import StationError
from engine.datasets.bundle.splits import SplitRule, dedupe
from engine.storage.queries import decisions_in_period, frames_in_period

KINDS = ("fp", "fn", "confirmed", "unsure")
FORMATS = ("coco", "yolo")


class BundleError(StationError):
    """A bundle cannot be made, read or merged; the message says why in one sentence."""


def iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class ExportOptions:
    """What to put in a bundle. ``classes`` None: every class. ``replay_share``: replay frames as a share of
    the chosen frames (0.1: one replay frame for every ten)."""

    since: float | None = None
    until: float | None = None
    kinds: tuple[str, ...] = KINDS
    classes: tuple[str, ...] | None = None
    formats: tuple[str, ...] = FORMATS
    replay_share: float = 0.1
    replay_seed: int = 0
    zip: bool = False
    split: SplitRule = SplitRule()

    def __post_init__(self) -> None:
        bad = [k for k in self.kinds if k not in KINDS]
        if bad:
            raise BundleError(f"unknown kind {bad[0]!r}; choose from {', '.join(KINDS)}")
        if not self.kinds:
            raise BundleError(f"choose at least one kind ({', '.join(KINDS)})")
        badf = [f for f in self.formats if f not in FORMATS]
        if badf:
            raise BundleError(f"unknown format {badf[0]!r}; choose from {', '.join(FORMATS)}")
        if not self.formats:
            raise BundleError("choose at least one format (coco, yolo)")
        if not 0.0 <= self.replay_share <= 1.0:
            raise BundleError(f"the replay share must be between 0 and 1, got {self.replay_share}")
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise BundleError("the end of the period must come after its start")

    def to_dict(self) -> dict[str, Any]:
        return {"since": iso(self.since), "until": iso(self.until), "kinds": list(self.kinds),
                "classes": list(self.classes) if self.classes is not None else None,
                "formats": list(self.formats), "replay_share": self.replay_share, "replay_seed": self.replay_seed,
                "zip": self.zip}


@dataclass
class Label:
    """One box of a frame's corrected truth (or of the model's predictions)."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels
    class_name: str
    status: str  # confirmed | corrected | undecided | missed | unreviewed | predicted
    score: float | None = None


@dataclass
class FrameTruth:
    frame_id: int
    image_sha256: str
    width: int
    height: int
    source: str
    sequence: int
    timestamp: float
    model: str | None
    reference_id: str | None
    reviewed: bool
    kinds: set[str] = field(default_factory=set)
    kind_classes: set[tuple[str, str | None]] = field(default_factory=set)  # (kind, class it is about)
    truth: list[Label] = field(default_factory=list)
    predictions: list[Label] = field(default_factory=list)
    drawable: bool = True  # False: a missed defect without a box
    undecided: int = 0
    last_decision: float = 0.0
    replay: bool = False
    duplicates: int = 0  # boxes of the truth dropped as the same box drawn twice


def _box(v: Any) -> tuple[float, float, float, float] | None:
    if v is None:
        return None
    b = json.loads(v) if isinstance(v, str) else v
    return (float(b[0]), float(b[1]), float(b[2]), float(b[3]))


def effective_ids(decisions: Sequence[dict[str, Any]]) -> set[int]:
    """Ids of the decisions that count: not taken back by an undo that itself counts."""
    undone_by: dict[int, list[int]] = defaultdict(list)
    for d in decisions:
        if d["verdict"] == "undo" and d["undoes"] is not None:
            undone_by[int(d["undoes"])].append(int(d["id"]))
    memo: dict[int, bool] = {}
    # Undos come after what they undo, so deciding from the newest down sees every undo first.
    for d in sorted(decisions, key=lambda r: int(r["id"]), reverse=True):
        i = int(d["id"])
        memo[i] = not any(memo.get(u, True) for u in undone_by.get(i, ()))
    return {i for i, ok in memo.items() if ok}


def resolve(frame: dict[str, Any], decisions: Sequence[dict[str, Any]]) -> FrameTruth:
    """One frame's corrected truth and kinds from its row and its decisions (see the module's rules)."""
    dets = json.loads(frame["detections"] or "[]")
    ft = FrameTruth(int(frame["id"]), frame["image_sha256"], int(frame["width"]), int(frame["height"]),
                    frame["source"], int(frame["sequence"]), float(frame["timestamp"]), frame["model"],
                    frame["reference_id"], reviewed=bool(decisions))
    ft.predictions = [Label(_box(d["box"]), d["class_name"], "predicted", d.get("score")) for d in dets]  # type: ignore[arg-type]
    live = effective_ids(decisions) if decisions else set()
    if not any(int(d["id"]) in live and d["verdict"] != "undo" for d in decisions):
        ft.reviewed = False  # never decided, or every decision taken back
        ft.truth = [Label(p.box, p.class_name, "unreviewed") for p in ft.predictions]
        return ft
    ft.last_decision = max(float(d["time_utc"]) for d in decisions)
    about: dict[int, dict[str, Any]] = {}
    missed: list[dict[str, Any]] = []
    for d in sorted(decisions, key=lambda r: int(r["id"])):
        if int(d["id"]) not in live or d["verdict"] == "undo":
            continue
        v = d["verdict"]
        if v == "unsure":
            ft.kinds.add("unsure")
            det = d["detection"]
            cls = dets[det]["class_name"] if det is not None and 0 <= det < len(dets) else None
            ft.kind_classes.add(("unsure", cls))
        elif v == "missed":
            missed.append(d)
        elif d["detection"] is not None and 0 <= int(d["detection"]) < len(dets):
            about[int(d["detection"])] = d  # the latest effective decision on a detection wins
    for i, det in enumerate(dets):
        d = about.get(i)
        box, cls = _box(det["box"]), det["class_name"]
        if d is None:
            ft.truth.append(Label(box, cls, "undecided"))  # type: ignore[arg-type]
            ft.undecided += 1
            continue
        if d["verdict"] == "reject":
            ft.kinds.add("fp")
            ft.kind_classes.add(("fp", cls))
            continue
        new_box = _box(d["new_box"]) or box
        if d["verdict"] == "reclass" and d["new_class"] and d["new_class"] != cls:
            ft.kinds.update(("fp", "fn"))
            ft.kind_classes.update((("fp", cls), ("fn", d["new_class"])))
            ft.truth.append(Label(new_box, d["new_class"], "corrected"))  # type: ignore[arg-type]
        else:
            ft.kind_classes.add(("confirmed", cls))
            ft.truth.append(Label(new_box, cls, "corrected" if new_box != box else "confirmed"))  # type: ignore[arg-type]
    for d in missed:
        ft.kinds.add("fn")
        ft.kind_classes.add(("fn", d["new_class"]))
        b = _box(d["new_box"])
        if b is None:
            ft.drawable = False
        else:
            ft.truth.append(Label(b, d["new_class"], "missed"))
    if not ft.kinds:
        ft.kinds.add("confirmed")
        if not any(k == "confirmed" for k, _ in ft.kind_classes):
            ft.kind_classes.add(("confirmed", None))
    ft.kind_classes = {(k, c) for k, c in ft.kind_classes if k in ft.kinds}
    return ft


@dataclass
class Selection:
    """The chosen frames (one per image), the replay frames, and everything the bundle tells about them."""

    options: ExportOptions
    frames: list[FrameTruth]  # chosen for their kind, then replay frames (``replay`` True)
    decisions: list[dict[str, Any]]  # of the chosen frames, oldest first
    classes: list[str]
    left_out: dict[str, int]
    period: tuple[float | None, float | None]

    @property
    def chosen(self) -> list[FrameTruth]:
        return [f for f in self.frames if not f.replay]

    @property
    def replay(self) -> list[FrameTruth]:
        return [f for f in self.frames if f.replay]

    def counts(self) -> dict[str, Any]:
        """Frames by kind (a frame counts under each of its kinds) and by kind and class; boxes by class."""
        by_kind: Counter[str] = Counter()
        by_kind_class: dict[str, Counter[str]] = {k: Counter() for k in (*KINDS, "replay")}
        boxes: Counter[str] = Counter()
        status: Counter[str] = Counter()
        for f in self.frames:
            kinds = ["replay"] if f.replay else sorted(f.kinds)
            for k in kinds:
                by_kind[k] += 1
            for k, c in f.kind_classes if not f.replay else ():
                if c is not None and c in self.classes:
                    by_kind_class[k][c] += 1
            for lab in f.truth:
                if lab.class_name in self.classes:
                    boxes[lab.class_name] += 1
                    status[lab.status] += 1
        return {
            "images": len(self.frames),
            "chosen": len(self.chosen),
            "replay": len(self.replay),
            "defect_free_images": sum(1 for f in self.frames if not any(lab.class_name in self.classes
                                                                         for lab in f.truth)),
            "by_kind": {k: by_kind.get(k, 0) for k in (*KINDS, "replay")},
            "by_kind_and_class": {k: dict(v) for k, v in by_kind_class.items()},
            "boxes_by_class": {c: boxes.get(c, 0) for c in self.classes},
            "boxes_by_status": dict(status),
            "predictions": sum(1 for f in self.frames for p in f.predictions if p.class_name in self.classes),
            "decisions": len(self.decisions),
            "undecided_detections_kept": sum(f.undecided for f in self.frames),
            "duplicate_boxes_removed": sum(f.duplicates for f in self.frames),
            "left_out": dict(self.left_out),
        }


def _known_classes(model_classes: Iterable[str], frames: Iterable[FrameTruth]) -> list[str]:
    out = list(dict.fromkeys(model_classes))
    seen = {lab.class_name for f in frames for lab in (*f.truth, *f.predictions)}
    return out + sorted(seen - set(out))


def load_frames(data_dir: Path, since: float | None, until: float | None
                ) -> tuple[list[dict[str, Any]], dict[int, list[dict[str, Any]]]]:
    """The frame rows of the period and their decisions, grouped by frame: two queries, whatever the size."""
    frames = frames_in_period(data_dir, since, until)
    rows = decisions_in_period(data_dir, since, until)
    by_frame: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_frame[int(r["frame_id"])].append(r)
    return frames, by_frame


def select(data_dir: Path, options: ExportOptions, model_classes: Sequence[str] = ()) -> Selection:
    """Choose the frames of a bundle: by period, kind and class, one frame per image, plus the replay sample."""
    frames, by_frame = load_frames(data_dir, options.since, options.until)
    resolved = [resolve(f, by_frame.get(int(f["id"]), [])) for f in frames]
    for f in resolved:
        f.truth, f.duplicates = dedupe(f.truth)
        if f.duplicates:
            f.undecided = sum(1 for lab in f.truth if lab.status == "undecided")
    classes = _known_classes(model_classes, resolved)
    if options.classes is not None:
        unknown = [c for c in options.classes if c not in classes]
        if unknown:
            raise BundleError(f"unknown class {unknown[0]!r}; the stored classes are {', '.join(classes)}")
        classes = [c for c in classes if c in options.classes]
    wanted_kinds = set(options.kinds)
    wanted_classes = set(classes)
    left_out: Counter[str] = Counter()

    def chosen(f: FrameTruth) -> bool:
        if not f.reviewed:
            return False
        return any(k in wanted_kinds and (options.classes is None or c in wanted_classes)
                   for k, c in f.kind_classes)

    picked: dict[str, FrameTruth] = {}
    for f in resolved:
        if not chosen(f):
            continue
        if not f.drawable:
            left_out["missed_defect_without_box"] += 1
            continue
        old = picked.get(f.image_sha256)
        if old is not None:
            left_out["same_image_as_a_later_decided_frame"] += 1
            if old.last_decision > f.last_decision:
                continue
        picked[f.image_sha256] = f
    pool = [f for f in resolved if f.image_sha256 not in picked and f.drawable
            and (not f.reviewed or f.kinds == {"confirmed"})]
    pool = list({f.image_sha256: f for f in pool}.values())
    n_replay = min(len(pool), round(options.replay_share * len(picked)))
    replay = random.Random(options.replay_seed).sample(pool, n_replay) if n_replay else []
    for f in replay:
        f.replay = True
    order = sorted(picked.values(), key=lambda f: (f.timestamp, f.frame_id))
    order += sorted(replay, key=lambda f: (f.timestamp, f.frame_id))
    ids = {f.frame_id for f in order} | {f.frame_id for f in resolved if chosen(f) and not f.drawable}
    decisions = [d for f in frames if int(f["id"]) in ids for d in by_frame.get(int(f["id"]), [])]
    decisions.sort(key=lambda d: int(d["id"]))
    return Selection(options, order, decisions, classes, dict(left_out), (options.since, options.until))


def agreement_summary(decisions: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """How often operators agree, where more than one decided on the same frame.

    Each decision row needs ``frame`` (any key naming the frame), ``operator``, ``verdict``, ``detection``,
    ``new_class`` and ``effective``. For every detection two or more operators spoke of (their latest
    effective verdict: confirm, reject, or reclass to a class), each pair of operators counts as agreeing
    when their verdicts are equal; beside that share, the station's chance-corrected figures
    (:mod:`engine.datasets.agreement.report`: Krippendorff's alpha, kappa) over the same verdicts.
    """
    per_frame_ops: dict[Any, set[str]] = defaultdict(set)
    latest: dict[tuple[Any, int, str], str] = {}
    by_op: Counter[str] = Counter()
    for d in decisions:
        if d["verdict"] == "undo":
            continue
        by_op[d["operator"]] += 1
        if not d.get("effective", True):
            continue
        per_frame_ops[d["frame"]].add(d["operator"])
        if d["verdict"] in ("confirm", "reject", "reclass") and d["detection"] not in (None, ""):
            v = d["verdict"] if d["verdict"] != "reclass" else f"reclass:{d['new_class']}"
            latest[(d["frame"], int(d["detection"]), d["operator"])] = v
    items: dict[tuple[Any, int], list[str]] = defaultdict(list)
    for (frame, det, _op), v in latest.items():
        items[(frame, det)].append(v)
    pairs = agree = 0
    compared = 0
    for votes in items.values():
        if len(votes) < 2:
            continue
        compared += 1
        for i in range(len(votes)):
            for j in range(i + 1, len(votes)):
                pairs += 1
                agree += votes[i] == votes[j]
    from engine.datasets.agreement.report import Rating, report, summary

    ratings = [Rating(f"{frame}#{det}", op, v) for (frame, det, op), v in latest.items()]
    figures = summary(report(ratings)) if ratings else {}
    return {
        "method": "pairwise agreement of operators' latest verdicts on the same detection",
        "alpha": figures.get("alpha"), "kappa": figures.get("kappa"), "kappa_kind": figures.get("kappa_kind"),
        "operators": sorted(by_op),
        "decisions_by_operator": dict(sorted(by_op.items())),
        "frames_decided_by_several_operators": sum(1 for ops in per_frame_ops.values() if len(ops) > 1),
        "detections_compared": compared,
        "operator_pairs": pairs,
        "agreeing_pairs": agree,
        "agreement": round(agree / pairs, 4) if pairs else None,
    }
