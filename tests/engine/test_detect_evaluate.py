"""Evaluation metrics on cases small enough to check by hand."""

from __future__ import annotations

import pytest

from engine.inference.evaluate import FrameMatch, average_precision, evaluate, evaluate_buckets, match_frame
from engine.core.frame import Box

CLASSES = ("scratch", "dent", "contamination")


def box(x0, y0, x1, y1, c=0, score=None):
    return Box(x0, y0, x1, y1, c, CLASSES[c], score)


def test_precision_recall_f1_and_ap_on_one_frame():
    truth = (box(0, 0, 10, 10, 0), box(20, 20, 30, 30, 1))
    preds = (box(0, 0, 10, 10, 0, 0.9),  # hit
             box(20, 20, 30, 30, 0, 0.8),  # right place, wrong class: a false positive
             box(20, 20, 30, 30, 1, 0.4))  # hit, but below the 0.5 operating threshold
    r = evaluate([FrameMatch(preds, truth)], CLASSES, confidence=0.5)
    assert (r["true_positives"], r["false_positives"], r["missed"]) == (1, 1, 1)
    assert r["precision"] == 0.5 and r["recall"] == 0.5 and r["f1"] == 0.5
    # class 0: 0.9 hit then 0.8 miss, one truth box: AP 1. class 1: its one box found: AP 1.
    assert r["ap50"] == {"scratch": 1.0, "dent": 1.0, "contamination": None}
    assert r["map50"] == 1.0  # the class without truth boxes is left out


def test_average_precision_all_point_interpolation():
    # Three truth boxes; ranked hits: T F T F. Recall 1/3 1/3 2/3 2/3, precision 1 .5 .667 .5.
    # Envelope 1, .667, .667, .5: AP = 1/3 * 1 + 1/3 * 2/3 = 5/9.
    assert average_precision([0.9, 0.8, 0.7, 0.6], [True, False, True, False], 3) == pytest.approx(5 / 9)
    assert average_precision([], [], 2) == 0.0
    assert average_precision([0.5], [False], 0) is None
    # Order comes from the scores, not from the order given.
    assert average_precision([0.6, 0.7, 0.8, 0.9], [False, True, False, True], 3) == pytest.approx(5 / 9)


def test_iou_threshold_is_inclusive_at_one_half():
    truth = (box(0, 0, 10, 10),)
    assert match_frame([box(0, 0, 10, 20, 0, 0.9)], truth) == [(0, 0.9, True)]  # IoU 100/200
    assert match_frame([box(0, 0, 10, 21, 0, 0.9)], truth) == [(0, 0.9, False)]  # IoU 100/210


def test_duplicate_detections_count_once():
    truth = (box(0, 0, 10, 10),)
    preds = (box(1, 0, 11, 10, 0, 0.6), box(0, 0, 10, 10, 0, 0.9))
    assert match_frame(preds, truth) == [(0, 0.9, True), (0, 0.6, False)]
    r = evaluate([FrameMatch(preds, truth)], CLASSES, confidence=0.5)
    assert (r["true_positives"], r["false_positives"], r["missed"]) == (1, 1, 0)
    assert r["f1"] == pytest.approx(2 * 0.5 * 1.0 / 1.5, abs=1e-4)


def test_best_overlap_wins_and_empty_frames():
    truth = (box(0, 0, 10, 10), box(5, 0, 15, 10))
    preds = (box(5, 0, 15, 10, 0, 0.9),)  # overlaps both; must take the exact one
    assert match_frame(preds, truth) == [(0, 0.9, True)]
    r = evaluate([FrameMatch((), ()), FrameMatch((), ())], CLASSES, confidence=0.5)
    assert r["precision"] == 1.0 and r["recall"] == 1.0 and r["map50"] is None


def test_buckets_split_simulated_time():
    hit = FrameMatch((box(0, 0, 10, 10, 0, 0.9),), (box(0, 0, 10, 10),), 0.0)
    frames = [FrameMatch(hit.predictions, hit.truth, t) for t in (0.0, 10.0, 20.0)]
    frames += [FrameMatch((), (box(0, 0, 10, 10),), t) for t in (60.0, 80.0, 100.0)]  # all missed late on
    b = evaluate_buckets(frames, CLASSES, 0.5, buckets=2)
    assert [x["frames"] for x in b] == [3, 3]
    assert [x["recall"] for x in b] == [1.0, 0.0]
    assert b[0]["t_start_s"] == 0.0 and b[1]["t_end_s"] == 100.0
