"""Labelled images to score a model on: a COCO file with its images, a YOLO folder with its ``data.yaml``, or a
feedback bundle (its operator-corrected truth, one split or all).

:func:`open_dataset` finds which one a path is and gives a :class:`LabelledSet`: the dataset's class names, and
per image a name, a way to read it (BGR, as the cameras give) and its truth boxes (pixels, by class name).
Nothing here knows of models; the ``eval`` command pairs the two, matching classes by name. A path that is
none of these, or a file of the wrong shape, is a :class:`DatasetError` in one sentence.

* **COCO**: a ``.json`` file with ``images``, ``annotations`` and ``categories``. Each image's ``file_name`` is
  looked for under ``images_dir`` when given, else beside the JSON file, in ``images/`` beside it, and in
  ``images/`` one folder up (``dataset/annotations/x.json`` with ``dataset/images/``). Crowd boxes
  (``iscrowd`` 1) are left out, as COCO evaluation ignores them.
* **YOLO**: a ``data.yaml`` (or a folder holding one). Its root is resolved as Ultralytics does
  (``check_det_dataset``): ``path`` when given (absolute, or relative to the working directory; where the split
  is not found so, relative to the yaml's folder, not Ultralytics' datasets folder), else the yaml's folder; a split is a folder of images, a list file of image paths (a line ``./x`` relative to
  the list file's folder) or a list of either; labels are found by turning the last ``/images/`` of an image's
  path into ``/labels/`` and its suffix into ``.txt``. Split ``all`` joins train, val and test, each image once.
* **Bundle**: a folder or ZIP holding ``manifest.json`` and ``SHA256SUMS``; split ``test`` reads
  ``annotations/instances_test.json``, ``all`` ``annotations/instances.json``. Nothing outside the bundle is read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from engine.core.errors import StationError

SPLITS = ("train", "val", "test", "all")
IMAGE_SUFFIXES = {".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp"}


class DatasetError(StationError):
    """A labelled dataset cannot be found or read; the message says why in one sentence."""


@dataclass(frozen=True)
class TruthBox:
    x0: float
    y0: float
    x1: float
    y1: float
    class_name: str


@dataclass
class LabelledImage:
    name: str
    read: Callable[[], tuple[np.ndarray, list[TruthBox]]]  # the image (BGR uint8 HxWx3) and its truth
    time: float = 0.0
    id: int = 0  # a COCO dataset's own image id; else the position, from 1


@dataclass
class LabelledSet:
    kind: str  # coco | yolo | bundle
    path: Path
    split: str | None
    classes: list[str]
    images: list[LabelledImage] = field(default_factory=list)
    category_ids: dict[str, int] = field(default_factory=dict)  # a COCO dataset's own ids; else 1.. in order

    def describe(self) -> str:
        part = f", split {self.split}" if self.split else ""
        return f"{self.kind} dataset {self.path}{part}"


def _decode(data: bytes, name: str) -> np.ndarray:
    import cv2

    from engine.core.frame import as_frame_image

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DatasetError(f"{name} is not an image OpenCV can read")
    return np.ascontiguousarray(as_frame_image(img))


def _file_loader(path: Path) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        try:
            data = path.read_bytes()
        except OSError as e:
            raise DatasetError(f"{path} cannot be read ({e.strerror or e})") from None
        return _decode(data, str(path))

    return load


# ------------------------------------------------------------------ COCO

def _coco_images(path: Path, gt: Any, image_of: Callable[[str], Callable[[], np.ndarray] | None],
                 kind: str, split: str | None) -> LabelledSet:
    try:
        cats = {int(c["id"]): str(c["name"]) for c in gt["categories"]}
        by_img: dict[int, list[TruthBox]] = {}
        for a in gt["annotations"]:
            if a.get("iscrowd", 0):
                continue
            x, y, w, h = (float(v) for v in a["bbox"])
            by_img.setdefault(a["image_id"], []).append(TruthBox(x, y, x + w, y + h, cats[int(a["category_id"])]))
        out = LabelledSet(kind, path, split, list(dict.fromkeys(cats.values())),
                          category_ids={n: i for i, n in sorted(cats.items(), reverse=True)})
        for img in gt["images"]:
            name = str(img["file_name"])
            load = image_of(name)
            if load is None:
                raise DatasetError(f"{path} names an image {name[:80]!r} that is not there")
            t = img.get("timestamp", 0.0)
            truth = by_img.get(img["id"], [])
            out.images.append(LabelledImage(name, lambda load=load, truth=truth: (load(), truth),
                                            float(t) if isinstance(t, (int, float)) else 0.0, int(img["id"])))
    except DatasetError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise DatasetError(f"{path} is not a COCO detection file ({type(e).__name__}: {str(e)[:80]})") from None
    return out


def open_coco(path: Path, images_dir: Path | None = None) -> LabelledSet:
    try:
        gt = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise DatasetError(f"{path} cannot be read ({e.strerror or e})") from None
    except (ValueError, RecursionError) as e:
        raise DatasetError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(gt, dict) or not all(isinstance(gt.get(k), list) for k in ("images", "annotations",
                                                                                  "categories")):
        raise DatasetError(f"{path} is not a COCO detection file (it needs images, annotations and categories)")
    here = Path(path).resolve().parent
    bases = [Path(images_dir)] if images_dir is not None else [here, here / "images", here.parent / "images"]
    first = next((str(i.get("file_name")) for i in gt["images"] if isinstance(i, dict)), None)
    base = next((b for b in bases if first is not None and (b / first).is_file()), bases[0])

    def image_of(name: str) -> Callable[[], np.ndarray] | None:
        p = base / name
        return _file_loader(p) if p.is_file() else None

    return _coco_images(Path(path), gt, image_of, "coco", None)


# ------------------------------------------------------------------ YOLO

def _yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise DatasetError(f"{path} cannot be read ({e.strerror or e})") from None
    except yaml.YAMLError as e:
        raise DatasetError(f"{path} is not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path} is not a YOLO data.yaml (it holds no mapping)")
    return data


def _yolo_names(path: Path, data: dict[str, Any]) -> list[str]:
    names = data.get("names")
    if isinstance(names, dict):
        try:
            return [str(names[k]) for k in sorted(names, key=int)]
        except (TypeError, ValueError):
            raise DatasetError(f"{path} gives names whose keys are not class numbers") from None
    if isinstance(names, list):
        return [str(n) for n in names]
    if isinstance(data.get("nc"), int):
        return [f"class_{i}" for i in range(data["nc"])]
    raise DatasetError(f"{path} names no classes (it needs names or nc)")


def _split_images(root: Path, spec: Any) -> list[Path]:
    out: list[Path] = []
    for s in spec if isinstance(spec, list) else [spec]:
        p = (root / str(s)).resolve()
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES and q.is_file())
        elif p.is_file():
            parent = str(p.parent) + os.sep
            for line in p.read_text(encoding="utf-8").strip().splitlines():
                line = line.strip()
                if line:
                    out.append(Path(line.replace("./", parent, 1) if line.startswith("./") else line))
        else:
            raise DatasetError(f"the split {s!r} of {root} is neither a folder nor a list file")
    return out


def label_path(image: Path) -> Path:
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    s = str(image)
    return Path(sb.join(s.rsplit(sa, 1)).rsplit(".", 1)[0] + ".txt")


def _yolo_truth(label: Path, names: list[str], wh: tuple[int, int]) -> list[TruthBox]:
    if not label.is_file():
        return []
    out = []
    w, h = wh
    for n, line in enumerate(label.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            c, cx, cy, bw, bh = int(parts[0]), *(float(v) for v in parts[1:5])
            if len(parts) != 5 or not 0 <= c < len(names):
                raise ValueError
        except ValueError:
            raise DatasetError(f"{label} line {n} is not 'class cx cy w h' with a known class") from None
        out.append(TruthBox((cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h, names[c]))
    return out


def open_yolo(path: Path, split: str) -> LabelledSet:
    yml = Path(path)
    if yml.is_dir():
        found = sorted(yml.glob("*.yaml")) + sorted(yml.glob("*.yml"))
        if not found:
            raise DatasetError(f"{path} holds no data.yaml")
        yml = yml / "data.yaml" if (yml / "data.yaml").is_file() else found[0]
    data = _yaml(yml)
    names = _yolo_names(yml, data)
    wanted = ("train", "val", "test") if split == "all" else (split,)
    present = [k for k in wanted if data.get(k)]
    if not present:
        raise DatasetError(f"{yml} has no {split} split; choose one it has "
                           f"({', '.join(k for k in ('train', 'val', 'test') if data.get(k)) or 'none'})")
    root = Path(data.get("path") or yml.parent)
    if not root.is_absolute():
        # Ultralytics' own root first (relative to the working directory); where the split is not there, the
        # station also looks relative to the yaml's folder (Ultralytics would look under its datasets folder).
        first = data[present[0]]
        first = str(first[0] if isinstance(first, list) and first else first)
        if not (root / first).exists() and (yml.parent / root / first).exists():
            root = yml.parent / root
    seen: set[Path] = set()
    out = LabelledSet("yolo", yml, split, names, category_ids={n: i + 1 for i, n in reversed(list(enumerate(names)))})
    for k in present:
        for img in _split_images(root, data[k]):
            if img in seen:
                continue
            seen.add(img)
            if not img.is_file():
                raise DatasetError(f"{yml} lists an image {img} that is not there")
            load = _file_loader(img)

            def read(img: Path = img, load: Callable[[], np.ndarray] = load) -> tuple[np.ndarray, list[TruthBox]]:
                im = load()
                return im, _yolo_truth(label_path(img), names, (im.shape[1], im.shape[0]))

            out.images.append(LabelledImage(str(img), read, 0.0, len(out.images) + 1))
    return out


# ------------------------------------------------------------------ bundles

def open_bundle(path: Path, split: str) -> LabelledSet:
    from engine.datasets.bundle.check import BundleReader
    from engine.datasets.bundle.formats import COCO_GT, MANIFEST, coco_split_name
    from engine.datasets.bundle.selection import BundleError

    try:
        reader = BundleReader(Path(path))
    except BundleError as e:
        raise DatasetError(str(e)) from None
    name = COCO_GT if split == "all" else coco_split_name(split)
    if not reader.exists(MANIFEST):
        raise DatasetError(f"{path} is not a feedback bundle (it has no {MANIFEST})")
    if not reader.exists(name):
        extra = "; it was exported before bundles had splits: use --split all" if reader.exists(COCO_GT) else ""
        raise DatasetError(f"{path} has no {name}{extra}")
    try:
        gt = reader.json(name)
    except BundleError as e:
        raise DatasetError(str(e)) from None
    if not isinstance(gt, dict):
        raise DatasetError(f"{name} in {path} is not a COCO detection file")

    def image_of(file_name: str) -> Callable[[], np.ndarray] | None:
        member = f"images/{file_name}"
        if not reader.exists(member):
            return None
        return lambda: _decode(reader.read(member), f"{member} in {path}")

    return _coco_images(Path(path), gt, image_of, "bundle", split)


def open_dataset(path: Path, split: str | None = None, images_dir: Path | None = None) -> LabelledSet:
    """The labelled images at ``path`` (see the module's description). ``split``: train, val, test or all for a
    bundle (default test) or a YOLO folder (default test when it has one, else val); a COCO file is one split."""
    p = Path(path)
    if split is not None and split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    if not p.exists():
        raise DatasetError(f"{p} does not exist")
    if (p.is_dir() and (p / "manifest.json").is_file()) or (p.is_file() and p.suffix.lower() == ".zip"):
        return open_bundle(p, split or "test")
    if p.is_file() and p.suffix.lower() == ".json":
        if split not in (None, "all"):
            raise DatasetError(f"{p} is a COCO file, one split already; leave out --split")
        return open_coco(p, images_dir)
    if p.suffix.lower() in (".yaml", ".yml") or (p.is_dir() and (any(p.glob("*.yaml")) or any(p.glob("*.yml")))):
        if split is None:
            yml = p if p.is_file() else (p / "data.yaml" if (p / "data.yaml").is_file() else
                                         sorted([*p.glob("*.yaml"), *p.glob("*.yml")])[0])
            split = "test" if _yaml(yml).get("test") else "val"
        return open_yolo(p, split)
    raise DatasetError(f"{p} is neither a COCO file (.json), a YOLO folder with a data.yaml, nor a feedback bundle")
