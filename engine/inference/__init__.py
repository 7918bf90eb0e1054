"""Inference: the built-in defect detector, users' own models, and evaluation against ground truth.

:func:`load_detector` is the one entry point: ``None`` gives the built-in model shipped in
``resources/``; a path gives the built-in network with weights of its own (a ``.pt`` state dict with its
``.json`` card beside it, as ``model train`` writes), or a user's ONNX (``.onnx``, on ONNX Runtime),
``torch.export`` (``.pt2``) or TorchScript model (see
:mod:`engine.inference.user` for the input and output conventions). A file that cannot be used
raises :class:`ModelError` with one sentence, and no user file is ever unpickled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.core.protocols import Detector
from engine.inference.common import ModelError

__all__ = ["ModelError", "describe", "load_detector", "prove"]


def load_detector(path: str | Path | None = None, device: str | None = None,
                  confidence: float | None = None) -> Detector:
    """A ready detector.

    ``path``: ``None`` for the built-in model, else a fine-tuned ``.pt`` with its card, an ONNX, ``.pt2`` or
    TorchScript file.
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
    if _own_weights(Path(path).expanduser()):
        from engine.inference.builtin import BuiltinDetector

        return BuiltinDetector(Path(path).expanduser(), device=device, confidence=confidence)
    from engine.inference.user import UserModelDetector, _sniff

    if _sniff(Path(path).expanduser()) == "onnx":
        from engine.inference.onnxrt import OnnxDetector

        return OnnxDetector(path, device=device, confidence=confidence)
    return UserModelDetector(path, device=device, confidence=confidence)


def _own_weights(path: Path) -> bool:
    """A ``.pt`` state dict of the built-in network with its card beside it (``model train`` writes these): it
    loads as the built-in model does, with ``torch.load(weights_only=True)``, after its SHA-256 is checked."""
    if path.suffix != ".pt" or not path.is_file():
        return False
    import json

    try:
        card = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(card, dict) and str(card.get("weights_format", "")).startswith("PyTorch state_dict")


def describe(detector: Detector) -> str:
    """One line: the model's name, its classes and its input (what the window and ``model info`` show)."""
    classes = ", ".join(getattr(detector, "classes", ()) or ()) or "none"
    w, h = getattr(detector, "input_size", (0, 0))
    return f"{detector.name}: classes {classes}; input {w}x{h} RGB letterboxed; on {getattr(detector, 'device', '?')}"


def prove(detector: Detector, frame: Any = None) -> str:
    """Run ``detector`` on one frame (``frame``, else a grey 1280x1024 one) and check its answer; the line that
    :func:`describe` gives. Raises :class:`ModelError` with one sentence when the model fails on it."""
    import numpy as np

    from engine.core.frame import Frame

    if frame is None:
        frame = Frame(np.full((1024, 1280, 3), 114, np.uint8), "BGR", 0, 0.0, "proof")
    name = getattr(detector, "name", "the model")
    try:
        out = detector.detect([frame])
    except Exception as e:  # noqa: BLE001 - whatever the model does wrong is one sentence
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise ModelError(f"model {name} fails on a {frame.width}x{frame.height} frame ({first})") from None
    if len(out) != 1 or not hasattr(out[0], "boxes"):
        raise ModelError(f"model {name} gives no answer for a frame")
    emb = out[0].embedding
    if emb is not None and not np.all(np.isfinite(emb)):
        raise ModelError(f"model {name} gives an embedding with values that are not numbers")
    return describe(detector)
