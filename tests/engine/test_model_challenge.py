"""Champion against challenger: the bootstrap intervals, the verdict, and a whole challenge on real evidence (the
golden set, a labelled held-out split the station exported, the simulated reference line) with real inference."""

import cv2
import numpy as np
import pytest

from engine.core.frame import Box
from engine.inference import bootstrap
from engine.inference.challenge import verdict
from engine.inference.evaluate import FrameMatch, evaluate
from engine.sources import open_source

CLASSES = ("scratch", "dent", "contamination")


def synthetic_frames(n, seed=0, hit_rate=0.8):
    """Frames with one or two truth boxes each; a box is found with probability ``hit_rate`` (score 0.5-1), a
    false alarm appears in one frame of four (score 0-0.7)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        truth, preds = [], []
        for k in range(1 + i % 2):
            c = int(rng.integers(0, 3))
            x = 40.0 * k
            truth.append(Box(x, 0, x + 20, 20, c, CLASSES[c]))
            if rng.random() < hit_rate:
                preds.append(Box(x + 1, 1, x + 21, 21, c, CLASSES[c], float(rng.uniform(0.5, 1.0))))
        if rng.random() < 0.25:
            c = int(rng.integers(0, 3))
            preds.append(Box(200, 200, 220, 220, c, CLASSES[c], float(rng.uniform(0.0, 0.7))))
        out.append(FrameMatch(tuple(preds), tuple(truth)))
    return out


def test_point_figures_are_those_of_evaluate():
    frames = synthetic_frames(120, seed=3)
    c = bootstrap.counts(frames, CLASSES, 0.4)
    figs = bootstrap.figures(c, np.ones((1, c.frames)))
    ref = evaluate(frames, CLASSES, 0.4)
    for m in ("precision", "recall", "f1"):
        assert figs[m][0] == pytest.approx(ref[m], abs=1e-4)
    assert figs["ap50"][0] == pytest.approx(ref["map50"], abs=1e-4)
    for name in CLASSES:
        assert figs[f"{name}/ap50"][0] == pytest.approx(ref["ap50"][name], abs=1e-4)


def test_a_resample_weighted_by_counts_equals_the_frames_repeated():
    frames = synthetic_frames(30, seed=5)
    c = bootstrap.counts(frames, CLASSES, 0.4)
    w = bootstrap.weights(30, 1, seed=9)[0]
    repeated = [f for f, k in zip(frames, w.astype(int)) for _ in range(k)]
    ref = evaluate(repeated, CLASSES, 0.4)
    figs = bootstrap.figures(c, w[None, :])
    assert figs["f1"][0] == pytest.approx(ref["f1"], abs=1e-4)
    assert figs["ap50"][0] == pytest.approx(ref["map50"], abs=1e-4)


def test_intervals_contain_the_point_estimate_and_shrink_with_more_frames():
    widths = {}
    for n in (60, 960):
        c = bootstrap.counts(synthetic_frames(n, seed=1), CLASSES, 0.4)
        summary, _ = bootstrap.summarise(c, bootstrap.weights(n, 1000, seed=0))
        for figs in [summary["overall"], *summary["per_class"].values()]:
            for iv in figs.values():
                assert iv["low"] <= iv["value"] <= iv["high"]
        widths[n] = {m: iv["high"] - iv["low"] for m, iv in summary["overall"].items()}
    for m in bootstrap.METRICS:
        assert widths[960][m] < widths[60][m] / 2  # 16 times the frames: about a quarter of the width


def test_blocks_of_consecutive_frames_are_drawn_whole():
    w = bootstrap.weights(25, 200, seed=1, block=10)
    assert w.shape == (200, 25)
    for row in w:
        assert len(set(row[0:10])) == 1 and len(set(row[10:20])) == 1 and len(set(row[20:25])) == 1
    assert np.allclose(w[:, [0, 10, 20]].sum(axis=1), 3)  # three blocks drawn three times in all
    assert np.array_equal(bootstrap.weights(25, 5, seed=1, block=1), bootstrap.weights(25, 5, seed=1))


def test_a_defect_seen_in_ten_frames_counts_once_when_blocks_are_drawn_and_ten_times_when_frames_are():
    unique = synthetic_frames(80, seed=4)
    seen_ten_times = [f for f in unique for _ in range(10)]  # each frame's defects stay in view for ten frames

    def width(frames, block):
        c = bootstrap.counts(frames, CLASSES, 0.4)
        f1 = bootstrap.summarise(c, bootstrap.weights(len(frames), 1000, seed=0, block=block))[0]["overall"]["f1"]
        return f1["high"] - f1["low"]

    honest = width(unique, 1)
    assert 0.7 < width(seen_ten_times, 10) / honest < 1.4  # blocks: as sure as the 80 frames really make it
    assert width(seen_ten_times, 1) < 0.5 * honest  # frame by frame: about three times too sure


def test_the_challenge_draws_the_line_in_blocks_and_the_golden_set_picture_by_picture_with_ten_blocks_at_least():
    from engine.inference.challenge import ChallengeOptions, _score

    opts = ChallengeOptions(resamples=50)
    for name, n, block in (("replay", 180, 12), ("bundles", 37, 3), ("bundles", 8, 1), ("gold", 180, 1)):
        frames = synthetic_frames(n, seed=5)
        out = _score(name, "", [], {"champion": frames, "challenger": frames}, list(CLASSES),
                     {"champion": 0.4, "challenger": 0.4}, opts)
        assert out["bootstrap_block_frames"] == block, name


def test_the_paired_difference_of_a_model_with_itself_is_exactly_zero_and_a_better_one_is_above():
    frames = synthetic_frames(200, seed=2, hit_rate=0.6)
    better = synthetic_frames(200, seed=2, hit_rate=0.9)
    w = bootstrap.weights(200, 500, seed=0)
    _, a = bootstrap.summarise(bootstrap.counts(frames, CLASSES, 0.4), w)
    _, b = bootstrap.summarise(bootstrap.counts(better, CLASSES, 0.4), w)
    assert bootstrap.paired_difference(a, a) == {"value": 0.0, "low": 0.0, "high": 0.0}
    assert bootstrap.paired_difference(a, b)["low"] > 0


def iv(value, low, high):
    return {"value": value, "low": low, "high": high}


def test_the_verdict_promotes_only_on_a_sure_gain_on_drifted_evidence_within_the_margin_on_the_replay():
    sure, unsure, fine, worse = iv(0.05, 0.02, 0.08), iv(0.02, -0.01, 0.05), iv(0.0, -0.005, 0.004), iv(-0.01, -0.03, 0.0)
    assert verdict(None, fine, 0.01) == (False, pytest.approx(verdict(None, fine, 0.01)[1]))
    assert "no drifted evidence" in verdict(None, fine, 0.01)[1]
    ok, why = verdict(unsure, fine, 0.01)
    assert not ok and "not surely better" in why and "-1.0" in why
    ok, why = verdict(sure, worse, 0.01)
    assert not ok and "1-point margin" in why
    ok, why = verdict(sure, fine, 0.01)
    assert ok and why.startswith("promote the challenger") and "+5.0 F1 points" in why
    assert verdict(sure, worse, 0.05)[0]  # a wider margin lets the same loss on the replay pass
    assert not verdict(sure, None, 0.01)[0]


def yolo_held_out(folder, seed=4, frames=6):
    """A YOLO dataset whose test split is simulated frames of the new product variant, labelled from the
    simulator's ground truth."""
    (folder / "images" / "test").mkdir(parents=True)
    (folder / "labels" / "test").mkdir(parents=True)
    src = open_source(f"sim://?seed={seed}&scenario=new-variant&realtime=0", realtime=False)
    src.open()
    try:
        src.skip(18)  # the first parts enter the view
        for k in range(frames):
            f = src.read()
            src.skip(6)
            h, w = f.image.shape[:2]
            cv2.imwrite(str(folder / "images" / "test" / f"{k}.png"), f.image)
            lines = [f"{CLASSES.index(b.class_name)} {(b.x0 + b.x1) / 2 / w:.6f} {(b.y0 + b.y1) / 2 / h:.6f} "
                     f"{(b.x1 - b.x0) / w:.6f} {(b.y1 - b.y0) / h:.6f}" for b in f.ground_truth.boxes]
            (folder / "labels" / "test" / f"{k}.txt").write_text("\n".join(lines), encoding="utf-8")
    finally:
        src.close()
    (folder / "data.yaml").write_text(f"path: {folder}\ntest: images/test\nnames: {list(CLASSES)}\n", encoding="utf-8")
    return folder
