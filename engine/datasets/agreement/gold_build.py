"""Rendering a gold set from the simulated line: clear and faint defects of each class, and regions
without one, cropped to pictures with their reference answers."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from engine.core.files import write_atomic
from engine.datasets.agreement.gold import GOLD_FILE, GoldSet, load_gold_set
from engine.datasets.agreement.report import NONE_LABEL

GOLD_CROP = 144  # pixels of a 1280-wide frame (0.1 mm each) around the marked region

DEFAULT_CRITERIA = {
    "scratch": "A scratch is a thin line mark, darker or brighter than the brushed surface, at least 1.5 mm "
               "(15 px at 1280 px width) long. Faint scratches count: a line 2-3 mm long with only 10 grey levels "
               "of contrast is a scratch when it reads as one continuous line at 100 % zoom. The brushing grain "
               "(short streaks all over the plate, all in one direction) is not a scratch.",
    "dent": "A dent is a round pit shaded dark on one side and lit on the other (the light comes from the upper "
            "left). Dents down to 0.7 mm across count. A round mark of one flat colour with no lit side is "
            "contamination, not a dent.",
    "contamination": "Contamination is an irregular smear of oil or dirt, flat-coloured (brown, grey or bluish) "
                     "with no highlight. A faint smear counts, however light, when its outline can be traced.",
    "none": "No defect: the plain brushed surface, the plate's edge, a mounting hole, the belt. When the marked "
            "region shows none of the three defects, the detection is rejected.",
}


def build_gold_set(folder: Path, seed: int = 3, per_class: tuple[int, int] = (3, 3), none_items: int = 6,
                   max_slots: int = 3000) -> GoldSet:
    """Render a gold set from the simulated line: for each class ``per_class`` = (clear, faint) defects, and
    ``none_items`` regions without a defect, cropped to PNG with their reference answers. Written criteria
    already in ``folder`` are kept (engineers edit them); the items are replaced."""
    import cv2

    from engine.simulation.defects import DEFECT_CLASSES
    from engine.simulation.line import LineSimulator
    from engine.simulation.optics import mm_per_px

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    criteria = dict(DEFAULT_CRITERIA)
    old = folder / GOLD_FILE
    if old.exists():
        try:
            criteria.update(json.loads(old.read_text(encoding="utf-8")).get("criteria", {}))
        except (OSError, json.JSONDecodeError):
            pass
    sim = LineSimulator(seed=seed, scenario="nominal", width=1280, height=1024)
    mm = mm_per_px(1280)
    want = {(c, f): per_class[1 if f else 0] for c in DEFECT_CLASSES for f in (False, True)}
    used: set[tuple] = set()
    items: list[dict[str, Any]] = []
    crops: dict[str, np.ndarray] = {}
    rng = np.random.default_rng(seed)
    half = GOLD_CROP // 2
    nones = 0
    for slot in range(max_slots):
        if not any(want.values()) and nones >= none_items:
            break
        image, truth = sim.render(slot)
        h, w = image.shape[:2]
        boxes = [d.box for d in truth.defects]
        for d in truth.defects:
            key = (d.box.class_name, d.faint)
            ident = (d.part_id, d.box.class_name, round(d.size_px, 1))
            if want.get(key, 0) <= 0 or ident in used:
                continue
            cx, cy = (d.box.x0 + d.box.x1) / 2, (d.box.y0 + d.box.y1) / 2
            x0, y0 = int(round(cx)) - half, int(round(cy)) - half
            if x0 < 0 or y0 < 0 or x0 + GOLD_CROP > w or y0 + GOLD_CROP > h:
                continue
            if d.box.width > GOLD_CROP - 8 or d.box.height > GOLD_CROP - 8:
                continue
            if any(b is not d.box and b.x1 > x0 and b.x0 < x0 + GOLD_CROP and b.y1 > y0 and b.y0 < y0 + GOLD_CROP
                   for b in boxes):
                continue  # one defect per picture, so the answer is not ambiguous
            used.add(ident)
            want[key] -= 1
            iid = f"{d.box.class_name}-{'faint' if d.faint else 'clear'}-{want[key] + 1}"
            crops[iid] = image[y0:y0 + GOLD_CROP, x0:x0 + GOLD_CROP]
            extent = f"{d.size_px * mm:.1f} mm" + (" long" if d.box.class_name == "scratch" else " across")
            items.append({"id": iid, "image": f"{iid}.png",
                          "box": [round(d.box.x0 - x0 - 2, 1), round(d.box.y0 - y0 - 2, 1),
                                  round(d.box.x1 - x0 + 2, 1), round(d.box.y1 - y0 + 2, 1)],
                          "answer": d.box.class_name, "criterion": d.box.class_name, "boundary": bool(d.faint),
                          "note": f"{'faint ' if d.faint else ''}{d.box.class_name}, {extent}, contrast "
                                  f"{d.contrast:.0f} grey levels"})
        if nones < none_items and slot % 7 == 3:
            luma = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
            for _ in range(40):
                cx, cy = int(rng.integers(half, w - half)), int(rng.integers(half, h - half))
                x0, y0 = cx - half, cy - half
                win = luma[y0:y0 + GOLD_CROP, x0:x0 + GOLD_CROP]
                edge = nones % 2 == 1  # every other one straddles the plate's edge
                ok = (90 < win.mean() < 135) if edge else (win.min() > 110)
                clear = not any(b.x1 > x0 - 10 and b.x0 < x0 + GOLD_CROP + 10 and b.y1 > y0 - 10
                                and b.y0 < y0 + GOLD_CROP + 10 for b in boxes)
                if ok and clear:
                    nones += 1
                    iid = f"none-{'edge' if edge else 'surface'}-{nones}"
                    s = float(rng.uniform(14, 34))
                    crops[iid] = image[y0:y0 + GOLD_CROP, x0:x0 + GOLD_CROP]
                    items.append({"id": iid, "image": f"{iid}.png",
                                  "box": [round(half - s / 2, 1), round(half - s / 2, 1),
                                          round(half + s / 2, 1), round(half + s / 2, 1)],
                                  "answer": NONE_LABEL, "criterion": NONE_LABEL, "boundary": edge,
                                  "note": "the plate's edge and the belt, no defect" if edge
                                  else "brushed surface only, no defect"})
                    break
    if any(v > 0 for v in want.values()) or nones < none_items:
        raise ValueError(f"the simulated line gave too few suitable defects in {max_slots} frames")
    order = sorted(items, key=lambda it: int.from_bytes(
        hashlib.sha256(f"{seed}:{it['id']}".encode()).digest()[:4], "big"))  # mixed, stable order
    for p in folder.glob("*.png"):
        p.unlink()
    for iid, crop in crops.items():
        ok, buf = cv2.imencode(".png", crop, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        if not ok:
            raise ValueError("a gold image could not be encoded")
        write_atomic(folder / f"{iid}.png", buf.tobytes())
    doc = {"version": f"sim-{seed}-{time.strftime('%Y%m%d', time.gmtime())}",
           "about": "Reference answers for the calibration exercise. Each item is a picture of part of a plate "
                    "with a marked region; the answer is what the region shows (a class, or none). Edit the "
                    "criteria to sharpen them; regenerate the pictures with `inspection-station agreement "
                    "gold-build`.",
           "classes": list(DEFECT_CLASSES), "criteria": criteria, "items": order}
    write_atomic(folder / GOLD_FILE, json.dumps(doc, indent=1) + "\n")
    return load_gold_set(folder)
