"""The shipped detector: its file, its card, and what it finds on the simulated line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.inference import load_detector
from engine.inference.builtin import BuiltinDetector, builtin_paths, sha256_of
from engine.inference.model import EMBED_DIM, TinyCenterNet
from engine.inference.train import TrainConfig, train
from engine.core.frame import Frame
from engine.core.protocols import Detector
from engine.simulation.defects import DEFECT_CLASSES
from engine.simulation.line import SIMULATOR_VERSION, LineSimulator


def test_weights_are_a_plain_state_dict_matching_the_card():
    weights, card_file = builtin_paths()
    card = json.loads(card_file.read_text())
    state = torch.load(weights, map_location="cpu", weights_only=True)  # no pickled module: weights only
    assert isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())
    TinyCenterNet(len(card["classes"])).load_state_dict(state)
    assert card["sha256"] == sha256_of(weights)
    assert tuple(card["classes"]) == DEFECT_CLASSES
    assert card["training"]["simulator_version"] == SIMULATOR_VERSION
    assert card["training"]["command"].startswith("inspection-station model train-builtin --out")
    assert weights.stat().st_size < 5 * 1024 * 1024
    q = card["quality"]
    assert {"precision", "recall", "f1", "ap50", "map50"} <= set(q)


def test_builtin_detects_defects_on_an_unseen_seed():
    det = load_detector(None, device="cpu")
    assert isinstance(det, BuiltinDetector) and isinstance(det, Detector)
    assert det.device == "cpu" and det.classes == DEFECT_CLASSES
    sim = LineSimulator(seed=7, scenario="nominal", width=1280, height=1024)
    frames, truths = [], []
    for slot in range(60, 300, 30):
        image, truth = sim.render(slot)
        frames.append(Frame(image, "BGR", slot, 0.0, "sim", truth))
        truths += [d.box for d in truth.defects if not d.faint]
    out = det.detect(frames)
    assert len(out) == 8
    found = [b for d in out for b in d.boxes]
    assert all(b.score >= det.confidence and b.class_name in DEFECT_CLASSES for b in found)
    assert all(0 <= b.x0 < b.x1 <= 1279 and 0 <= b.y0 < b.y1 <= 1023 for b in found)
    hits = sum(any(t.class_id == b.class_id and t.iou(b) >= 0.5 for b in found) for t in truths)
    assert len(truths) >= 8 and hits >= 0.75 * len(truths)
    assert out[0].embedding.shape == (EMBED_DIM,) and out[0].embedding.dtype == np.float32
    assert out[0].inference_ms > 0


def test_other_frame_sizes_and_rgb_frames_map_back_to_frame_pixels():
    det = load_detector(None, device="cpu", confidence=0.2)
    image, truth = LineSimulator(seed=9, scenario="nominal", width=640, height=480).render(80)
    bgr = Frame(image, "BGR", 0, 0.0, "sim")
    rgb = Frame(np.ascontiguousarray(image[:, :, ::-1]), "RGB", 0, 0.0, "sim")
    a, b = det.detect([bgr])[0], det.detect([rgb])[0]
    assert [x.to_dict() for x in a.boxes] == [x.to_dict() for x in b.boxes]
    assert all(x.x1 <= 639 and x.y1 <= 479 for x in a.boxes)


def test_training_is_reproducible_from_its_seed():
    cfg = TrainConfig(sim_seeds=(1000,), frames_per_seed=2, steps=2, batch=2, crop=64)
    a, rec = train(cfg, progress=None)
    b, _ = train(cfg, progress=None)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert rec["frames"] == 2 and rec["config"]["sim_seeds"] == [1000, 1000]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_builtin_on_cuda_matches_cpu():
    image, truth = LineSimulator(seed=7, scenario="nominal").render(60)
    frame = Frame(image, "BGR", 0, 0.0, "sim", truth)
    cpu = load_detector(None, device="cpu").detect([frame])[0]
    gpu_det = load_detector(None, device="cuda")
    assert gpu_det.device == "cuda:0"
    gpu = gpu_det.detect([frame])[0]
    assert len(gpu.boxes) == len(cpu.boxes)
    np.testing.assert_allclose(gpu.embedding, cpu.embedding, rtol=1e-3, atol=1e-4)
