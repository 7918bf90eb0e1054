"""The files of a bundle as bytes: COCO ground truth and predictions, YOLO labels, CSV tables, manifest.

Pure functions of the selection, no I/O, so the same code serves export and merge.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Iterable, Sequence

from engine.datasets.bundle.selection import FrameTruth, iso
from engine.datasets.bundle.splits import SPLITS

FORMAT_NAME = "inspection-station-feedback-bundle"
FORMAT_VERSION = 1
COCO_GT = "annotations/instances.json"
COCO_PRED = "annotations/predictions.json"
YOLO_YAML = "data.yaml"
DECISIONS_CSV = "decisions.csv"
EVENTS_CSV = "events.csv"
DRIFT_MINUTES_CSV = "drift/minutes.csv"
DRIFT_ALARMS_CSV = "drift/alarms.csv"
DRIFT_SUMMARY = "drift/summary.json"
MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"

DECISION_COLUMNS = ("review_id", "time_utc", "operator", "verdict", "detection", "old_class", "new_class", "old_box",
                    "new_box", "score", "reason", "origin", "undoes", "effective", "model", "reference_id", "source",
                    "sequence", "frame_time_utc", "image_sha256", "in_bundle")
EVENT_COLUMNS = ("time_utc", "time", "kind", "detail", "origin")
MINUTE_COLUMNS = ("minute_utc", "minute", "metric", "n", "mean", "min", "max", "level", "reference_id")
ALARM_COLUMNS = ("time_utc", "time", "metric", "level", "message", "reference_id")


def image_name(sha: str) -> str:
    return f"images/{sha}.png"


def label_name(sha: str) -> str:
    return f"labels/{sha}.txt"


def _clip(box: Sequence[float], w: int, h: int) -> tuple[float, float, float, float] | None:
    x0, y0 = min(max(box[0], 0.0), w), min(max(box[1], 0.0), h)
    x1, y1 = min(max(box[2], 0.0), w), min(max(box[3], 0.0), h)
    if x1 - x0 <= 0 or y1 - y0 <= 0:
        return None
    return (x0, y0, x1, y1)


def _xywh(b: tuple[float, float, float, float]) -> list[float]:
    return [round(b[0], 2), round(b[1], 2), round(b[2] - b[0], 2), round(b[3] - b[1], 2)]


def coco_split_name(split: str) -> str:
    return f"annotations/instances_{split}.json"


def pred_split_name(split: str) -> str:
    return f"annotations/predictions_{split}.json"


def list_name(split: str) -> str:
    """The YOLO list file of a split, beside ``images/``: Ultralytics reads a line ``./images/x.png`` as relative
    to the list file's folder (``get_img_files`` in ``ultralytics/data/base.py``)."""
    return f"{split}.txt"


def coco_dicts(frames: Sequence[FrameTruth], classes: Sequence[str], info: dict[str, Any], station: str,
               splits: Sequence[str] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """COCO detection ground truth (the corrected truth) and the model's boxes as a COCO results list. Image
    ids are 1.. in frame order; ``splits`` (one per frame) are written into each image as ``split``."""
    cat = {c: i + 1 for i, c in enumerate(classes)}
    images, anns, preds = [], [], []
    for n, f in enumerate(frames, 1):
        images.append({"id": n, "file_name": f"{f.image_sha256}.png", "width": f.width, "height": f.height,
                       "station": station, "source": f.source, "sequence": f.sequence,
                       "time_utc": iso(f.timestamp), "timestamp": f.timestamp,
                       "kinds": ["replay"] if f.replay else sorted(f.kinds),
                       "reviewed": f.reviewed, "model": f.model, "reference_id": f.reference_id})
        if splits is not None:
            images[-1]["split"] = splits[n - 1]
        for lab in f.truth:
            b = _clip(lab.box, f.width, f.height) if lab.class_name in cat else None
            if b is None:
                continue
            xywh = _xywh(b)
            anns.append({"id": len(anns) + 1, "image_id": n, "category_id": cat[lab.class_name], "bbox": xywh,
                         "area": round(xywh[2] * xywh[3], 4), "iscrowd": 0, "status": lab.status})
        for p in f.predictions:
            b = _clip(p.box, f.width, f.height) if p.class_name in cat else None
            if b is None:
                continue
            preds.append({"image_id": n, "category_id": cat[p.class_name], "bbox": _xywh(b),
                          "score": round(float(p.score if p.score is not None else 1.0), 4)})
    gt = {"info": info, "licenses": [], "images": images, "annotations": anns,
          "categories": [{"id": i, "name": c, "supercategory": "defect"} for c, i in cat.items()]}
    return gt, preds


def coco_files(frames: Sequence[FrameTruth], classes: Sequence[str], info: dict[str, Any],
               station: str) -> tuple[bytes, bytes]:
    """COCO ground truth and predictions of every frame, as bytes."""
    gt, preds = coco_dicts(frames, classes, info, station)
    return compact_json(gt), compact_json(preds)


def coco_split(gt: dict[str, Any], preds: list[dict[str, Any]], split: str) -> tuple[bytes, bytes]:
    """The COCO ground truth and predictions of one split's images (ids as in the file of every frame)."""
    ids = {i["id"] for i in gt["images"] if i.get("split") == split}
    part = {**gt, "images": [i for i in gt["images"] if i["id"] in ids],
            "annotations": [a for a in gt["annotations"] if a["image_id"] in ids]}
    return compact_json(part), compact_json([p for p in preds if p["image_id"] in ids])


def annotation_files(frames: Sequence[FrameTruth], classes: Sequence[str], info: dict[str, Any], station: str,
                     splits: Sequence[str], formats: Sequence[str],
                     image_station: Sequence[str] | None = None) -> dict[str, bytes]:
    """Every annotation file but the label files, by name: COCO truth and predictions of every frame and of each
    split (``coco``), ``data.yaml`` and the split list files (``yolo``). ``splits`` holds one name per frame;
    ``image_station`` (merge) one station per frame."""
    out: dict[str, bytes] = {}
    if "coco" in formats:
        gt, preds = coco_dicts(frames, classes, info, station, splits)
        if image_station is not None:
            for img, s in zip(gt["images"], image_station):
                img["station"] = s
        out[COCO_GT], out[COCO_PRED] = compact_json(gt), compact_json(preds)
        for s in SPLITS:
            out[coco_split_name(s)], out[pred_split_name(s)] = coco_split(gt, preds, s)
    if "yolo" in formats:
        out[YOLO_YAML] = yolo_yaml(classes, {s: sum(1 for x in splits if x == s) for s in SPLITS})
        for s in SPLITS:
            out[list_name(s)] = yolo_list([f for f, x in zip(frames, splits) if x == s])
    return out


def yolo_list(frames: Sequence[FrameTruth]) -> bytes:
    """A YOLO list file: one ``./images/<sha256>.png`` line per frame."""
    return "".join(f"./{image_name(f.image_sha256)}\n" for f in frames).encode()


def yolo_label(f: FrameTruth, classes: Sequence[str]) -> bytes:
    """One image's YOLO label file: ``class cx cy w h`` normalised; empty for a defect-free image."""
    idx = {c: i for i, c in enumerate(classes)}
    lines = []
    for lab in f.truth:
        b = _clip(lab.box, f.width, f.height) if lab.class_name in idx else None
        if b is None:
            continue
        cx, cy = (b[0] + b[2]) / 2 / f.width, (b[1] + b[3]) / 2 / f.height
        w, h = (b[2] - b[0]) / f.width, (b[3] - b[1]) / f.height
        lines.append(f"{idx[lab.class_name]} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n")
    return "".join(lines).encode()


def yolo_yaml(classes: Sequence[str], split_images: dict[str, int] | None = None) -> bytes:
    """``data.yaml``: the splits as list files beside it, and the class names.

    It has no ``path`` on purpose. Ultralytics (``check_det_dataset`` in ``ultralytics/data/utils.py``) takes
    the dataset root from ``path`` when there is one (a relative ``path`` against the *working directory*,
    else under its datasets folder) and otherwise from the folder this file is in; ``train``, ``val`` and
    ``test`` are then joined to that root. Left out, the root is the bundle wherever it is opened from and
    wherever it was copied to (an absolute ``path`` would break as soon as the bundle moves to the training
    machine). A ZIP bundle given to Ultralytics as it is is unpacked and its folder taken as the root.
    """
    counts = split_images if split_images is not None else {"train": 1, "val": 0, "test": 0}
    names = "".join(f"  {i}: {json.dumps(c)}\n" for i, c in enumerate(classes))
    lines = ["# Inspection Station feedback bundle, YOLO layout: images/ and labels/ side by side, the splits as",
             "# list files beside this file (split by time; see manifest.json). No 'path' key: Ultralytics then",
             "# resolves train/val/test against the folder this file is in, from any working directory.",
             f"train: {list_name('train')}"]
    if counts.get("val"):
        lines.append(f"val: {list_name('val')}")
    else:
        lines.append(f"val: {list_name('train')}  # too few separate blocks of time for a val split")
    if counts.get("test"):
        lines.append(f"test: {list_name('test')}")
    return ("\n".join(lines) + f"\nnc: {len(classes)}\nnames:\n{names}").encode()


def table(columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> bytes:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})
    return buf.getvalue().encode()


def read_table(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


def compact_json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def pretty_json(obj: Any) -> bytes:
    return (json.dumps(obj, indent=1, ensure_ascii=False) + "\n").encode()



def manifest_files(formats: tuple[str, ...] | list[str]) -> dict[str, str]:
    """The manifest's map of what is where in a bundle written in ``formats``."""
    coco, yolo = "coco" in formats, "yolo" in formats
    files = {"coco_ground_truth": COCO_GT if coco else None, "coco_predictions": COCO_PRED if coco else None,
             **{f"coco_ground_truth_{s}": coco_split_name(s) if coco else None for s in SPLITS},
             **{f"coco_predictions_{s}": pred_split_name(s) if coco else None for s in SPLITS},
             **{f"yolo_list_{s}": list_name(s) if yolo else None for s in SPLITS},
             "yolo_data": YOLO_YAML if yolo else None, "images": "images/", "yolo_labels": "labels/" if yolo else None,
             "decisions": DECISIONS_CSV, "events": EVENTS_CSV, "drift_minutes": DRIFT_MINUTES_CSV,
             "drift_alarms": DRIFT_ALARMS_CSV, "drift_summary": DRIFT_SUMMARY, "checksums": SUMS}
    return {k: v for k, v in files.items() if v}
