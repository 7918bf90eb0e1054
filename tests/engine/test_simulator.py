import cv2
import numpy as np
import pytest

from engine.simulation.defects import DEFECT_CLASSES
from engine.simulation.golden import GOLDEN_COUNT, GOLDEN_DEFECTS
from engine.simulation.line import LineSimulator
from engine.simulation.optics import REPLACEMENT_LENS, Camera
from engine.simulation.scenarios import DROPOUT_FROZEN, DROPOUT_NONE, LENS_CHANGE_AT, SCENARIOS
from engine.simulation.targets import BOARD_INNER, BOARD_SQUARE_MM
from engine.sources import SourceStalled, open_source


def test_same_seed_same_frames_and_truth():
    a = LineSimulator(seed=7, scenario="mixed", width=320, height=256)
    b = LineSimulator(seed=7, scenario="mixed", width=320, height=256)
    for slot in (0, 5, 250, 420):
        ia, ta = a.render(slot)
        ib, tb = b.render(slot)
        assert np.array_equal(ia, ib)
        assert ta.to_dict() == tb.to_dict()
    # Order of rendering does not matter: a frame is a function of its slot.
    c = LineSimulator(seed=7, scenario="mixed", width=320, height=256)
    assert np.array_equal(c.render(420)[0], a.render(420)[0])


def test_different_seeds_differ():
    a, _ = LineSimulator(seed=1, width=320, height=256).render(30)
    b, _ = LineSimulator(seed=2, width=320, height=256).render(30)
    assert not np.array_equal(a, b)


def test_frames_carry_all_defect_classes_with_boxes_inside_the_frame():
    sim = LineSimulator(seed=3, width=640, height=512)
    seen, faint, sizes = set(), 0, []
    for slot in range(0, 600, 3):
        image, truth = sim.render(slot)
        assert image.shape == (512, 640, 3) and image.dtype == np.uint8 and image.flags.c_contiguous
        for d in truth.defects:
            b = d.box
            assert 0 <= b.x0 < b.x1 <= 639 and 0 <= b.y0 < b.y1 <= 511
            seen.add(b.class_name)
            faint += d.faint
            sizes.append(d.size_px)
    assert seen == set(DEFECT_CLASSES)
    assert faint > 0, "boundary cases must occur"
    assert max(sizes) > 4 * min(sizes), "defect sizes must vary"


def test_truth_boxes_mark_where_the_image_differs_from_the_clean_part():
    """Render a defect's part with and without its defects: the difference lies inside the true box."""
    sim = LineSimulator(seed=3, width=640, height=512)
    for slot in range(0, 400):
        image, truth = sim.render(slot)
        if len(truth.defects) == 1 and not truth.defects[0].faint:
            break
    d = truth.defects[0]
    b = d.box
    pad = 6
    inside = image[int(b.y0):int(b.y1) + 1, int(b.x0):int(b.x1) + 1].astype(np.float32)
    ring = image[max(0, int(b.y0) - pad):int(b.y1) + pad, max(0, int(b.x0) - pad):int(b.x1) + pad].astype(np.float32)
    # The defect changes the local picture: the box holds more extreme pixels than its surroundings' median.
    assert np.abs(inside - np.median(ring, axis=(0, 1))).max() > 20


def _mean_bgr(sim, slots):
    return np.mean([sim.render(s)[0].reshape(-1, 3).mean(axis=0) for s in slots], axis=0)


def test_lighting_ageing_darkens_and_warms_the_image():
    sim = LineSimulator(seed=1, scenario="lighting-aging", width=320, height=256)
    early = _mean_bgr(sim, range(0, 40, 4))
    late = _mean_bgr(sim, range(2800, 2840, 4))
    assert late.mean() < 0.8 * early.mean()
    assert late[2] / late[0] > 1.1 * early[2] / early[0]  # red over blue rises: the lamp warms


def _sharpness(image):
    g = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return cv2.Laplacian(cv2.GaussianBlur(g, (0, 0), 0.8), cv2.CV_64F).var()


def test_lens_change_defocuses_and_moves_the_optics():
    sim = LineSimulator(seed=1, scenario="lens-change", width=640, height=512)
    assert sim.conditions(LENS_CHANGE_AT - 1).lens.name != sim.conditions(LENS_CHANGE_AT).lens.name
    before = np.median([_sharpness(sim.render(s)[0]) for s in range(LENS_CHANGE_AT - 20, LENS_CHANGE_AT)])
    after = np.median([_sharpness(sim.render(s)[0]) for s in range(LENS_CHANGE_AT, LENS_CHANGE_AT + 20)])
    assert after < 0.7 * before


def test_checkerboard_views_calibrate_to_the_simulated_lens():
    """The target is rendered through the lens model, so OpenCV recovers that lens from it."""
    w, h = 640, 512
    sim = LineSimulator(seed=2, scenario="lens-change", width=w, height=h)
    cols, rows = BOARD_INNER
    obj = np.zeros((cols * rows, 3), np.float32)
    obj[:, :2] = np.mgrid[0:cols, 0:rows].T.reshape(-1, 2) * BOARD_SQUARE_MM
    objs, imgs = [], []
    for slot in range(LENS_CHANGE_AT + 5, LENS_CHANGE_AT + 40):
        image, truth = sim.render(slot, show="checkerboard")
        assert truth.defects == () and truth.conditions["show"] == "checkerboard"
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        ok, corners = cv2.findChessboardCorners(grey, (cols, rows))
        if ok:
            corners = cv2.cornerSubPix(grey, corners, (5, 5), (-1, -1),
                                       (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 0.01))
            objs.append(obj)
            imgs.append(corners)
    assert len(imgs) >= 10
    rms, K, dist, _, _ = cv2.calibrateCamera(objs, imgs, (w, h), None, None,
                                             flags=cv2.CALIB_FIX_ASPECT_RATIO | cv2.CALIB_ZERO_TANGENT_DIST
                                             | cv2.CALIB_FIX_K3)
    truth = Camera.for_lens(REPLACEMENT_LENS, w, h)
    assert rms < 1.0
    assert K[0, 0] == pytest.approx(truth.fx, rel=0.03)
    assert K[0, 2] == pytest.approx(truth.cx, abs=6)
    assert K[1, 2] == pytest.approx(truth.cy, abs=6)
    assert dist[0, 0] == pytest.approx(truth.k1, abs=0.25)


def test_new_variant_appears_and_changes_the_product_colour():
    sim = LineSimulator(seed=1, scenario="new-variant", width=320, height=256)
    assert sim.conditions(0).variant_share == 0
    assert sim.conditions(400).variant_share == pytest.approx(0.5)
    early = _mean_bgr(sim, range(0, 120, 3))
    late = _mean_bgr(sim, range(400, 520, 3))
    assert (late[0] - late[2]) > (early[0] - early[2]) + 2  # blue anodised parts


def test_golden_parts_are_the_same_on_every_station():
    a = LineSimulator(seed=1, width=320, height=256)
    b = LineSimulator(seed=99, width=320, height=256)
    counts = {}
    for slot in range(0, a.spacing * GOLDEN_COUNT * 2):
        ia, ta = a.render(slot, show="golden")
        ib, tb = b.render(slot, show="golden")
        assert [d.box for d in ta.defects] == [d.box for d in tb.defects]
        for d in ta.defects:
            counts.setdefault(d.part_id, set()).add(d.box.class_name)
    for part_id, classes in counts.items():
        golden_index = -1 - part_id
        assert len(classes) == GOLDEN_DEFECTS[golden_index]
    assert any(n == 0 for n in GOLDEN_DEFECTS) and sum(GOLDEN_DEFECTS) >= 3


def test_camera_dropout_freezes_then_stalls_then_recovers():
    src = open_source("sim://?seed=1&scenario=camera-dropout&width=160&height=128&start=290")
    src.open()
    frames = [src.read() for _ in range(DROPOUT_FROZEN[0] - 290 + 5)]
    frozen = frames[-5:]
    assert all(np.array_equal(frozen[0].image, f.image) for f in frozen)
    assert not np.array_equal(frames[0].image, frames[1].image)
    src.skip(DROPOUT_NONE[0] - src.slot)
    with pytest.raises(SourceStalled):
        src.read(timeout=0.5)
    src.skip(DROPOUT_NONE[1] - src.slot)
    assert src.read().sequence == DROPOUT_NONE[1]


def test_every_scenario_renders():
    for name in SCENARIOS:
        image, truth = LineSimulator(seed=0, scenario=name, width=128, height=96).render(460)
        assert image.shape == (96, 128, 3)
        assert truth.conditions["scenario"] == name


def test_bad_parameters_are_refused_clearly():
    with pytest.raises(ValueError, match="unknown scenario"):
        LineSimulator(scenario="sunny")
    with pytest.raises(ValueError, match="outside"):
        LineSimulator(width=10, height=10)
