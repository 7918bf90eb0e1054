"""Field accuracy and the shadow model: Wilson intervals, the score calibration, the challenger's disagreements
in the review queue, the sampled figures against the simulator's truth, and when retraining is suggested."""

from __future__ import annotations

import copy
import json
import threading
import time
from collections import Counter

import pytest

from engine.core.config import default_config
from engine.core.frame import Box
from engine.inference import load_detector
from engine.inference.confidence import ExpectedPrecision, fit_calibration, isotonic_fit, load_calibration
from engine.inference.evaluate import FrameMatch, collect, evaluate
from engine.review.accuracy import field_accuracy, judge, retrain_suggestion, shift_of, wilson
from engine.review.router import OracleReviewer
from engine.runtime.pipeline import PipelineConfig
from engine.runtime.shadow import ShadowRunner, compare
from engine.runtime.station import Station
from engine.sources import open_source

SIM = "sim://?seed=3&width=640&height=512&realtime=0"


def wait(cond, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    raise AssertionError("timed out")


def box(x, y, name="scratch", score=0.9):
    return Box(x, y, x + 20, y + 20, 0, name, score)


def test_wilson_interval_matches_known_values():
    lo, hi = wilson(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    lo, hi = wilson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson(10, 10)
    assert lo == pytest.approx(0.7225, abs=1e-4) and hi == 1.0
    lo, hi = wilson(81, 263)
    assert lo == pytest.approx(0.2553, abs=1e-4) and hi == pytest.approx(0.3662, abs=1e-4)
    assert wilson(0, 0) is None


def test_isotonic_calibration_pools_violators_and_maps_scores():
    knots, values = isotonic_fit([0.1, 0.2, 0.3, 0.4], [1, 0, 1, 1])
    assert list(knots) == [0.2, 0.4] and list(values) == [0.5, 1.0]
    frames = [FrameMatch((box(0, 0, score=0.95), box(100, 0, score=0.3)), (box(0, 0),)),
              FrameMatch((box(0, 0, score=0.9), box(200, 0, score=0.35)), (box(1, 1),))]
    cal = fit_calibration(frames, "m")
    assert list(cal.probability([0.3, 0.92, 0.99])) == [0.0, 1.0, 1.0]
    est = ExpectedPrecision(cal, window=2)
    est.add([0.95, 0.3])
    assert est.value == pytest.approx(0.5)
    est.add([])
    est.add([0.99])  # the first frame left the window
    assert est.value == pytest.approx(1.0)


def test_calibration_is_kept_in_the_data_folder(data_dir):
    assert load_calibration(data_dir) is None
    cal = fit_calibration([FrameMatch((box(0, 0, score=0.8),), (box(0, 0),))], "model x", "sim://")
    cal.save(data_dir)
    back = load_calibration(data_dir)
    assert back is not None and back.model == "model x" and back.knots == cal.knots


def test_compare_pairs_boxes_by_place_and_class():
    champion = [box(0, 0), box(100, 0), box(200, 0, "dent")]
    challenger = [box(1, 1), box(201, 0, "scratch"), box(300, 300)]
    c = compare(champion, challenger)
    assert (c.agree, c.only_champion, c.only_challenger, c.different_class) == (1, 1, 1, 1)
    assert c.disagrees and compare(champion, list(champion)).disagrees is False
    assert judge(champion, challenger, champion) == "champion"
    assert judge(champion, challenger, challenger) == "challenger"


def test_a_busy_challenger_keeps_the_newest_frame_and_counts_the_skipped_ones():
    detector = load_detector(None)
    entered, gate = threading.Event(), threading.Event()
    real = detector.detect

    def held(frames):  # the real model, held back until the test has offered its frames
        entered.set()
        gate.wait(30)
        return real(frames)

    detector.detect = held
    src = open_source(SIM)
    src.open()
    frames = [src.read() for _ in range(5)]
    src.close()
    results, seen = [], []
    for f in frames:
        results.append(type("R", (), {"frame": f, "detections": None, "measurements": {}})())
    runner = ShadowRunner(detector, 1.0, lambda r, boxes, cmp: seen.append(r.frame.sequence))
    try:
        runner.offer(results[0])
        assert entered.wait(30)
        for r in results[1:]:
            runner.offer(r)  # the challenger is busy: each newer frame replaces the one waiting
        gate.set()
        wait(lambda: runner.snapshot()["shadowed"] == 2)
    finally:
        runner.stop()
    snap = runner.snapshot()
    assert snap["offered"] == 5 and snap["skipped"] == 3
    assert seen == [frames[0].sequence, frames[4].sequence]


def _station(data_dir, frames, config=None):
    cfg = config or default_config()
    pc = PipelineConfig(max_frames=frames)
    return Station(cfg, data_dir, uri=SIM, realtime=False, keep_trends=False, reference="none", pipeline_config=pc)


def test_a_challenger_that_finds_less_sends_its_disagreements_for_review(data_dir):
    cfg = default_config()
    cfg["review"]["max_per_hour"], cfg["review"]["burst"] = 100000, 10000  # a pace that admits every disagreement
    station = _station(data_dir, 30, cfg)
    try:
        station.load_model()
        shy = load_detector(None, confidence=0.97)  # the same weights, reporting far fewer boxes
        station.field.start_shadow(shy, share=1.0, name="shy")
        queued = []
        station.open_source(SIM)
        station.pipeline.join(60)
        snap = station.stop_shadow()
        queued = [why for _, why in station.queue]
    finally:
        station.close()
    assert snap["shadowed"] >= 1 and snap["offered"] == snap["shadowed"] + snap["skipped"] + snap["failed"]
    assert snap["disagreed"] >= 1 and snap["only_champion"] >= 1 and snap["only_challenger"] == 0
    assert queued.count("shadow") == snap["disagreed"]


def test_the_operators_say_which_model_was_right(data_dir):
    station = _station(data_dir, 20)
    frames = {}

    def keep(rec):  # the simulator's truth of each shadow frame decided, to judge the two models by
        fr = rec.decision.frame
        if fr.queue_reason == "shadow":
            truth = [Box(*d["box"], d["class_id"], d["class_name"]) for d in fr.ground_truth["defects"]]
            frames[(fr.sequence, fr.timestamp)] = (fr.detections, truth)

    station.acked.connect(keep)
    try:
        station.load_model()
        station.review_automatically(OracleReviewer(1.0))
        blind = load_detector(None, confidence=1.0)  # the same weights, reporting nothing
        station.field.start_shadow(blind, share=1.0, name="blind")
        station.open_source(SIM)
        station.pipeline.join(60)
        snap = station.stop_shadow()
    finally:
        station.close()
    judged = station.field.shadow_judged()
    expected = Counter(judge(shown, [], truth) for shown, truth in frames.values())
    assert snap["disagreed"] == len(frames) >= 1 and snap["only_champion"] == snap["disagreed"]
    assert judged == {k: expected.get(k, 0) for k in judged}


def test_on_the_nominal_line_the_sampled_interval_holds_the_true_precision_and_recall(data_dir, capsys):
    cfg = copy.deepcopy(default_config())
    cfg["accuracy"]["sample_share"] = 0.5
    frames = 80
    station = _station(data_dir, frames, cfg)
    try:
        station.load_model()
        station.router.cfg.max_per_hour = 100000  # the simulated operator is never tired
        station.router.cfg.margin = 0.0  # no frame is taken for being near the threshold: more are sampled
        station.review_automatically(OracleReviewer(1.0))
        station.open_source(SIM)
        station.pipeline.join(120)
    finally:
        station.close()
    assert station.review_summary()["failed"] == 0
    field = field_accuracy(data_dir)
    det = load_detector(None)
    truth = evaluate(collect(open_source(SIM), det, frames), det.classes, det.confidence)
    p, r = field["precision"], field["recall"]
    assert p["n"] >= 10 and r["n"] >= 10
    assert p["low"] <= truth["precision"] <= p["high"]
    assert r["low"] <= truth["recall"] <= r["high"]
    assert set(field["classes"]) <= set(det.classes)
    assert field["shifts"] and sum(s["frames"] for s in field["shifts"].values()) == field["frames"]

    from app.cli import main

    assert main(["--data-dir", str(data_dir), "accuracy", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["precision"] == p and out["suggestion"] is None


def test_retraining_is_suggested_only_when_all_three_conditions_hold():
    for low in (False, True):
        for alarm in (False, True):
            for enough in (False, True):
                text = retrain_suggestion(0.6 if low else 0.9, 0.8, alarm, 25 if enough else 5, 20)
                assert (text is not None) == (low and alarm and enough)
    assert retrain_suggestion(None, 0.8, True, 100, 20) is None
    assert "never" not in retrain_suggestion(0.5, 0.8, True, 100, 20)


def test_shifts_run_from_each_start_to_the_next():
    t = time.mktime((2026, 3, 2, 7, 30, 0, 0, 0, -1))
    assert shift_of(t, (6, 14, 22)) == "06:00-14:00"
    assert shift_of(t - 3 * 3600, (6, 14, 22)) == "22:00-06:00"


def test_the_station_suggests_retraining_under_a_drift_alarm_and_keeps_the_estimate(data_dir, tmp_path):
    from engine.inference.confidence import Calibration
    from engine.monitoring.reference import Reference
    from engine.monitoring.stats import cpu_stats
    from engine.runtime.field import field_report

    src = open_source("sim://?seed=100&width=320&height=256")
    src.open()
    ref = Reference.build(((cpu_stats(src.read().image), None) for _ in range(150)), {"source": "test"})
    src.close()
    cfg = copy.deepcopy(default_config())
    cfg["drift"]["reference"] = str(ref.save(tmp_path / "ref.npz"))
    cfg["accuracy"].update(floor=0.95, min_corrected_frames=0)
    Calibration(load_detector(None).name, (1.0,), (0.9,)).save(data_dir)  # every box shown is worth 0.9
    uri = "sim://?seed=5&scenario=lens-change&width=320&height=256&realtime=0&start=150"
    station = Station(cfg, data_dir, uri=uri, realtime=False, pipeline_config=PipelineConfig(max_frames=120))
    suggested = []
    station.events.connect(lambda ev: suggested.append(ev.message) if ev.kind == "retrain-suggested" else None)
    try:
        station.load_model()
        station.open_source(uri)
        station.pipeline.join(120)
    finally:
        station.close()
    assert station.field.expected_precision == pytest.approx(0.9)
    assert len(suggested) == 1 and "0.90 is below the floor 0.95" in suggested[0]
    out = field_report(data_dir, cfg)
    assert out["suggestion"] == suggested[0] and out["expected_precision"]["value"] == pytest.approx(0.9)


def test_a_headless_run_with_a_shadow_model_reports_its_counts(data_dir, capsys):
    from app.cli import main

    assert main(["--data-dir", str(data_dir), "accuracy", "estimate", "--frames", "1"]) == 2
    assert "accuracy calibrate" in capsys.readouterr().err
    assert main(["--data-dir", str(data_dir), "run", "--headless", "--source", SIM, "--frames", "12",
                 "--reference", "none", "--shadow", "builtin", "--shadow-share", "1"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    shadow = summary["shadow"]
    assert summary["frames"] == 12 and shadow["offered"] >= 1
    assert shadow["offered"] == shadow["shadowed"] + shadow["skipped"] + shadow["failed"]
    assert shadow["agreed"] == shadow["shadowed"] and shadow["disagreed"] == 0  # the same model agrees with itself
