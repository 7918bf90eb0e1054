"""Small real models in the layouts users bring: Ultralytics-like ONNX exports and TorchScript files."""

from __future__ import annotations

import io
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from engine.inference.onnxrt import add_metadata

H, W, STRIDE = 256, 320, 32


class TinyYolo(nn.Module):
    """Ultralytics-like detection output: ``(1, 4 + nc, A)`` (or ``(1, A, 4 + nc)``), optionally an embedding.

    Two anchors score high whatever the image (class 0 at the first anchor, class 1 at anchor 37); the rest
    low. The embedding, when asked for, is the mean of a hidden layer of ``emb_dim`` channels.
    """

    def __init__(self, nc: int = 2, transposed: bool = False, emb_dim: int | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        hidden = emb_dim or 8
        self.conv = nn.Conv2d(3, hidden, 3, padding=1)
        self.head = nn.Conv2d(hidden, nc, 1)
        gh, gw = H // STRIDE, W // STRIDE
        ys, xs = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
        cx = (xs.flatten().float() + 0.5) * STRIDE
        cy = (ys.flatten().float() + 0.5) * STRIDE
        self.register_buffer("boxes", torch.stack([cx, cy, torch.full_like(cx, 40.0), torch.full_like(cy, 30.0)])[None])
        bias = torch.full((1, nc, gh * gw), -12.0)
        bias[0, 0, 0] = 12.0
        bias[0, nc - 1, 37] = 12.0
        self.register_buffer("bias", bias)
        self.transposed, self.emb = transposed, emb_dim is not None

    def forward(self, x: torch.Tensor):
        f = F.relu(self.conv(x))
        p = F.avg_pool2d(f, STRIDE)
        cls = torch.sigmoid(self.head(p).flatten(2) * 0.01 + self.bias)
        out = torch.cat([self.boxes.expand(x.shape[0], -1, -1), cls], dim=1)
        if self.transposed:
            out = out.transpose(1, 2)
        return (out, f.mean(dim=(2, 3))) if self.emb else out


ULTRALYTICS_META = {"description": "Ultralytics YOLO11n model", "author": "Ultralytics", "task": "detect",
                    "stride": "32", "batch": "1", "imgsz": f"[{H}, {W}]",
                    "names": "{0: 'scratch', 1: 'dent'}"}


def onnx_model(path: Path, transposed: bool = False, emb_dim: int | None = None,
               meta: dict[str, str] | None = None, nc: int = 2) -> Path:
    buf = io.BytesIO()
    m = TinyYolo(nc=nc, transposed=transposed, emb_dim=emb_dim).eval()
    outs = ["output0"] + (["embedding"] if emb_dim else [])
    torch.onnx.export(m, (torch.zeros(1, 3, H, W),), buf, dynamo=False, input_names=["images"], output_names=outs,
                      opset_version=17)
    path.write_bytes(add_metadata(buf.getvalue(), ULTRALYTICS_META if meta is None else meta))
    return path


def torchscript_model(path: Path, emb_dim: int = 40) -> Path:
    m = torch.jit.trace(TinyYolo(emb_dim=emb_dim).eval(), torch.zeros(1, 3, H, W))
    torch.jit.save(m, str(path), _extra_files={"config.txt": repr({"names": {0: "scratch", 1: "dent"},
                                                                     "imgsz": [H, W], "batch": 1})})
    return path


def perturbed_model(folder, name, shift=-0.5):
    """The built-in weights with the class heat maps' bias shifted, and a card naming it ``name``."""
    import hashlib
    import json

    import resources

    out = folder / f"{name}.pt"
    sd = torch.load(resources.path("builtin_detector.pt"), weights_only=True)
    sd["heat.bias"] = sd["heat.bias"] + shift
    torch.save(sd, out)
    card = json.loads(resources.path("builtin_detector.json").read_text(encoding="utf-8"))
    card.update(name=name, sha256=hashlib.sha256(out.read_bytes()).hexdigest(), weights_file=out.name,
                lineage={"parent": "builtin", "bundles": []})
    out.with_suffix(".json").write_text(json.dumps(card), encoding="utf-8")
    return out
