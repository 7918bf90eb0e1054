"""Inference: the built-in defect detector, users' own models, and evaluation against ground truth.

:func:`load_detector` is the one entry point: ``None`` gives the built-in model shipped in
``resources/``; a path gives a user's ONNX (``.onnx``, on ONNX Runtime), ``torch.export`` (``.pt2``) or
TorchScript model (see
:mod:`engine.inference.user` for the input and output conventions). A file that cannot be used
raises :class:`ModelError` with one sentence, and no user file is ever unpickled.
"""

from __future__ import annotations

from pathlib import Path

from engine.inference.common import ModelError
from engine.core.protocols import Detector

__all__ = ["ModelError", "load_detector"]


def load_detector(path: str | Path | None = None, device: str | None = None,
                  confidence: float | None = None) -> Detector:
    """A ready detector.

    ``path``: ``None`` for the built-in model, else an ONNX, ``.pt2`` or TorchScript file.
    ``device``: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; ``None`` picks CUDA when PyTorch sees a GPU.
    ``confidence``: the score a box needs to be reported, in [0, 1]; ``None`` takes the model
    card's threshold (built-in) or 0.25 (user models). The detector's ``confidence`` attribute can
    be changed later.
    """
    if confidence is not None and not 0.0 <= float(confidence) <= 1.0:
        raise ModelError(f"confidence must be between 0 and 1, got {confidence}")
    if path is None or str(path) == "":
        from engine.inference.builtin import BuiltinDetector

        return BuiltinDetector(device=device, confidence=confidence)
    from engine.inference.user import UserModelDetector, _sniff

    if _sniff(Path(path).expanduser()) == "onnx":
        from engine.inference.onnxrt import OnnxDetector

        return OnnxDetector(path, device=device, confidence=confidence)
    return UserModelDetector(path, device=device, confidence=confidence)
