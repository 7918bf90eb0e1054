"""The built-in detector: shipped weights (a state dict, loaded with ``weights_only=True``) and card."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.nn import functional as F

import resources
from engine.core.files import sha256_file
from engine.core.frame import Box, Frame
from engine.core.protocols import Detections
from engine.inference.common import ModelError, letterbox, to_tensor
from engine.inference.lamp_norm import LampNorm
from engine.inference.model import INPUT_H, INPUT_W, STRIDE, TinyCenterNet
from engine.inference.refine import LineRefinement, refine_boxes

WEIGHTS_NAME = "builtin_detector.pt"
ONNX_NAME = "builtin_detector.onnx"  # the same network for ONNX Runtime (``model export-onnx``)
BACKENDS = ("auto", "torch", "onnx")
CARD_NAME = "builtin_detector.json"
MAX_DETECTIONS = 100
CANDIDATE_FLOOR = 0.05  # peaks below the threshold down to this are reported as candidates' scores (no boxes)


sha256_of = sha256_file  # the name the detectors, the trainer and their callers use


def verify_against_card(path: Path, card: dict[str, Any], what: str = "model file") -> str:
    """The file's SHA-256, checked against the card's ``sha256`` (when the card has one) before anything
    loads it: a file that is not the one its card describes is refused."""
    try:
        actual = sha256_of(path)
    except FileNotFoundError:
        raise ModelError(f"{what} {path} are missing" if what.endswith("weights") else
                         f"{what} {path} does not exist") from None
    except OSError as e:
        raise ModelError(f"{what} {path} cannot be read: {e.strerror}") from None
    expected = card.get("sha256")
    if expected and str(expected).lower() != actual:
        raise ModelError(f"the SHA-256 of {what} {Path(path).name} ({actual[:12]}…) does not match its model card "
                         f"({str(expected)[:12]}…), so it is not loaded")
    return actual


def card_path_for(weights: str | Path) -> Path:
    """The card next to a weights file: ``NAME.json`` beside ``NAME.pt``."""
    return Path(weights).with_suffix(".json")


def builtin_paths() -> tuple[Path, Path]:
    return resources.path(WEIGHTS_NAME), resources.path(CARD_NAME)


def read_card(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        card = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"model card {p} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"model card {p} cannot be read: {e}") from None
    if not isinstance(card, dict) or "classes" not in card:
        raise ModelError(f"model card {p} has no list of classes")
    return card


def decode(heat_logits: torch.Tensor, box_out: torch.Tensor, confidence: float,
           max_det: int = MAX_DETECTIONS) -> list[torch.Tensor]:
    """Heat-map peaks to boxes in input pixels: one K x 6 tensor (x0 y0 x1 y1 score class) per image."""
    heat = torch.sigmoid(heat_logits)
    peaks = heat == F.max_pool2d(heat, 3, 1, 1)
    heat = heat * peaks
    n, c, h, w = heat.shape
    scores, idx = heat.reshape(n, -1).topk(min(max_det, c * h * w), dim=1)
    out = []
    for b in range(n):
        keep = scores[b] >= confidence
        s, i = scores[b][keep], idx[b][keep]
        cls = i // (h * w)
        cell = i % (h * w)
        ci, cj = cell // w, cell % w
        reg = box_out[b].reshape(4, -1)[:, cell]
        cx = (cj.float() + torch.sigmoid(reg[0])) * STRIDE
        cy = (ci.float() + torch.sigmoid(reg[1])) * STRIDE
        bw = torch.exp(reg[2].clamp(max=6.0)) * STRIDE
        bh = torch.exp(reg[3].clamp(max=6.0)) * STRIDE
        out.append(torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2, s, cls.float()], dim=1))
    return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def decode_numpy(heat_logits: np.ndarray, box_out: np.ndarray, confidence: float,
                 max_det: int = MAX_DETECTIONS) -> list[np.ndarray]:
    """:func:`decode` in NumPy and OpenCV for outputs that are already arrays (ONNX Runtime): the same peaks (a
    3x3 maximum filter), the ``max_det`` best scoring at least ``confidence``, best first."""
    heat = _sigmoid(heat_logits.astype(np.float32, copy=False))
    n, c, h, w = heat.shape
    kernel = np.ones((3, 3), np.uint8)
    out = []
    for b in range(n):
        hb = heat[b]
        peak = np.stack([cv2.dilate(hb[k], kernel, borderType=cv2.BORDER_CONSTANT, borderValue=-np.inf)
                         for k in range(c)])
        flat = hb.reshape(-1)
        idx = np.flatnonzero((hb >= peak).reshape(-1) & (flat >= confidence))
        idx = idx[np.argsort(-flat[idx], kind="stable")][:max_det]
        s = flat[idx]
        cls = idx // (h * w)
        cell = idx % (h * w)
        ci, cj = cell // w, cell % w
        reg = box_out[b].reshape(4, -1)[:, cell].astype(np.float32, copy=False)
        cx = (cj.astype(np.float32) + _sigmoid(reg[0])) * STRIDE
        cy = (ci.astype(np.float32) + _sigmoid(reg[1])) * STRIDE
        bw = np.exp(np.minimum(reg[2], 6.0)) * STRIDE
        bh = np.exp(np.minimum(reg[3], 6.0)) * STRIDE
        out.append(np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2, s, cls.astype(np.float32)],
                            axis=1).astype(np.float32))
    return out


def pick_device(device: str | None) -> str:
    if device is None:
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"device {device!r} was asked for, but no CUDA GPU is available to PyTorch")
    if device == "cuda":
        return "cuda:0"
    if device != "cpu" and not device.startswith("cuda:"):
        raise ModelError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'cuda:N'")
    return device


class BuiltinDetector:
    """The shipped tiny CenterNet. ``confidence`` is the score a box needs to be reported (settable).

    When the card has a ``box_refinement`` section, the boxes of its classes are redrawn on the
    full-resolution frame (:mod:`engine.inference.refine`); ``refine=False`` reports the network's own boxes.
    """

    def __init__(self, weights: str | Path | None = None, card: str | Path | None = None, device: str | None = None,
                 confidence: float | None = None, refine: bool = True, backend: str = "auto") -> None:
        w_default, c_default = builtin_paths()
        self.weights_path = Path(weights) if weights is not None else w_default
        card_file = Path(card) if card is not None else (c_default if weights is None else card_path_for(weights))
        self.card = read_card(card_file)
        self.classes: tuple[str, ...] = tuple(self.card["classes"])
        self.device = pick_device(device)
        self.confidence = float(confidence if confidence is not None else self.card.get("confidence_threshold", 0.3))
        self.sha256 = verify_against_card(self.weights_path, self.card, "built-in model weights")
        try:
            state = torch.load(self.weights_path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise ModelError(f"built-in model weights {self.weights_path} are missing") from None
        except Exception as e:  # noqa: BLE001 - any failure to read the file is one sentence for the user
            raise ModelError(f"built-in model weights {self.weights_path} cannot be read ({type(e).__name__})") from None
        model = TinyCenterNet(len(self.classes))
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError) as e:
            raise ModelError(f"built-in model weights {self.weights_path} do not fit the network "
                             f"({str(e).splitlines()[0][:120]})") from None
        self.model = model.eval().to(self.device, memory_format=torch.channels_last)
        self.session = self._onnx_session(backend)
        self._input = np.empty((1, 3, INPUT_H, INPUT_W), np.float32)  # ONNX Runtime's input, filled in place
        self._input_lock = threading.Lock()
        self.backend = "ONNX Runtime" if self.session is not None else "PyTorch"
        self.input_size = (INPUT_W, INPUT_H)
        self.name = f"builtin {self.card.get('name', 'detector')} {self.sha256[:8]}"
        self.embedding_source = "model: global average of the last hidden layer (48 channels)"
        self.refinement = LineRefinement.from_card(self.card.get("box_refinement")) if refine else None
        try:
            self.lamp_norm = LampNorm.from_card(self.card)
        except ValueError as e:
            raise ModelError(f"model card {card_file.name} cannot be used: {e}") from None
        self.card = {**self.card, "runtime": self.backend}


    def _onnx_session(self, backend: str) -> Any:
        """ONNX Runtime's session for the ONNX copy beside the weights, when ``backend`` allows it, the copy is
        there, was made from these weights, and ONNX Runtime is installed; else None (PyTorch runs)."""
        if backend not in BACKENDS:
            raise ModelError(f"unknown backend {backend!r}; use {', '.join(BACKENDS)}")
        if backend == "torch":
            return None
        path = self.weights_path.with_suffix(".onnx")
        from engine.inference import ort as onnxrt

        why = None
        if not path.is_file():
            why = f"{path.name} is not there"
        elif not onnxrt.available():
            why = "ONNX Runtime is not installed"
        elif self.device != "cpu":
            why = "it runs here on the CPU only"
        if why is None:
            sess, _ = onnxrt.session(str(path), "cpu", path.name)
            made_from = sess.get_modelmeta().custom_metadata_map.get("weights_sha256")
            if made_from == self.sha256:
                return sess
            why = f"{path.name} was not made from these weights (model export-onnx makes it again)"
        if backend == "onnx":
            raise ModelError(f"the built-in model cannot run on ONNX Runtime: {why}")
        return None

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        if not frames:
            return []
        if self.session is not None:
            return self._detect_onnx(frames)
        t0 = time.perf_counter()
        imgs, boxes = [], []
        for f in frames:
            img, lb = letterbox(f.image, INPUT_W, INPUT_H)  # resize first: the channel swap is then cheap
            imgs.append(img[:, :, ::-1] if f.channel_order == "BGR" else img)
            boxes.append(lb)
        x = to_tensor(imgs, channels_last=self.session is None)
        if self.lamp_norm is not None:
            for xi, im in zip(x.numpy(), imgs):  # a view of the batch: scaled in place
                self.lamp_norm.scale_input(xi, im, "RGB")
        x = x.to(self.device)
        with torch.inference_mode():
            if self.session is not None:
                heat, box, emb = (torch.from_numpy(o) for o in self.session.run(None, {"images": x.numpy()}))
            else:
                heat, box, emb = self.model(x)
            dets = [d.cpu() for d in decode(heat, box, min(self.confidence, CANDIDATE_FLOOR))]
            below = [tuple(d[d[:, 4] < self.confidence, 4].tolist()) for d in dets]
            dets = [d[d[:, 4] >= self.confidence] for d in dets]
            emb = emb.float().cpu().numpy()
        found = []
        for f, lb, d in zip(frames, boxes, dets):
            xy = lb.to_frame(d[:, :4], f.width, f.height)
            found.append(refine_boxes(f.image, tuple(
                Box(float(b[0]), float(b[1]), float(b[2]), float(b[3]), int(c), self.classes[int(c)], float(s))
                for b, s, c in zip(xy.tolist(), d[:, 4].tolist(), d[:, 5].tolist()) if b[2] > b[0] and b[3] > b[1]),
                self.refinement, f.channel_order))
        ms = (time.perf_counter() - t0) * 1000.0 / len(frames)
        return [Detections(b, np.ascontiguousarray(e), ms, c) for b, e, c in zip(found, emb, below)]

    def _detect_onnx(self, frames: Sequence[Frame]) -> list[Detections]:
        """On ONNX Runtime, without torch: the letterboxed frame is scaled straight into a preallocated input
        (channel by channel, swapping to RGB), and the outputs are decoded in NumPy."""
        out = []
        for f in frames:
            t0 = time.perf_counter()
            img, lb = letterbox(f.image, INPUT_W, INPUT_H)
            order = (2, 1, 0) if f.channel_order == "BGR" else (0, 1, 2)
            with self._input_lock:
                x = self._input
                for c, src in enumerate(order):
                    np.divide(img[:, :, src], np.float32(255.0), out=x[0, c], dtype=np.float32)
                if self.lamp_norm is not None:
                    self.lamp_norm.scale_input(x[0], img, f.channel_order)
                heat, box, emb = self.session.run(None, {"images": x})
            d = decode_numpy(heat, box, min(self.confidence, CANDIDATE_FLOOR))[0]
            below = tuple(d[d[:, 4] < self.confidence, 4].tolist())  # the candidates' scores, for field accuracy
            d = d[d[:, 4] >= self.confidence]
            xy = d[:, :4].astype(np.float64)
            xy[:, 0::2] = np.clip((xy[:, 0::2] - lb.pad_x) / lb.scale, 0, f.width - 1)
            xy[:, 1::2] = np.clip((xy[:, 1::2] - lb.pad_y) / lb.scale, 0, f.height - 1)
            boxes = tuple(Box(float(b[0]), float(b[1]), float(b[2]), float(b[3]), int(c), self.classes[int(c)],
                              float(sc))
                          for b, sc, c in zip(xy.tolist(), d[:, 4].tolist(), d[:, 5].tolist())
                          if b[2] > b[0] and b[3] > b[1])
            boxes = refine_boxes(f.image, boxes, self.refinement, f.channel_order)
            ms = (time.perf_counter() - t0) * 1000.0
            out.append(Detections(boxes, np.ascontiguousarray(emb[0], dtype=np.float32), ms, below))
        return out


def export_onnx(out: str | Path, weights: str | Path | None = None) -> Path:
    """Write the built-in network (``weights``: default the shipped ones) as ONNX to ``out``: input ``images``
    ``(N, 3, 512, 640)``, outputs ``heat``, ``box``, ``embedding``; metadata: classes and the weights' SHA-256, and
    the card's ``input_normalisation`` (JSON) when it has one: the graph itself takes the frame as it is, so a
    runtime elsewhere must scale the channels as :mod:`engine.inference.lamp_norm` says before it."""
    det = BuiltinDetector(weights, device="cpu", refine=False, backend="torch")
    model = det.model.to(memory_format=torch.contiguous_format)
    import io
    import warnings

    from engine.inference.ort import add_metadata

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(model, (torch.zeros(1, 3, INPUT_H, INPUT_W),), buf, dynamo=False, opset_version=17,
                              input_names=["images"], output_names=["heat", "box", "embedding"],
                              dynamic_axes={"images": {0: "batch"}, "heat": {0: "batch"}, "box": {0: "batch"},
                                            "embedding": {0: "batch"}})
        except Exception as e:  # noqa: BLE001 - e.g. the onnx package missing
            raise ModelError(f"the built-in model cannot be exported to ONNX ({str(e).strip().splitlines()[0]})") from None
    names = {i: c for i, c in enumerate(det.classes)}
    data = add_metadata(buf.getvalue(), {"names": repr(names), "imgsz": f"[{INPUT_H}, {INPUT_W}]",
                                         "weights_sha256": det.sha256, "description": det.card.get("name", ""),
                                         **({"input_normalisation": json.dumps(det.lamp_norm.to_card())}
                                            if det.lamp_norm is not None else {})})
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(out)
    return out
