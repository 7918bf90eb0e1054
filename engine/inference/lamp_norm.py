"""Lamp normalisation: a model's input frame with each colour channel scaled so that its bright end matches the
line the model learnt on.

An ageing lamp gives less light and a warmer one: to a first approximation it multiplies each channel of the
picture by its own factor. The bright end of each channel (its 99th percentile: the parts' lit surface, which a
defect covers too little of to move) measures that factor frame by frame, so the frame can be scaled back before
the network sees it. On the line the model learnt on the factors stay near 1 and the frame is left nearly as it
was. A fine-tuned model (``model train``) carries this stage in its card (``input_normalisation``), measured on
its replay frames; the built-in detector applies it to every frame, on PyTorch and on ONNX Runtime alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

SUBSAMPLE = 4  # every 4th row and column: 20 000 pixels of a 640 x 512 input, enough for a stable percentile
PAD = 114  # the letterbox's padding (engine.inference.common.letterbox): not part of the picture


def content(image: np.ndarray) -> tuple[slice, slice]:
    """Rows and columns of a letterboxed ``image`` inside its padding: the edge rows and columns whose every pixel
    is the pad value are left out (the whole image when it is nothing but that)."""
    pad = (image == PAD).all(axis=2)
    rows, cols = np.flatnonzero(~pad.all(axis=1)), np.flatnonzero(~pad.all(axis=0))
    if not len(rows) or not len(cols):
        return slice(None), slice(None)
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)


def bright_level(image: np.ndarray, percentile: float, channel_order: str = "RGB",
                 region: tuple[slice, slice] | None = None) -> np.ndarray:
    """The ``percentile`` of each channel of ``image`` (H x W x 3 uint8) inside ``region`` (default: its
    :func:`content`, the padding left out), as R, G, B."""
    ys, xs = region if region is not None else content(image)
    px = image[ys, xs][::SUBSAMPLE, ::SUBSAMPLE].reshape(-1, 3)
    level = np.percentile(px, percentile, axis=0).astype(np.float32)
    return level[::-1].copy() if channel_order == "BGR" else level


@dataclass(frozen=True)
class LampNorm:
    """Scale each channel so that its ``percentile`` is ``reference`` (R, G, B), by at most ``gain_range``."""

    reference: tuple[float, float, float]
    percentile: float = 99.0
    gain_range: tuple[float, float] = (0.5, 2.5)

    @classmethod
    def measure(cls, images: Sequence[np.ndarray], percentile: float = 99.0) -> LampNorm:
        """The reference of RGB ``images`` (the line a model learnt on): the median over frames of their level."""
        if not len(images):
            raise ValueError("no frames to measure a lamp reference on")
        levels = np.array([bright_level(im, percentile) for im in images])
        return cls(tuple(float(v) for v in np.median(levels, axis=0)), float(percentile))  # type: ignore[arg-type]

    @classmethod
    def from_card(cls, card: dict[str, Any]) -> LampNorm | None:
        """The card's ``input_normalisation``, or None when it has none; a malformed one raises ValueError."""
        d = card.get("input_normalisation")
        if d is None:
            return None
        try:
            if not isinstance(d, dict) or not isinstance(d["reference_rgb"], (list, tuple)):
                raise TypeError
            ref = tuple(float(v) for v in d["reference_rgb"])
            lo, hi = (float(v) for v in d.get("gain_range", (0.5, 2.5)))
            p = float(d.get("percentile", 99.0))
        except (TypeError, KeyError, ValueError):
            raise ValueError("its input_normalisation needs a reference_rgb of three numbers, and a gain_range of "
                             "two and a percentile if it names them") from None
        if len(ref) != 3 or not all(0 < v <= 255 for v in ref) or not 0 < lo <= 1 <= hi or not 50 <= p <= 100:
            raise ValueError("its input_normalisation is out of range (reference 0-255, gains around 1, percentile "
                             "50-100)")
        return cls(ref, p, (lo, hi))  # type: ignore[arg-type]

    def to_card(self) -> dict[str, Any]:
        return {"kind": "per-channel gain to the reference's bright end, frame by frame",
                "percentile": self.percentile, "reference_rgb": [round(v, 2) for v in self.reference],
                "gain_range": list(self.gain_range)}

    def gains(self, image: np.ndarray, channel_order: str = "RGB",
              region: tuple[slice, slice] | None = None) -> np.ndarray:
        """The R, G, B factors for ``image`` (H x W x 3 uint8 in ``channel_order``), measured inside ``region``
        (default: its :func:`content`)."""
        level = np.maximum(bright_level(image, self.percentile, channel_order, region), 1.0)
        return np.clip(np.asarray(self.reference, np.float32) / level, *self.gain_range).astype(np.float32)

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        """``rgb`` (uint8, letterboxed or not) normalised, as uint8; the padding is left as it was."""
        ys, xs = region = content(rgb)
        out = rgb.copy()
        scaled = rgb[ys, xs].astype(np.float32) * self.gains(rgb, "RGB", region)[None, None, :]
        out[ys, xs] = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
        return out

    def scale_input(self, x: np.ndarray, image: np.ndarray, channel_order: str) -> None:
        """Normalise the network's input ``x`` (3 x H x W float in [0, 1], RGB) made from ``image`` (H x W x 3
        uint8 in ``channel_order``), in place: the picture scaled, the padding left, nothing above 1."""
        ys, xs = region = content(image)
        inside = x[:, ys, xs]
        inside *= self.gains(image, channel_order, region)[:, None, None]
        np.minimum(inside, np.float32(1.0), out=inside)
