"""User models: each supported format, built here with outputs known in advance, and every way a file can be wrong."""

from __future__ import annotations

import json
import logging
import os
import pickle
import zipfile

import numpy as np
import pytest
import torch
from torch import nn

from engine.inference import ModelError, load_detector
from engine.inference.common import box_iou, letterbox, nms
from engine.core.frame import Frame

# Building TorchScript test models calls torch.jit, which torch itself marks deprecated.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")


def frame(w: int = 128, h: int = 128) -> Frame:
    rng = np.random.default_rng(0)
    return Frame(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), "BGR", 0, 0.0, "test")


class YoloRaw(nn.Module):
    """Ultralytics layout (1, 4 + 2, A): cx, cy, w, h in input pixels, then two class scores."""

    def __init__(self) -> None:
        super().__init__()
        anchors = torch.tensor([
            # cx    cy    w     h    s0    s1
            [20.0, 30.0, 10.0, 10.0, 0.9, 0.0],  # class 0, kept
            [21.0, 30.0, 10.0, 10.0, 0.8, 0.1],  # overlaps the first, same class: suppressed
            [20.0, 30.0, 10.0, 10.0, 0.0, 0.7],  # same place, other class: kept
            [40.0, 40.0, 8.0, 8.0, 0.1, 0.05],  # below the threshold
        ])
        self.register_buffer("out", anchors.t().unsqueeze(0).contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out.expand(x.shape[0], -1, -1) + 0 * x.mean()


class End2End(nn.Module):
    """(N, K, 6) rows x0 y0 x1 y1 score class, and an (N, 8) embedding."""

    def __init__(self) -> None:
        super().__init__()
        rows = torch.zeros(10, 6)
        rows[0] = torch.tensor([10.0, 12.0, 30.0, 40.0, 0.95, 1.0])
        rows[1] = torch.tensor([0.0, 0.0, 4.0, 4.0, 0.05, 0.0])  # below the threshold
        self.register_buffer("rows", rows)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb = x.mean(dim=(2, 3)).repeat(1, 3)[:, :8] + 1.0
        return self.rows.expand(x.shape[0], -1, -1) + 0 * x.mean(), emb


def save_ts(module: nn.Module, path, config: str | None, trace: bool = True, shape=(1, 3, 64, 64)) -> str:
    ts = torch.jit.trace(module, torch.zeros(shape)) if trace else torch.jit.script(module)
    extra = {"config.txt": config} if config is not None else {}
    torch.jit.save(ts, str(path), _extra_files=extra)
    return str(path)


def boxes_of(det):
    return [(b.class_name, round(b.x0, 3), round(b.y0, 3), round(b.x1, 3), round(b.y1, 3), round(b.score, 3))
            for b in det.boxes]


def test_torchscript_yolo_raw_layout_nms_and_letterbox(tmp_path, caplog):
    cfg = json.dumps({"names": {"0": "scratch", "1": "dent"}, "imgsz": [64, 64], "batch": 1, "task": "detect"})
    path = save_ts(YoloRaw(), tmp_path / "yolo.torchscript", cfg)
    with caplog.at_level(logging.WARNING, logger="engine.inference"):
        det = load_detector(path, device="cpu", confidence=0.25)
    assert "TorchScript is code" in caplog.text
    assert det.classes == ("scratch", "dent") and det.input_size == (64, 64) and det.device == "cpu"
    # A 128 x 64 frame is halved into the 64 x 64 input and centred: 16 pixels of padding above.
    out = det.detect([frame(128, 64), frame(128, 64)])
    assert len(out) == 2
    expected = [("scratch", 30.0, 18.0, 50.0, 38.0, 0.9), ("dent", 30.0, 18.0, 50.0, 38.0, 0.7)]
    assert boxes_of(out[0]) == expected and boxes_of(out[1]) == expected
    # No embedding from the model: the image-level one, and the card says so.
    assert out[0].embedding.shape == (32,) and "image" in det.embedding_source
    assert det.card["output_layout"] == "yolo"


def test_torchscript_end2end_layout_with_literal_config_and_embedding(tmp_path):
    cfg = "{'names': ['scratch', 'dent'], 'imgsz': [64, 64]}"  # a Python literal, as older exports write
    path = save_ts(End2End(), tmp_path / "e2e.torchscript", cfg, trace=False)
    det = load_detector(path, device="cpu", confidence=0.5)
    out = det.detect([frame(128, 128)])[0]
    assert boxes_of(out) == [("dent", 20.0, 24.0, 60.0, 80.0, 0.95)]
    assert out.embedding.shape == (8,) and det.card["output_layout"] == "end2end"
    assert det.embedding_source.startswith("model")


def test_torch_export_program(tmp_path):
    ep = torch.export.export(End2End().eval(), (torch.zeros(1, 3, 64, 96),))
    path = tmp_path / "model.pt2"
    torch.export.save(ep, str(path), extra_files={"config.txt": json.dumps({"names": ["a", "b"]})})
    det = load_detector(str(path), device="cpu", confidence=0.5)
    assert det.input_size == (96, 64)  # from the program's static input shape
    assert det.card["format"] == "torch.export"
    # 192 x 128 frame -> scale 0.5, no padding: boxes double.
    out = det.detect([frame(192, 128), frame(192, 128)])
    assert [boxes_of(o) for o in out] == [[("b", 20.0, 24.0, 60.0, 80.0, 0.95)]] * 2
    assert out[0].embedding.shape == (8,)


def test_export_without_names_gets_numbered_classes(tmp_path):
    ep = torch.export.export(YoloRaw().eval(), (torch.zeros(1, 3, 64, 64),))
    path = tmp_path / "plain.pt2"
    torch.export.save(ep, str(path))
    det = load_detector(str(path), device="cpu")
    assert det.classes == ("class0", "class1")
    assert [b.class_name for b in det.detect([frame(64, 64)])[0].boxes] == ["class0", "class1"]


# ---------------------------------------------------------------------- files that must be refused


class _Boom:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # unpickling this creates the marker file


def _refused(path) -> str:
    with pytest.raises(ModelError) as e:
        load_detector(str(path), device="cpu")
    msg = str(e.value)
    assert "\n" not in msg and 20 < len(msg) < 300  # one sentence
    assert e.value.__context__ is None or e.value.__suppress_context__  # no chained traceback behind it
    return msg


def test_pickle_is_refused_and_never_unpickled(tmp_path):
    marker = tmp_path / "unpickled"
    path = tmp_path / "model.pt"
    path.write_bytes(pickle.dumps(_Boom(str(marker)), protocol=4))
    assert "pickle" in _refused(path)
    assert not marker.exists()


def test_torch_save_checkpoint_is_refused_and_never_unpickled(tmp_path):
    marker = tmp_path / "unpickled"
    path = tmp_path / "model.pt"
    torch.save({"boom": _Boom(str(marker)), "w": torch.zeros(2)}, path)
    assert "torch.save checkpoint" in _refused(path)
    assert not marker.exists()


def test_random_bytes_empty_and_missing_files(tmp_path):
    rnd = tmp_path / "random.pt2"
    rnd.write_bytes(os.urandom(4096).replace(b"\x80", b"\x00").replace(b"PK", b"pk"))
    assert "neither" in _refused(rnd)
    empty = tmp_path / "empty.pt2"
    empty.write_bytes(b"")
    assert "empty" in _refused(empty)
    assert "does not exist" in _refused(tmp_path / "nothing.pt2")
    assert "not a file" in _refused(tmp_path)


def test_corrupt_archives(tmp_path):
    good = save_ts(YoloRaw(), tmp_path / "good.torchscript", json.dumps({"names": ["a", "b"]}))
    data = open(good, "rb").read()
    truncated = tmp_path / "truncated.torchscript"
    truncated.write_bytes(data[: len(data) // 2])
    assert "damaged" in _refused(truncated)
    flipped = bytearray(data)
    with zipfile.ZipFile(good) as z:
        info = next(i for i in z.infolist() if "/code/" in i.filename and i.file_size > 20)
    h = info.header_offset
    start = h + 30 + int.from_bytes(data[h + 26:h + 28], "little") + int.from_bytes(data[h + 28:h + 30], "little")
    flipped[start + info.compress_size // 2] ^= 0xFF  # inside the member's data: its CRC no longer holds
    bad = tmp_path / "flipped.torchscript"
    bad.write_bytes(bytes(flipped))
    assert "damaged" in _refused(bad)


def test_wrong_output_layout_and_bad_config(tmp_path):
    class Classifier(nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3))  # (N, 3): a classifier, not a detector

    path = save_ts(Classifier(), tmp_path / "cls.torchscript", None)
    assert "neither (batch, 4 + classes, anchors), (batch, anchors, 4 + classes) nor (batch, boxes, 6)" in _refused(path)
    bad_cfg = save_ts(YoloRaw(), tmp_path / "badcfg.torchscript", "names: [a, b]")
    assert "config.txt" in _refused(bad_cfg)
    zip_other = tmp_path / "other.pt2"
    with zipfile.ZipFile(zip_other, "w") as z:
        z.writestr("readme.txt", "hello")
    assert "neither" in _refused(zip_other)


def test_confidence_out_of_range():
    with pytest.raises(ModelError, match="between 0 and 1"):
        load_detector(None, confidence=1.5)


# ---------------------------------------------------------------------- shared pieces


def _greedy_nms(boxes, scores, classes, thr):
    order = scores.argsort(descending=True).tolist()
    keep = []
    for i in order:
        if all(not (classes[i] == classes[j] and box_iou(boxes[i:i + 1], boxes[j:j + 1])[0, 0] > thr) for j in keep):
            keep.append(i)
    return keep


def test_nms_matches_greedy_reference():
    g = torch.Generator().manual_seed(3)
    xy = torch.rand(200, 2, generator=g) * 100
    wh = torch.rand(200, 2, generator=g) * 30 + 2
    boxes = torch.cat([xy, xy + wh], dim=1)
    scores = torch.rand(200, generator=g)
    classes = torch.randint(0, 3, (200,), generator=g)
    assert nms(boxes, scores, classes, 0.45).tolist() == _greedy_nms(boxes, scores, classes, 0.45)
    assert nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long)).numel() == 0


def test_letterbox_round_trip():
    img = np.zeros((100, 300, 3), np.uint8)
    out, lb = letterbox(img, 150, 150)
    assert out.shape == (150, 150, 3) and lb.scale == 0.5 and (lb.pad_x, lb.pad_y) == (0, 50)
    assert out[0, 0, 0] == 114 and out[75, 75, 0] == 0
    back = lb.to_frame(torch.tensor([[10.0, 60.0, 20.0, 70.0]]), 300, 100)
    assert back.tolist() == [[20.0, 20.0, 40.0, 40.0]]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_user_model_on_cuda(tmp_path):
    path = save_ts(YoloRaw(), tmp_path / "yolo.torchscript", json.dumps({"names": ["a", "b"], "imgsz": [64, 64]}))
    det = load_detector(path, device="cuda")
    assert det.device == "cuda:0"
    assert len(det.detect([frame(128, 128)])[0].boxes) == 2
