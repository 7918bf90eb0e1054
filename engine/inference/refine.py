"""Boxes of thin line defects (scratches) refined on the frame itself.

The built-in network sees the frame at half resolution on a 4-pixel output grid. A scratch is
a 1-3 pixel line, often long and diagonal: the network finds it reliably, but its box is often
off by a cell or covers only part of a long line, and a box of a thin line that is a few pixels
off falls below IoU 0.5. So each scratch box the network reports is redrawn around the line it
found, at full resolution:

1. Take the box's neighbourhood (the box grown by half its longer side, at least 12 px), in luma.
2. Take out the surface's row pattern (brushed metal is streaked along the rows, the direction the
   parts travel): subtract each row's median over the neighbourhood.
3. Line response: a pixel on a dark line is darker than both of its neighbours ``d`` pixels away,
   on one side and the other, in at least one of four directions (across the line). The response
   is the smaller of the two differences, the largest over the directions; likewise for bright
   lines. A step edge (a part's rim, a hole's border) has one side level with the pixel, so it
   gives nothing; a wide blob (a hole, a smear) is no darker than its neighbours at ``d``.
4. The line's polarity is the one with the stronger response inside the network's box; pixels
   above ``max(floor, relative * strongest)`` are the line, joined by a 3x3 dilation. Pieces too
   small or too short to be a scratch are noise.
5. The connected pieces that overlap the network's box (by 30 % of either) make the new box. A
   piece that runs out of the neighbourhood is followed: the search is repeated around what was
   found (at most twice more), so the whole of a long line is boxed when the network saw one end.
   When nothing is found, or the new box hardly overlaps the old (IoU < 0.15), the network's box
   stands.

What it cannot do: two scratches that cross are one piece, so one box covers both. It adds no
detection and removes none, and changes no score; it moves boxes only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from engine.core.frame import Box

_DILATE = np.ones((3, 3), np.uint8)


@dataclass(frozen=True)
class LineRefinement:
    """Which boxes to refine and how (the model card's ``box_refinement`` section)."""

    classes: tuple[str, ...] = ("scratch",)
    min_score: float = 0.2  # boxes scoring lower are left alone (they are not reported anyway)
    offset_px: int = 3  # d: the neighbours compared with, in frame pixels; above the widest line
    relative: float = 0.35  # of the strongest response in the box
    floor: float = 5.0  # grey levels; below this nothing counts as line
    min_area_px: int = 30  # pieces (after the 3x3 dilation) smaller than this, or shorter than
    min_length_px: int = 8  # this along both axes, are noise: the shortest scratch is about 18 px

    @classmethod
    def from_card(cls, section: dict[str, Any] | None) -> "LineRefinement | None":
        if not section:
            return None
        known = {k: section[k] for k in ("min_score", "offset_px", "relative", "floor", "min_area_px",
                                               "min_length_px") if k in section}
        return cls(classes=tuple(section.get("classes", cls.classes)), **known)

    def to_card(self) -> dict[str, Any]:
        return {"classes": list(self.classes), "min_score": self.min_score, "offset_px": self.offset_px,
                "relative": self.relative, "floor": self.floor, "min_area_px": self.min_area_px, "min_length_px": self.min_length_px,
                "method": "each box of these classes redrawn around the line it found at full resolution "
                          "(engine/inference/refine.py)"}


def line_response(luma: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, how much darker (first) and brighter (second) it is than both neighbours ``d`` away
    across the line, the most over the horizontal, vertical and two diagonal directions (float32)."""
    y = np.asarray(luma, np.float32)
    h, w = y.shape
    p = cv2.copyMakeBorder(y, d, d, d, d, cv2.BORDER_REPLICATE)
    dark = np.zeros_like(y)
    bright = np.zeros_like(y)
    for dy, dx in ((0, d), (d, 0), (d, d), (d, -d)):
        a = p[d - dy:d - dy + h, d - dx:d - dx + w] - y
        b = p[d + dy:d + dy + h, d + dx:d + dx + w] - y
        np.maximum(dark, np.minimum(a, b), out=dark)
        np.maximum(bright, -np.maximum(a, b), out=bright)
    return dark, bright


def _luma(image: np.ndarray, channel_order: str) -> np.ndarray:
    if image.ndim == 2:
        return image
    code = cv2.COLOR_RGB2GRAY if channel_order == "RGB" else cv2.COLOR_BGR2GRAY
    return cv2.cvtColor(np.ascontiguousarray(image), code)


def _pieces(image: np.ndarray, box: Box, around: tuple[float, float, float, float], params: LineRefinement,
            channel_order: str) -> tuple[np.ndarray | None, tuple[int, int, int, int]]:
    """The line pieces overlapping ``box``, found in the neighbourhood of ``around`` (x0, y0, x1, y1), as
    rows (x0, y0, x1, y1) in frame pixels (``None`` if none), and that neighbourhood."""
    fh, fw = image.shape[:2]
    margin = max(12.0, 0.5 * max(around[2] - around[0], around[3] - around[1]))
    x0, y0 = int(max(0.0, around[0] - margin)), int(max(0.0, around[1] - margin))
    x1, y1 = int(min(fw, around[2] + margin)), int(min(fh, around[3] + margin))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None, (x0, y0, x1, y1)
    roi = _luma(image[y0:y1, x0:x1], channel_order).astype(np.float32)
    roi -= np.median(roi, axis=1, keepdims=True)
    dark, bright = line_response(roi, params.offset_px)
    bx0, by0, bx1, by1 = box.x0 - x0, box.y0 - y0, box.x1 - x0, box.y1 - y0
    inside = (slice(max(0, int(by0)), max(0, int(by1)) + 1), slice(max(0, int(bx0)), max(0, int(bx1)) + 1))
    if dark[inside].size == 0:
        return None, (x0, y0, x1, y1)
    peak_dark, peak_bright = float(dark[inside].max()), float(bright[inside].max())
    resp, peak = (dark, peak_dark) if peak_dark >= peak_bright else (bright, peak_bright)
    mask = cv2.dilate((resp > max(params.floor, params.relative * peak)).astype(np.uint8), _DILATE)
    n, _, st, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    box_area = (bx1 - bx0) * (by1 - by0)
    picked = []
    for cx, cy, cw, ch, area in st[1:n]:
        if area < params.min_area_px or max(cw, ch) < params.min_length_px:
            continue
        ix = min(cx + cw, bx1) - max(cx, bx0)
        iy = min(cy + ch, by1) - max(cy, by0)
        if ix > 0 and iy > 0 and (ix * iy > 0.3 * cw * ch or ix * iy > 0.3 * box_area):
            picked.append((x0 + cx, y0 + cy, x0 + cx + cw, y0 + cy + ch))
    return (np.array(picked, np.float64) if picked else None), (x0, y0, x1, y1)


def refine_line_box(image: np.ndarray, box: Box, params: LineRefinement, channel_order: str = "BGR") -> Box:
    """``box`` redrawn around the line inside it (see the module description); ``box`` itself when
    no line is found there."""
    fh, fw = image.shape[:2]
    around = (box.x0, box.y0, box.x1, box.y1)
    for _ in range(3):
        p, (x0, y0, x1, y1) = _pieces(image, box, around, params, channel_order)
        if p is None:
            return box
        found = (p[:, 0].min(), p[:, 1].min(), p[:, 2].max(), p[:, 3].max())
        # A line that runs out of the neighbourhood (not at the frame's edge) goes on: look again around it.
        cut = ((found[0] <= x0 and x0 > 0) or (found[1] <= y0 and y0 > 0) or (found[2] >= x1 and x1 < fw)
               or (found[3] >= y1 and y1 < fh))
        if not cut:
            break
        around = found
    # The dilation grew every piece by a pixel on each side: take it back.
    new = Box(found[0] + 1, found[1] + 1, found[2] - 1, found[3] - 1, box.class_id, box.class_name, box.score)
    if new.x1 <= new.x0 or new.y1 <= new.y0 or new.iou(box) < 0.15:
        return box
    return new


def refine_boxes(image: np.ndarray, boxes: tuple[Box, ...], params: LineRefinement | None,
                 channel_order: str = "BGR") -> tuple[Box, ...]:
    """Every box of ``params.classes`` scoring at least ``params.min_score`` refined; the rest as they are."""
    if params is None:
        return boxes
    return tuple(refine_line_box(image, b, params, channel_order)
                 if b.class_name in params.classes and (b.score is None or b.score >= params.min_score) else b
                 for b in boxes)
