"""The gold set (reference answers with the written criteria that decide them) and the calibration
exercise: a new operator labels it, and the result says where and why they differ from its answers."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.core.files import write_atomic
from engine.datasets.agreement.report import NONE_LABEL, json_ready
from engine.datasets.agreement.statistics import cohen_kappa, percent_agreement

GOLD_FILE = "gold_set.json"


@dataclass(frozen=True)
class GoldItem:
    id: str
    image: str  # file name beside the gold set's JSON
    box: tuple[float, float, float, float]  # the marked region, in the image's pixels
    answer: str  # a class name or "none"
    criterion: str  # key into the criteria
    boundary: bool
    note: str  # why the answer is what it is, for this item


@dataclass
class GoldSet:
    folder: Path
    version: str
    classes: tuple[str, ...]
    criteria: dict[str, str]
    items: list[GoldItem]

    @property
    def choices(self) -> tuple[str, ...]:
        return (*self.classes, NONE_LABEL)

    def image_path(self, item: GoldItem) -> Path:
        return self.folder / item.image


def default_gold_folder() -> Path:
    import resources

    return resources.path("gold_set")


def load_gold_set(folder: Path | None = None) -> GoldSet:
    """The gold set in ``folder`` (default: the built-in one). ValueError with one sentence if it is unusable."""
    folder = Path(folder) if folder else default_gold_folder()
    path = folder / GOLD_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"there is no gold set in {folder} (no {GOLD_FILE})") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None
    classes = tuple(data.get("classes", ()))
    criteria = dict(data.get("criteria", {}))
    items = []
    for n, it in enumerate(data.get("items", [])):
        try:
            item = GoldItem(str(it["id"]), str(it["image"]), tuple(float(v) for v in it["box"]),  # type: ignore[arg-type]
                            str(it["answer"]), str(it["criterion"]), bool(it.get("boundary", False)),
                            str(it.get("note", "")))
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{path}: item {n + 1} needs id, image, box, answer and criterion") from None
        if item.answer not in (*classes, NONE_LABEL):
            raise ValueError(f"{path}: item {item.id} answers {item.answer!r}, which is not a class or 'none'")
        if item.criterion not in criteria:
            raise ValueError(f"{path}: item {item.id} names the criterion {item.criterion!r}, which is not written")
        if not (folder / item.image).is_file():
            raise ValueError(f"{path}: item {item.id}'s image {item.image} is missing")
        items.append(item)
    if not items:
        raise ValueError(f"{path} has no items")
    return GoldSet(folder, str(data.get("version", "")), classes, criteria, items)


class CalibrationExercise:
    """A new operator labels the gold set; the result says where and why they differ from its answers."""

    def __init__(self, gold: GoldSet, operator: str) -> None:
        self.gold = gold
        self.operator = operator
        self.answers: dict[str, str] = {}
        self.started = time.time()

    def answer(self, item_id: str, label: str) -> None:
        if label not in self.gold.choices:
            raise ValueError(f"{label!r} is not one of {', '.join(self.gold.choices)}")
        if item_id not in {i.id for i in self.gold.items}:
            raise ValueError(f"the gold set has no item {item_id!r}")
        self.answers[item_id] = label

    @property
    def done(self) -> bool:
        return all(i.id in self.answers for i in self.gold.items)

    def result(self) -> dict[str, Any]:
        """Accuracy and Cohen's kappa against the reference answers, per class and for boundary cases apart,
        and every disagreement with the written criterion that decides it."""
        answered = [i for i in self.gold.items if i.id in self.answers]
        mine = [self.answers[i.id] for i in answered]
        ref = [i.answer for i in answered]
        disagreements = [{"item": i.id, "image": i.image, "given": self.answers[i.id], "answer": i.answer,
                          "boundary": i.boundary, "criterion": i.criterion, "why": self.gold.criteria[i.criterion],
                          "note": i.note} for i in answered if self.answers[i.id] != i.answer]
        per_class = {}
        for c in self.gold.choices:
            idx = [k for k, i in enumerate(answered) if i.answer == c]
            per_class[c] = {"n": len(idx), "correct": sum(mine[k] == c for k in idx)}
        bands = {}
        for name, want in (("boundary", True), ("easy", False)):
            idx = [k for k, i in enumerate(answered) if i.boundary == want]
            bands[name] = {"n": len(idx), "agreement": percent_agreement([mine[k] for k in idx], [ref[k] for k in idx])}
        return json_ready({"operator": self.operator, "gold_version": self.gold.version, "time": time.time(),
                       "started": self.started, "answered": len(answered), "items": len(self.gold.items),
                       "agreement": percent_agreement(mine, ref), "kappa": cohen_kappa(mine, ref),
                       "per_class": per_class, "per_band": bands, "disagreements": disagreements,
                       "answers": dict(self.answers)})


def save_calibration(data_dir: Path, result: dict[str, Any]) -> Path:
    """Keep a calibration result as ``<data dir>/calibration/<utc>-<operator>.json`` (atomic, durable)."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in result["operator"]) or "operator"
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(result.get("time", time.time())))
    path = Path(data_dir) / "calibration" / f"{stamp}-{safe}.json"
    write_atomic(path, json.dumps(result, indent=1))
    return path


def latest_calibrations(data_dir: Path) -> dict[str, dict[str, Any]]:
    """Each operator's latest calibration result (agreement and kappa against the gold set)."""
    folder = Path(data_dir) / "calibration"
    out: dict[str, dict[str, Any]] = {}
    for p in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        try:
            r = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue  # a damaged file is skipped, not fatal to the report
        prev = out.get(r.get("operator", ""))
        if prev is None or r.get("time", 0) >= prev["time"]:
            out[r.get("operator", "")] = {"time": r.get("time", 0), "agreement": r.get("agreement"),
                                          "kappa": r.get("kappa"), "items": r.get("answered"),
                                          "gold_version": r.get("gold_version"),
                                          "disagreements": len(r.get("disagreements", []))}
    return out


