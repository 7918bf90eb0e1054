"""A user's model on the default configuration: detections, image statistics and drift, novelty on its own
baseline or clearly off; a reference of another frame size still measures what survives resizing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from app.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from model_files import onnx_model, torchscript_model


def _run(tmp_path: Path, *args: str, frames: int = 40, source: str = "sim://?seed=3") -> list[dict]:
    out = tmp_path / f"run{len(list(tmp_path.glob('run*.jsonl')))}.jsonl"
    assert main(["run", "--headless", "--source", source, "--frames", str(frames), "--jsonl", str(out),
                 "--data-dir", str(tmp_path / "d"), *args]) == 0
    return [json.loads(line) for line in out.read_text().splitlines() if '"type":"frame"' in line]


def _alarms(frames: list[dict]) -> list[dict]:
    return [a for f in frames for a in f["alarms"]]


@pytest.mark.parametrize("kind", ["onnx", "torchscript"])
def test_an_own_model_against_the_built_in_reference_measures_drift_with_novelty_off(tmp_path, kind):
    if kind == "onnx":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("onnx")
        model = onnx_model(tmp_path / "yolo.onnx")  # no embedding output: the image-level one (32 values)
    else:
        model = torchscript_model(tmp_path / "yolo.torchscript", emb_dim=40)  # the built-in model's has 48
    frames = _run(tmp_path, "--model", str(model))
    assert len(frames) == 40
    assert all(len(f["detections"]) == 2 for f in frames)
    m = frames[-1]["measurements"]
    assert "mean_luma" in m and "focus" in m and m["drift_level"] == "ok" and "novelty" not in m
    off = [a for a in _alarms(frames) if a["name"] == "novelty"]
    assert len(off) == 1 and "novelty is off for this model until a reference is built with it" in off[0]["message"]
    assert "drift_scores" in frames[9]["measurements"] and "mmd_embedding" not in frames[9]["measurements"]["drift_scores"]


def test_novelty_against_the_own_model_baseline_and_without_any_reference(tmp_path):
    model = torchscript_model(tmp_path / "yolo.torchscript", emb_dim=40)
    ref = tmp_path / "ref.npz"
    assert main(["reference", "build", "--source", "sim://?seed=100", "--frames", "160", "--out", str(ref),
                 "--model", str(model)]) == 0
    frames = _run(tmp_path, "--model", str(model), "--reference", str(ref))
    assert all("novelty" in f["measurements"] for f in frames)
    assert not [a for a in _alarms(frames) if a["name"] == "novelty" and "off" in a["message"]]
    assert "mmd_embedding" in frames[9]["measurements"]["drift_scores"]
    bare = _run(tmp_path, "--model", str(model), "--reference", "none", frames=5)
    assert "mean_luma" in bare[0]["measurements"] and "drift_level" not in bare[0]["measurements"]


def test_a_reference_of_another_frame_size_is_used_on_resized_frames(tmp_path):
    ref = tmp_path / "small.npz"
    assert main(["reference", "build", "--source", "sim://?seed=100&width=640&height=512", "--frames", "160",
                 "--out", str(ref)]) == 0
    frames = _run(tmp_path, "--reference", str(ref), frames=30)
    m = frames[-1]["measurements"]
    assert m["drift_level"] in ("ok", "warning") and "novelty" in m
    notes = [a for a in _alarms(frames) if a["name"] == "reference"]
    assert len(notes) == 1 and "resized" in notes[0]["message"] and "focus" in notes[0]["message"]
