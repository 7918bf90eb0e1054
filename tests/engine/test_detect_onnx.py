"""ONNX models on ONNX Runtime: Ultralytics layouts and metadata, parity with TorchScript, external data kept in."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")  # torch's exporter needs it to write the test models

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from model_files import onnx_model, torchscript_model

from engine.core.frame import Frame
from engine.inference import ModelError, load_detector
from engine.inference.onnxrt import OnnxDetector


def _frame(w: int = 1280, h: int = 1024) -> Frame:
    rng = np.random.default_rng(0)
    return Frame(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), "BGR", 0, 0.0, "test")


def test_an_ultralytics_layout_onnx_export_runs_with_its_names_and_input(tmp_path):
    det = load_detector(onnx_model(tmp_path / "yolo.onnx"), device="cpu")
    assert isinstance(det, OnnxDetector)
    assert det.classes == ("scratch", "dent") and det.input_size == (320, 256)
    assert det.card["format"] == "ONNX" and det.card["output_layout"] == "yolo" and det.batch_one
    assert "CPUExecutionProvider" in det.card["runtime"]
    d = det.detect([_frame(), _frame()])
    assert len(d) == 2 and d[0].boxes == d[1].boxes
    boxes = sorted(d[0].boxes, key=lambda b: b.class_id)
    # anchor 0: centre (16, 16), 40 x 30 in the 320 x 256 input; the 1280 x 1024 frame is 4 times larger
    assert [b.class_name for b in boxes] == ["scratch", "dent"]
    assert (boxes[0].x0, boxes[0].y0, boxes[0].x1, boxes[0].y1) == pytest.approx((0, 4, 144, 124))
    assert d[0].embedding.shape == (32,) and "image" in det.embedding_source


def test_anchors_first_output_and_an_embedding_output(tmp_path):
    det = load_detector(onnx_model(tmp_path / "t.onnx", transposed=True, emb_dim=24, nc=3), device="cpu")
    assert det.card["output_layout"] == "yolo_t" and len(det.classes) == 3
    d = det.detect([_frame()])[0]
    assert len(d.boxes) == 2 and d.embedding.shape == (24,) and det.embedding_source.startswith("model")


def test_onnx_runtime_and_torchscript_give_the_same_boxes(tmp_path):
    onnx = load_detector(onnx_model(tmp_path / "m.onnx", emb_dim=40), device="cpu")
    ts = load_detector(torchscript_model(tmp_path / "m.torchscript", emb_dim=40), device="cpu")
    a, b = onnx.detect([_frame()])[0], ts.detect([_frame()])[0]
    ka, kb = (sorted(d.boxes, key=lambda x: x.class_id) for d in (a, b))
    assert [x.class_id for x in ka] == [x.class_id for x in kb] == [0, 1]
    for x, y in zip(ka, kb):
        assert (x.x0, x.y0, x.x1, x.y1, x.score) == pytest.approx((y.x0, y.y0, y.x1, y.y1, y.score), abs=1e-4)
    assert np.allclose(a.embedding, b.embedding, atol=1e-4)


@pytest.mark.parametrize("location", ["../outside.bin", "/etc/passwd", "sub/../../outside.bin"])
def test_external_data_outside_the_model_folder_is_refused(tmp_path, location):
    import onnx
    from onnx.external_data_helper import set_external_data

    path = onnx_model(tmp_path / "m.onnx")
    model = onnx.load(str(path))
    t = model.graph.initializer[0]
    set_external_data(t, location=location)
    t.ClearField("raw_data")
    t.data_location = onnx.TensorProto.EXTERNAL
    folder = tmp_path / "models"
    folder.mkdir()
    onnx.save_model(model, str(folder / "ext.onnx"))
    with pytest.raises(ModelError, match="outside the model's folder") as e:
        load_detector(folder / "ext.onnx", device="cpu")
    assert "\n" not in str(e.value)


def test_external_data_inside_the_folder_loads(tmp_path):
    import onnx

    path = onnx_model(tmp_path / "m.onnx")
    model = onnx.load(str(path))
    folder = tmp_path / "models"
    folder.mkdir()
    onnx.save_model(model, str(folder / "ext.onnx"), save_as_external_data=True, location="ext.weights",
                    size_threshold=0)
    assert (folder / "ext.weights").is_file()
    det = load_detector(folder / "ext.onnx", device="cpu")
    assert len(det.detect([_frame()])[0].boxes) == 2


def test_a_damaged_onnx_file_is_one_sentence(tmp_path):
    data = onnx_model(tmp_path / "m.onnx").read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError) as e:
        load_detector(tmp_path / "cut.onnx", device="cpu")
    assert "cut.onnx" in str(e.value) and "\n" not in str(e.value)


# ------------------------------------------------------------------ the built-in model on ONNX Runtime


def test_the_built_in_model_runs_on_onnx_runtime_with_the_same_answers(tmp_path):
    from engine.inference.builtin import BuiltinDetector
    from engine.simulation.line import LineSimulator

    onnx, torch_ = BuiltinDetector(device="cpu"), BuiltinDetector(device="cpu", backend="torch")
    assert onnx.backend == "ONNX Runtime" and torch_.backend == "PyTorch" and onnx.card["runtime"] == "ONNX Runtime"
    assert onnx.name == torch_.name and onnx.sha256 == torch_.sha256  # one model, one embedding baseline
    sim = LineSimulator(seed=0, scenario="nominal", width=1280, height=1024)
    for slot in (0, 9, 30):
        f = Frame(sim.render(slot)[0], "BGR", slot, float(slot), "test")
        a, b = onnx.detect([f])[0], torch_.detect([f])[0]
        assert [x.class_id for x in a.boxes] == [x.class_id for x in b.boxes]
        for x, y in zip(a.boxes, b.boxes):
            assert (x.x0, x.y0, x.x1, x.y1) == pytest.approx((y.x0, y.y0, y.x1, y.y1), abs=0.05)
            assert x.score == pytest.approx(y.score, abs=1e-4)
        assert np.allclose(a.embedding, b.embedding, atol=1e-4)


def test_an_onnx_copy_not_made_from_the_weights_is_not_used(tmp_path):
    import shutil

    import resources
    from engine.inference.builtin import BuiltinDetector, export_onnx

    for name in ("builtin_detector.pt", "builtin_detector.json"):
        shutil.copy(resources.path(name), tmp_path / name)
    w = tmp_path / "builtin_detector.pt"
    export_onnx(tmp_path / "builtin_detector.onnx", w)
    assert BuiltinDetector(w, device="cpu").backend == "ONNX Runtime"
    from engine.inference.onnxrt import add_metadata

    stale = add_metadata((tmp_path / "builtin_detector.onnx").read_bytes(), {"weights_sha256": "0" * 64})
    (tmp_path / "builtin_detector.onnx").write_bytes(stale)
    assert BuiltinDetector(w, device="cpu").backend == "PyTorch"
    with pytest.raises(ModelError, match="was not made from these weights"):
        BuiltinDetector(w, device="cpu", backend="onnx")


def test_bench_detector_prints_both_runtimes_side_by_side(capsys):
    from app.cli import main

    assert main(["bench", "detector", "--frames", "3", "--width", "320", "--height", "256"]) == 0
    out = capsys.readouterr().out
    assert "\ntorch " in out and "\nonnxruntime " in out and "largest difference between torch and onnxruntime" in out
