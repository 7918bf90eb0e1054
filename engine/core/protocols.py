"""What plugs into the pipeline: detectors, per-frame measurers, and what they return."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from engine.core.frame import Box, Frame


@dataclass(frozen=True)
class Detections:
    """A detector's answer for one frame: boxes in frame pixels with class and score."""

    boxes: tuple[Box, ...]
    embedding: np.ndarray | None = None  # pooled features of the model's last hidden layer
    inference_ms: float = 0.0
    # the scores of the peaks found below the threshold, down to the detector's candidate floor (None: not given)
    candidates: tuple[float, ...] | None = None

    def to_list(self) -> list[dict[str, Any]]:
        return [b.to_dict() for b in self.boxes]


@runtime_checkable
class Detector(Protocol):
    """Batched frames in, one :class:`Detections` per frame out."""

    name: str
    device: str  # "cpu" or "cuda:0": shown in the GUI and written into every record
    classes: tuple[str, ...]

    def detect(self, frames: Sequence[Frame]) -> list[Detections]: ...


@dataclass(frozen=True)
class Alarm:
    name: str
    severity: str  # "warning" or "alarm"
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "severity": self.severity, "message": self.message}


@dataclass
class Measurement:
    """Named per-frame values (numbers or short lists) and any alarms they raise."""

    values: dict[str, Any] = field(default_factory=dict)
    alarms: list[Alarm] = field(default_factory=list)


@runtime_checkable
class Measurer(Protocol):
    """Measures one frame, after the detector has seen it (its detections may be ``None``)."""

    name: str

    def measure(self, frame: Frame, detections: Detections | None) -> Measurement: ...


class BasicStats:
    """Mean level per channel and of luminance, on a subsampled image: cheap enough for every frame.

    The full optical-health statistics replace this once the drift engine is in.
    """

    name = "basic"

    def __init__(self, step: int = 4) -> None:
        self.step = step

    def measure(self, frame: Frame, detections: Detections | None) -> Measurement:
        small = frame.as_order("BGR")[:: self.step, :: self.step].reshape(-1, 3)
        b, g, r = (float(v) for v in small.mean(axis=0))
        return Measurement({"mean_b": round(b, 3), "mean_g": round(g, 3), "mean_r": round(r, 3),
                            "luma": round(0.114 * b + 0.587 * g + 0.299 * r, 3)})
