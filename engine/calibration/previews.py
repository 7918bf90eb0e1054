"""What the technician sees while a recalibration step runs: the exposure advice in words, the focus gauge
under the live view, the golden parts with the model's boxes and the known defects."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np


def exposure_advice(now: dict[str, Any]) -> str:
    """The corrections that bring brightness and colour balance back to the reference, in words."""
    parts = []
    luma = now["mean_luma"]
    if "reference" in luma and luma["current"] > 0:
        ratio = luma["reference"] / luma["current"]
        ev = math.log2(ratio)
        word = "raise" if ratio > 1 else "lower"
        parts.append(f"{word} exposure by {abs(ratio - 1):.1%} ({ev:+.2f} EV)" + ("" if not luma["ok"] else " (in band)"))
    for k, colour in (("gain_r", "red"), ("gain_b", "blue")):
        r = now[k]
        if "reference" in r and r["current"]:
            parts.append(f"{colour} gain x{r['reference'] / r['current']:.3f}" + (" (in band)" if r["ok"] else ""))
    return "To match the reference: " + ", ".join(parts) + "."


def focus_gauge(image: np.ndarray, value: float, peak: float, band: tuple[float, float] | None) -> None:
    """A focus gauge along the bottom of the preview: value, peak hold and the reference band."""
    h, w = image.shape[:2]
    top = max(0, h - max(14, h // 18))
    scale = max(peak, band[1] if band else 0.0, value, 1e-6) * 1.1

    def x(v: float) -> int:
        return round(min(max(v / scale, 0.0), 1.0) * (w - 1))

    cv2.rectangle(image, (0, top), (w - 1, h - 1), (40, 40, 40), -1)
    if band is not None:
        cv2.rectangle(image, (x(band[0]), top), (x(band[1]), h - 1), (60, 140, 60), -1)
    cv2.rectangle(image, (0, top + 3), (x(value), h - 4), (0, 200, 255), -1)
    cv2.line(image, (x(peak), top), (x(peak), h - 1), (255, 255, 255), 2)


def draw_boxes(image: np.ndarray, dets: Sequence[Any], truth: Sequence[Any]) -> np.ndarray:
    out = image.copy()
    for b in truth:
        cv2.rectangle(out, (int(b.x0), int(b.y0)), (int(b.x1), int(b.y1)), (0, 220, 255), 1)
    for b in dets:
        cv2.rectangle(out, (int(b.x0), int(b.y0)), (int(b.x1), int(b.y1)), (60, 220, 60), 2)
        cv2.putText(out, b.class_name, (int(b.x0), max(10, int(b.y0) - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (60, 220, 60), 1, cv2.LINE_AA)
    return out
