"""Scratch boxes redrawn on the frame: the line response, one box, and the built-in detector with and without."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from engine.inference import train as train_mod
from engine.inference.builtin import BuiltinDetector, builtin_paths, sha256_of
from engine.inference.refine import LineRefinement, line_response, refine_boxes, refine_line_box
from engine.core.frame import Box, Frame
from engine.simulation.line import LineSimulator


def _streaked(h: int = 160, w: int = 200, seed: int = 0) -> np.ndarray:
    """A brushed-metal surface: a grey level per row (streaks along the rows) plus a little noise."""
    rng = np.random.default_rng(seed)
    rows = 150 + rng.normal(0, 4, (h, 1))
    return np.clip(rows + rng.normal(0, 1.5, (h, w)), 0, 255).astype(np.float32)


def test_line_response_finds_thin_lines_not_edges_or_blobs():
    img = np.full((60, 120), 150.0, np.float32)
    img[:, 90:] = 60.0  # a step edge (a part's rim)
    img[10:50, 30] = 100.0  # a dark vertical line, 1 px
    img[30, 40:80] = 200.0  # a bright horizontal line
    cv2.circle(img, (60, 12), 8, 40.0, -1)  # a hole: a wide dark blob
    dark, bright = line_response(img, 3)
    assert dark[30, 30] == pytest.approx(50.0)
    assert bright[30, 60] == pytest.approx(50.0)
    assert dark[:, 86:94].max() == 0 and bright[:, 86:94].max() == 0  # the edge gives nothing
    assert dark[10:14, 58:62].max() == 0  # the middle of the hole is no darker than its surroundings at d
    assert bright[10:50, 30].max() == 0 and dark[30, 40:80].max() == 0  # polarity kept apart


def _frame_with_scratch(angle_deg: float, dark: bool) -> tuple[np.ndarray, Box]:
    y = _streaked()
    canvas = np.zeros_like(y)
    cx, cy, half = 100.0, 80.0, 40.0
    dx, dy = half * np.cos(np.radians(angle_deg)), half * np.sin(np.radians(angle_deg))
    p0, p1 = (round(cx - dx), round(cy - dy)), (round(cx + dx), round(cy + dy))
    cv2.line(canvas, p0, p1, 1.0, 2, cv2.LINE_AA)
    y += (-45.0 if dark else 45.0) * canvas
    ys, xs = np.nonzero(canvas > 0.3)
    truth = Box(float(xs.min()), float(ys.min()), xs.max() + 1.0, ys.max() + 1.0, 0, "scratch")
    bgr = cv2.cvtColor(np.clip(y, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    return bgr, truth


@pytest.mark.parametrize("angle,dark", [(30, True), (-60, False), (85, True), (10, False)])
def test_a_box_off_by_a_cell_and_covering_half_the_line_is_redrawn_around_it(angle, dark):
    bgr, truth = _frame_with_scratch(angle, dark)
    # What the network gives for a long line: one end of it, shifted by half a grid cell.
    off = Box(truth.x0 + 4, truth.y0 + 4, (truth.x0 + truth.x1) / 2 + 4, (truth.y0 + truth.y1) / 2 + 4, 0, "scratch",
              0.7)
    assert off.iou(truth) < 0.5
    new = refine_line_box(bgr, off, LineRefinement())
    assert new.iou(truth) > 0.75
    assert (new.class_id, new.class_name, new.score) == (0, "scratch", 0.7)


def test_a_box_with_no_line_in_it_is_left_alone_and_other_classes_are_not_touched():
    bgr = cv2.cvtColor(_streaked().astype(np.uint8), cv2.COLOR_GRAY2BGR)
    box = Box(60.0, 50.0, 120.0, 90.0, 0, "scratch", 0.9)
    assert refine_line_box(bgr, box, LineRefinement()) == box
    scratch_bgr, truth = _frame_with_scratch(30, True)
    dent = Box(truth.x0, truth.y0, truth.x1, truth.y1, 1, "dent", 0.9)
    low = Box(truth.x0 + 10, truth.y0, truth.x1, truth.y1, 0, "scratch", 0.1)  # under min_score
    assert refine_boxes(scratch_bgr, (dent, low), LineRefinement()) == (dent, low)
    assert refine_boxes(scratch_bgr, (dent, low), None) == (dent, low)


def test_rgb_and_bgr_frames_refine_alike():
    bgr, truth = _frame_with_scratch(40, True)
    box = Box(truth.x0 + 6, truth.y0 + 4, truth.x1 - 10, truth.y1, 0, "scratch", 0.5)
    a = refine_line_box(bgr, box, LineRefinement(), "BGR")
    b = refine_line_box(np.ascontiguousarray(bgr[:, :, ::-1]), box, LineRefinement(), "RGB")
    assert a == b and a != box


def test_the_card_turns_refinement_on_and_it_moves_only_scratch_boxes_closer_to_the_truth():
    refined = BuiltinDetector(device="cpu", confidence=0.3)
    raw = BuiltinDetector(device="cpu", confidence=0.3, refine=False)
    assert refined.refinement == LineRefinement.from_card(refined.card["box_refinement"]) and raw.refinement is None
    sim = LineSimulator(seed=11, scenario="nominal", width=1280, height=1024)
    frames = []
    for slot in range(30, 330, 12):
        image, truth = sim.render(slot)
        frames.append(Frame(image, "BGR", slot, 0.0, "sim", truth))
    gain, scratches = [], 0
    for f, a, b in zip(frames, refined.detect(frames), raw.detect(frames)):
        assert len(a.boxes) == len(b.boxes)  # refinement adds and removes nothing
        np.testing.assert_array_equal(a.embedding, b.embedding)
        truth = [d.box for d in f.ground_truth.defects]
        for pa, pb in zip(a.boxes, b.boxes):
            assert (pa.class_id, pa.score) == (pb.class_id, pb.score)
            if pa.class_name != "scratch":
                assert pa == pb
                continue
            same = [t for t in truth if t.class_id == 0]
            if same:
                scratches += 1
                gain.append(max(pa.iou(t) for t in same) - max(pb.iou(t) for t in same))
    assert scratches >= 10
    assert np.mean(gain) > 0.05  # on average the redrawn boxes fit the true scratches better


def test_measure_card_rewrites_threshold_and_quality_with_and_without_refinement(tmp_path, monkeypatch):
    weights, card = builtin_paths()
    w = tmp_path / "det.pt"
    shutil.copy(weights, w)
    shutil.copy(card, tmp_path / "det.json")
    before = json.loads(card.read_text())
    monkeypatch.setattr(train_mod, "EVAL_FRAMES_PER_SEED", 6)
    monkeypatch.setattr(train_mod, "VALIDATION_SEEDS", (500,))
    monkeypatch.setattr(train_mod, "TEST_SEEDS", (0, 1))
    out = train_mod.measure_card(w, tmp_path / "det.json", progress=None)
    written = json.loads((tmp_path / "det.json").read_text())
    assert written == out
    assert written["sha256"] == sha256_of(w) == before["sha256"] and written["training"] == before["training"]
    q = written["quality"]
    assert q["frames"] == 12 and "seeds 0, 1" in q["measured_on"] and q["threshold_chosen_on"] == "seeds 500"
    assert 0 <= q["network_boxes_only"]["f1"] <= 1 and 0 <= q["f1"] <= 1
    assert written["confidence_threshold"] == q["confidence"]
    assert not list(tmp_path.glob(".*.tmp"))
