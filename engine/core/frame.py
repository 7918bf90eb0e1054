"""Frames and boxes: the data that flows from a source through the pipeline.

A :class:`Frame` is a C-contiguous ``uint8`` array of shape ``(H, W, 3)`` with an
explicit channel order. OpenCV delivers BGR; the simulator does too, so BGR is the
station's native order and conversions happen only where something needs RGB.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

CHANNEL_ORDERS = ("BGR", "RGB")


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned box in frame pixels, ``x0 <= x1`` and ``y0 <= y1``."""

    x0: float
    y0: float
    x1: float
    y1: float
    class_id: int
    class_name: str
    score: float | None = None

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    def iou(self, other: Box) -> float:
        ix = max(0.0, min(self.x1, other.x1) - max(self.x0, other.x0))
        iy = max(0.0, min(self.y1, other.y1) - max(self.y0, other.y0))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "box": [round(self.x0, 2), round(self.y0, 2), round(self.x1, 2), round(self.y1, 2)],
            "class_id": self.class_id,
            "class_name": self.class_name,
        }
        if self.score is not None:
            d["score"] = round(float(self.score), 4)
        return d


@dataclass(frozen=True, slots=True)
class DefectTruth:
    """One defect the simulator drew, with what makes it easy or hard to see."""

    box: Box
    part_id: int
    contrast: float  # grey levels between the defect and the surface around it
    size_px: float  # longest extent in frame pixels
    faint: bool  # a boundary case: low contrast or small

    def to_dict(self) -> dict[str, Any]:
        d = self.box.to_dict()
        d.update(part_id=self.part_id, contrast=round(self.contrast, 1),
                 size_px=round(self.size_px, 1), faint=self.faint)
        return d


@dataclass(frozen=True, slots=True)
class GroundTruth:
    """What is really in a simulated frame."""

    defects: tuple[DefectTruth, ...]
    conditions: dict[str, Any] = field(default_factory=dict)

    @property
    def boxes(self) -> tuple[Box, ...]:
        return tuple(d.box for d in self.defects)

    def to_dict(self) -> dict[str, Any]:
        return {"defects": [d.to_dict() for d in self.defects], "conditions": self.conditions}


@dataclass(frozen=True, slots=True, eq=False)
class Frame:
    """One image from a source.

    ``sequence`` is the source's own frame counter: gaps in it are frames the
    camera produced that nobody read. ``timestamp`` is the capture time in seconds
    since the epoch on the source's clock (the simulated line clock for ``sim://``).
    """

    image: np.ndarray
    channel_order: str
    sequence: int
    timestamp: float
    source_id: str
    ground_truth: GroundTruth | None = None

    def __post_init__(self) -> None:
        img = self.image
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"a frame must be a uint8 HxWx3 array, got {getattr(img, 'dtype', type(img))} "
                             f"{getattr(img, 'shape', '')}")
        if not img.flags.c_contiguous:
            raise ValueError("a frame's image must be C-contiguous")
        if self.channel_order not in CHANNEL_ORDERS:
            raise ValueError(f"channel order must be one of {CHANNEL_ORDERS}, got {self.channel_order!r}")

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    def as_order(self, order: str) -> np.ndarray:
        """The image in the requested channel order (a copy only when it differs)."""
        if order not in CHANNEL_ORDERS:
            raise ValueError(f"channel order must be one of {CHANNEL_ORDERS}, got {order!r}")
        if order == self.channel_order:
            return self.image
        return np.ascontiguousarray(self.image[:, :, ::-1])


def as_frame_image(image: np.ndarray) -> np.ndarray:
    """Coerce a decoded image (grey, BGR or BGRA, any contiguity) to contiguous HxWx3 uint8."""
    if image.dtype != np.uint8:
        if np.issubdtype(image.dtype, np.integer) and image.dtype.itemsize == 2:
            image = (image >> 8).astype(np.uint8)
        else:
            raise ValueError(f"unsupported pixel type {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    elif image.ndim == 3 and image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"unsupported image shape {image.shape}")
    return np.ascontiguousarray(image)
