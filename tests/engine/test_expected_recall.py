"""The label-free expected recall: a calibration over the candidates below the threshold on the simulated line,
the detector's candidates on live frames, and the estimate falling on a dim, aged lamp."""

from __future__ import annotations

import pytest

from engine.inference import load_detector
from engine.inference.builtin import CANDIDATE_FLOOR
from engine.inference.confidence import (
    Calibration,
    ExpectedPrecision,
    expected_f1,
    expected_recall,
    fit_calibration,
    load_calibration,
    missed_mass,
)
from engine.inference.evaluate import collect
from engine.sources import open_source

NOMINAL = "sim://?seed=0&scenario=nominal&realtime=0"


@pytest.fixture(scope="module")
def calibrated():
    """The built-in model and its calibration over every candidate down to the floor, on 40 nominal frames."""
    det = load_detector(None)
    operating = det.confidence
    det.confidence = 0.01
    frames = collect(open_source(NOMINAL), det, 40)
    det.confidence = operating
    return det, fit_calibration(frames, det.name, NOMINAL, confidence=CANDIDATE_FLOOR, threshold=operating), frames


def test_the_calibration_covers_the_candidates_below_the_threshold(calibrated, data_dir):
    det, cal, frames = calibrated
    assert cal.threshold == det.confidence and cal.floor == CANDIDATE_FLOOR and cal.near == det.confidence / 2
    below = [p.score for f in frames for p in f.predictions if CANDIDATE_FLOOR <= p.score < det.confidence]
    near = sum(cal.near <= s for s in below)
    assert len(below) > len(frames)  # the reference line has noise peaks under the threshold
    assert cal.near_rate == pytest.approx(near / len(frames), abs=1e-6)
    assert cal.boxes == sum(p.score >= CANDIDATE_FLOOR for f in frames for p in f.predictions)
    # Nominal noise peaks are worth little; the boxes shown nearly all hold.
    assert cal.probability([CANDIDATE_FLOOR])[0] < 0.1 and cal.probability([0.9])[0] > 0.9
    cal.save(data_dir)
    assert load_calibration(data_dir) == cal
    # On the reference line itself the expected recall stays high: its near-threshold peaks are the reference's
    # own (no excess), and what is missed is the calibrated worth of its candidates (coarse on 40 frames).
    shown = cal.probability([p.score for f in frames for p in f.predictions if p.score >= det.confidence])
    mass = [missed_mass(cal, [p.score for p in f.predictions if p.score < det.confidence]) for f in frames]
    er = expected_recall(cal, float(shown.sum()), sum(m for m, _ in mass), sum(n for _, n in mass), len(frames))
    assert er is not None and er > 0.85
    assert expected_f1(1.0, er) == pytest.approx(2 * er / (1 + er))


def test_the_detector_reports_its_candidates_below_the_threshold(calibrated):
    det, _, frames = calibrated
    src = open_source(NOMINAL)
    src.open()
    try:
        live = [src.read() for _ in range(5)]
    finally:
        src.close()
    for frame, d, fm in zip(live, det.detect(live), frames):
        assert d.candidates is not None
        assert all(CANDIDATE_FLOOR <= s < det.confidence for s in d.candidates)
        assert all(b.score >= det.confidence for b in d.boxes)
        # The same peaks as a run at a low threshold finds, split at the operating one.
        low = sorted(p.score for p in fm.predictions if CANDIDATE_FLOOR <= p.score < det.confidence)
        assert sorted(d.candidates) == pytest.approx(low, abs=1e-5)


def _live_estimate(det, cal, uri, frames=16):
    est = ExpectedPrecision(cal, window=frames)
    src = open_source(uri)
    src.open()
    try:
        for _ in range(frames):
            f = src.read()
            d = det.detect([f])[0]
            est.add([b.score for b in d.boxes], d.candidates)
    finally:
        src.close()
    return est


def test_the_expected_recall_falls_on_an_aged_dim_lamp(calibrated):
    det, cal, _ = calibrated
    nominal = _live_estimate(det, cal, "sim://?seed=1&scenario=nominal&realtime=0")
    aged = _live_estimate(det, cal, "sim://?seed=1&scenario=lighting-aging&realtime=0&start=1200")  # day 25
    assert nominal.recall is not None and aged.recall is not None
    assert nominal.recall > 0.9
    assert aged.recall < nominal.recall - 0.05
    assert aged.f1 is not None and aged.f1 < nominal.f1


def test_a_calibration_without_a_reference_rate_gives_no_recall():
    cal = Calibration("m", (1.0,), (0.9,))
    est = ExpectedPrecision(cal)
    est.add([0.8, 0.9], (0.3, 0.2))
    assert est.value == pytest.approx(0.9) and est.recall is None and est.f1 is None


def test_the_station_suggests_retraining_on_the_expected_f1(data_dir, tmp_path):
    import copy

    from engine.core.config import default_config
    from engine.monitoring.reference import Reference
    from engine.monitoring.stats import cpu_stats
    from engine.runtime.field import field_report
    from engine.runtime.pipeline import PipelineConfig
    from engine.runtime.station import Station

    src = open_source("sim://?seed=100&width=320&height=256")
    src.open()
    ref = Reference.build(((cpu_stats(src.read().image), None) for _ in range(150)), {"source": "test"})
    src.close()
    cfg = copy.deepcopy(default_config())
    cfg["drift"]["reference"] = str(ref.save(tmp_path / "ref.npz"))
    cfg["accuracy"].update(floor=0.95, min_corrected_frames=0)
    # Every score is worth 0.9 and the reference had no near-threshold peak: every candidate counts as missed.
    Calibration(load_detector(None).name, (1.0,), (0.9,), threshold=0.4, floor=0.05, near=0.2,
                near_rate=0.0).save(data_dir)
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
    f = station.field
    assert f.expected_precision == pytest.approx(0.9) and f.expected_recall is not None
    assert f.expected_f1 == pytest.approx(expected_f1(0.9, f.expected_recall))
    assert len(suggested) == 1 and "the expected F1" in suggested[0]
    out = field_report(data_dir, cfg)
    assert out["expected_f1"] is not None and out["expected_recall"] is not None
