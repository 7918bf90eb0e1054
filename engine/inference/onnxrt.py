"""ONNX models on ONNX Runtime: users' own ``.onnx`` files (Ultralytics YOLO exports too).

The same input and output conventions as :mod:`engine.inference.user` (letterbox, RGB in [0, 1];
``(N, 4 + C, A)``, ``(N, A, 4 + C)`` or ``(N, K, 6)``; a further ``(N, D)`` output is the embedding).
Class names and ``imgsz`` come from the model's metadata properties, as Ultralytics writes them
(``names`` a Python-literal dict string). The file is checked first (:mod:`engine.inference.ort`):
external data outside the model's folder is refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.inference.builtin import sha256_of, verify_against_card
from engine.inference.common import ModelError
from engine.inference.ort import add_metadata, available, check_external_data, literal, session
from engine.inference.user import UserModelDetector


class OnnxDetector(UserModelDetector):
    """A user's ONNX model on ONNX Runtime behind the station's ``Detector`` interface."""

    def __init__(self, path: str | Path, device: str | None = None, confidence: float | None = None) -> None:
        self.path = Path(path).expanduser()
        name = self.path.name
        self.format = "onnx"
        self.card_file = self.path.with_suffix(".json")
        if self.card_file.is_file():
            try:
                card = json.loads(self.card_file.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
                raise ModelError(f"model card {self.card_file} cannot be read: {e}") from None
            verify_against_card(self.path, card if isinstance(card, dict) else {}, "model file")
        try:
            data = self.path.read_bytes()
        except OSError as e:
            raise ModelError(f"model file {name} cannot be read: {e.strerror}") from None
        check_external_data(self.path, data)
        self.confidence = float(confidence) if confidence is not None else 0.25
        self.session, self.device = session(str(self.path), device, name)
        inp = self.session.get_inputs()
        if len(inp) != 1:
            raise ModelError(f"model file {name} takes {len(inp)} inputs; the station gives one image tensor")
        self._input = inp[0].name
        self._input_half = inp[0].type == "tensor(float16)"
        shape = list(inp[0].shape)
        if len(shape) != 4:
            raise ModelError(f"model file {name} takes a {len(shape)}-D input; the station gives (N, 3, H, W)")
        static = [s if isinstance(s, int) else None for s in shape]
        meta = {k: literal(v) for k, v in self.session.get_modelmeta().custom_metadata_map.items()}
        sha = sha256_of(self.path)
        self._finish(meta, static, sha, "ONNX")
        self.card["runtime"] = f"ONNX Runtime ({', '.join(self.session.get_providers())})"
        self.half = False

    @property
    def _tensor_device(self) -> str:
        return "cpu"

    def _forward(self, x: torch.Tensor) -> Any:
        arr = x.detach().cpu().numpy()
        arr = arr.astype(np.float16 if self._input_half else np.float32, copy=False)
        if self.batch_one and arr.shape[0] > 1:
            outs = [self.session.run(None, {self._input: arr[i:i + 1]}) for i in range(arr.shape[0])]
            outs = [np.concatenate([o[k] for o in outs]) for k in range(len(outs[0]))]
        else:
            outs = self.session.run(None, {self._input: np.ascontiguousarray(arr)})
        return [torch.from_numpy(np.asarray(o)) for o in outs]


__all__ = ["OnnxDetector", "add_metadata", "available", "check_external_data"]
