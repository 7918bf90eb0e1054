"""Defects on the simulated line's parts: scratches, dents and contamination, of varied size, contrast and
position, including faint boundary cases (about one in eight, never on a golden part).

Each is drawn into a part's picture before lighting; what it reports is what can be seen of it: its box on
the part (not over a hole or the belt), its contrast in grey levels and its size in pixels.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import cv2
import numpy as np

DEFECT_CLASSES: tuple[str, ...] = ("scratch", "dent", "contamination")


class DefectMark(NamedTuple):
    """A defect drawn on a part, in the part picture's pixels."""

    class_id: int
    class_name: str
    outline: np.ndarray  # visible extent as [[x0, y0], [x1, y1]]
    contrast: float
    size: float
    faint: bool


def draw_defect(bgr: np.ndarray, alpha: np.ndarray, rng: np.random.Generator, cid: int, cx: int, cy: int,
                golden: bool, scale: float) -> DefectMark | None:
    """Draw a defect of class ``cid`` centred near ``(cx, cy)`` into ``bgr`` (float32, changed in place) of a
    part whose coverage is ``alpha``; ``None`` when none of it can be seen on the part."""
    s = scale
    faint = (not golden) and rng.random() < 0.12
    H, W = alpha.shape
    mask = np.zeros((H, W), np.float32)
    if cid == 0:  # scratch: a thin, slightly curved line, darker or brighter than the surface
        length = (rng.uniform(18, 34) if faint else rng.uniform(35, 130)) * s
        angle = rng.uniform(0, math.pi)
        bend = rng.uniform(-0.25, 0.25)
        n = 12
        ts = np.linspace(-0.5, 0.5, n)
        dx, dy = math.cos(angle), math.sin(angle)
        pts = np.stack([cx + ts * length * dx - bend * length * (ts ** 2 - 0.25) * dy,
                        cy + ts * length * dy + bend * length * (ts ** 2 - 0.25) * dx], 1)
        thick = max(1, int(round(rng.uniform(1.0, 2.6) * s)))
        cv2.polylines(mask, [np.round(pts).astype(np.int32)], False, 1.0, thick, cv2.LINE_AA)
        contrast = rng.uniform(9, 16) if faint else rng.uniform(28, 75)
        sign = -1.0 if rng.random() < 0.7 else 1.0
        bgr += (sign * contrast) * mask[:, :, None]
        visible = mask > 0.3
        size = length
    elif cid == 1:  # dent: a shaded pit, dark on one side and lit on the other
        rad = (rng.uniform(3.5, 5.5) if faint else rng.uniform(6, 17)) * s
        contrast = rng.uniform(10, 18) if faint else rng.uniform(30, 70)
        yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
        d2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / (rad * rad)
        pit = np.exp(-d2 * 1.5)
        rim = np.exp(-(((xx - cx + 0.45 * rad) ** 2 + (yy - cy + 0.45 * rad) ** 2) / (rad * rad)) * 2.5)
        shading = -pit + 0.5 * rim
        bgr += (contrast * shading)[:, :, None]
        visible = np.abs(shading) > 0.2
        size = 2 * rad
    else:  # contamination: an irregular smear of oil or dirt
        rad = (rng.uniform(4, 7) if faint else rng.uniform(8, 26)) * s
        k = int(rng.integers(7, 12))
        ang = np.sort(rng.uniform(0, 2 * math.pi, k))
        rr = rad * rng.uniform(0.55, 1.25, k)
        pts = np.stack([cx + rr * np.cos(ang), cy + rr * np.sin(ang)], 1)
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1.0, cv2.LINE_AA)
        mask = cv2.GaussianBlur(mask, (0, 0), max(0.6, 1.2 * s))
        colour = np.array(rng.choice([[40, 60, 90], [30, 34, 38], [70, 110, 140]]), np.float32)
        opacity = rng.uniform(0.16, 0.3) if faint else rng.uniform(0.5, 0.9)
        a = (mask * opacity)[:, :, None]
        before = float(bgr[int(cy), int(cx)].mean())
        bgr += (colour - bgr) * a
        contrast = abs(before - float(colour.mean())) * opacity
        visible = mask > 0.3
        size = 2 * float(rr.max())
    # The true box bounds what can be seen of the defect: on the part, not over a hole or the belt.
    ys, xs = np.nonzero(visible & (alpha > 0.5))
    if xs.size == 0:
        return None
    outline = np.array([[xs.min(), ys.min()], [xs.max() + 1.0, ys.max() + 1.0]])
    return DefectMark(cid, DEFECT_CLASSES[cid], outline, float(contrast), float(size), bool(faint))
