"""The recalibration procedure scripted end to end on the simulated lens change."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.core.config import default_config
from engine.storage.db import read
from engine.inference import load_detector
from engine.monitoring.drift import DriftMonitor, measurers_for
from engine.calibration.recalibration import Recalibration, RecalibrationError
from engine.calibration.recalibration_commit import commit
from engine.calibration.recalibration_run import MAX_STALLED_READS, run_step, simulated_nominal_profile
from engine.calibration.station_files import Campaign, active_campaign, latest_lens_profile
from engine.monitoring.reference import Reference
from engine.review.router import ReviewRouter, RouterConfig
from engine.simulation.optics import REPLACEMENT_LENS, Camera
from engine.simulation.scenarios import LENS_CHANGE_AT
from engine.sources import open_source
from engine.monitoring.stats import cpu_stats

W, H = 640, 512
AFTER = f"sim://?seed=1&scenario=lens-change&width={W}&height={H}&start={LENS_CHANGE_AT}"
BEFORE = f"sim://?seed=1&scenario=lens-change&width={W}&height={H}&start=0"


@pytest.fixture(scope="module")
def detector():
    return load_detector(None, device="cpu")


@pytest.fixture(scope="module")
def nominal_reference(detector):
    """A reference of the nominal lens at this frame size (60 frames, with the model's embeddings)."""
    src = open_source(BEFORE)
    src.open()
    frames = [src.read() for _ in range(60)]
    items = []
    for i in range(0, len(frames), 8):
        chunk = frames[i:i + 8]
        for f, d in zip(chunk, detector.detect(chunk)):
            items.append((cpu_stats(f.image), d.embedding))
    return Reference.build(items, {"source": BEFORE, "width": W, "height": H})


def config():
    cfg = default_config()
    cfg["calibration"].update(domain_frames=80, golden_frames=90)
    cfg["drift"]["batch_frames"] = 5  # the new reference (80 frames) must be usable by the drift monitor
    return cfg


def session(data_dir, detector, ref, src):
    return Recalibration(data_dir, config(), detector, ref, ref, simulated_nominal_profile(src, W, H), AFTER)


def test_scripted_lens_change_blocks_on_failed_checks_then_commits_with_overrides(data_dir, detector,
                                                                                   nominal_reference):
    src = open_source(AFTER)
    src.open()
    s = session(data_dir, detector, nominal_reference, src)
    with pytest.raises(RecalibrationError, match="reason must be one of"):
        s.set_reason("coffee", "ann")
    s.set_reason("lens replacement", "ann")
    steps = {name: run_step(s, src, name) for name in ("geometry", "focus", "exposure", "golden", "domain")}
    assert src._show is None  # the line is back in production

    # Geometry: the replacement lens, recovered from the simulated target.
    truth = Camera.for_lens(REPLACEMENT_LENS, W, H)
    geo = steps["geometry"]
    assert geo.status == "pass", geo.summary
    assert s.profile.fx == pytest.approx(truth.fx, rel=0.03)
    assert s.profile.rms_px < 0.5
    fx_row = next(r for r in geo.values["comparison"] if r["key"] == "fx")
    assert fx_row["relative"] == pytest.approx(0.06, abs=0.03)  # the focal length grew by 6 %
    assert geo.values["coverage"] >= 0.75

    # The simulated replacement lens is defocused and cannot be refocused: focus fails against the reference.
    assert steps["focus"].status == "fail"
    assert steps["focus"].values["focus"] < steps["focus"].values["band"][0]
    assert steps["golden"].status == "fail"  # the small frames and the blur make the model raise false alarms
    dom = steps["domain"]
    assert dom.status == "warn" and "focus" in dom.values["beyond"] and s.campaign_planned

    # Mandatory failures block the finish.
    assert set(s.blocking()) == {"focus", "golden"}
    with pytest.raises(RecalibrationError, match="focus, golden parts failed"):
        commit(s)
    assert latest_lens_profile(data_dir) is None and not (data_dir / "reports").exists()
    with pytest.raises(RecalibrationError, match="reason for the override"):
        s.override("focus", "ok", "ann")
    s.override("focus", "the replacement lens has a fixed focus; supplier confirms", "ann")
    assert s.blocking() == ["golden"]
    s.override("golden", "golden parts checked by eye; retraining requested", "bob")
    result = commit(s, keep_reference=False)

    # The lens profile, the new reference made the station's own, the event, the campaign and the report.
    profile = latest_lens_profile(data_dir)
    assert profile.fx == pytest.approx(s.profile.fx) and profile.who == "ann" and profile.reason == "lens replacement"
    station = json.loads((data_dir / "station.json").read_text())
    assert station["reference_id"] == result.reference_id and result.reference_path.is_file()
    assert Reference.load(result.reference_path).id == result.reference_id
    monitor = measurers_for(config(), data_dir=data_dir)[0]
    assert isinstance(monitor, DriftMonitor) and monitor.ref.id == result.reference_id
    events = read(data_dir, "SELECT * FROM station_events")
    assert [e["kind"] for e in events] == ["recalibration"]
    assert events[0]["time"] == pytest.approx(result.event_time) and "lens replacement by ann" in events[0]["detail"]
    record = json.loads(result.record_path.read_text())
    assert record["overrides"]["golden"]["reason"].startswith("golden parts checked by eye")
    assert record["overrides"]["golden"]["who"] == "bob"
    page = result.report_path.read_text()
    assert page.count("data:image/png;base64,") >= 4  # before/after images, embedded
    assert page.count("<svg") >= 3  # distortion, reprojection error, domain shift: inline SVG
    assert "supplier confirms" in page and "OVERRIDDEN" in page.upper()
    from engine.security.anchor import head

    h = head(data_dir)  # the report ends with the audit chain's head, one more copy of it
    assert f"entry {h.last_id} of {h.entries}, SHA-256 {h.hash}" in page.split('<footer class="anchor">')[1]
    campaign = active_campaign(data_dir)
    assert campaign is not None and campaign.every_n == 10


def test_keeping_the_old_reference_changes_nothing_about_drift(data_dir, detector, nominal_reference):
    src = open_source(AFTER)
    src.open()
    cfg = config()
    cfg["calibration"]["mandatory"] = ["geometry"]
    s = Recalibration(data_dir, cfg, detector, nominal_reference, nominal_reference, None, AFTER)
    s.set_reason("refocus", "ann")
    assert run_step(s, src, "geometry").status == "pass"
    assert s.blocking() == []  # the other checks are advisory here and were not run
    result = commit(s, keep_reference=True)
    assert result.reference_path is None and not (data_dir / "station.json").exists()
    assert json.loads(result.record_path.read_text())["reference"]["kept"] is True


def test_geometry_without_the_target_fails(data_dir, detector, nominal_reference):
    src = open_source(AFTER)
    src.open()
    s = Recalibration(data_dir, config(), detector, nominal_reference)
    s.set_reason("camera moved", "ann")
    for _ in range(5):
        s.feed("geometry", src.read())  # production frames: no target
    st = s.finish("geometry")
    assert st.status == "fail" and "not found" in st.summary
    assert "geometry" in s.blocking()


def test_a_camera_that_stops_delivering_ends_the_step_instead_of_waiting_forever(data_dir, detector,
                                                                                   nominal_reference):
    # The simulated camera delivers nothing for slots 330-449; each timed-out read lets 2 s (2 slots) pass.
    src = open_source("sim://?seed=1&scenario=camera-dropout&fps=1&start=330")
    src.open()
    s = Recalibration(data_dir, config(), detector, nominal_reference)
    s.set_reason("camera moved", "ann")
    st = run_step(s, src, "geometry")
    assert src.slot == 330 + 2 * MAX_STALLED_READS < 450  # given up while the camera was still silent
    assert st.status == "fail" and "geometry" in s.blocking()


def test_golden_parts_pass_on_the_nominal_lens_at_full_size(data_dir, detector):
    """The golden check can pass: the nominal lens at the model's own frame size finds every known defect."""
    src = open_source("sim://?seed=1&scenario=lens-change&start=0")
    src.open()
    s = Recalibration(data_dir, config(), detector, None)
    st = run_step(s, src, "golden")
    assert st.status == "pass", st.summary
    assert len(st.values["hit_rate"]) == 6 and not st.values["missed"]


def test_campaign_routes_every_nth_frame_to_the_review_queue(tmp_path):
    router = ReviewRouter(RouterConfig(sample_rate=0.0, quotas={}))  # the whole pace for the campaign
    c = Campaign("c1", every_n=4, frames=20, reason="test")
    router.campaign = c
    reasons = [router.reason([], {}, now=float(i)) for i in range(30)]
    assert reasons.count("data-campaign") == 5 and reasons[3] == "data-campaign" and reasons[0] is None
    assert not c.active
    c2 = Campaign("c2", every_n=2, frames=10, reason="test")
    path = c2.save(tmp_path / "campaigns" / "a.json")
    loaded = active_campaign(tmp_path)
    assert loaded is not None and loaded.path == path and loaded.frames == 10
    np.testing.assert_equal(loaded.take(), False)
    assert loaded.take() is True


def test_domain_check_passes_on_the_lens_the_reference_was_made_with(data_dir, detector, nominal_reference):
    src = open_source(BEFORE.replace("start=0", "start=100"))
    src.open()
    cfg = config()
    cfg["calibration"]["domain_frames"] = 40
    s = Recalibration(data_dir, cfg, detector, nominal_reference)
    st = run_step(s, src, "domain")
    assert st.status == "pass", st.summary
    assert not s.campaign_planned and st.values["novel_share"] <= 0.2


def test_headless_calibrate_command_blocks_then_commits_with_overrides(tmp_path, data_dir, nominal_reference,
                                                                      capsys):
    from app.cli import main

    ref = nominal_reference.save(tmp_path / "ref.npz")
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[drift]\nreference = "{ref}"\nbatch_frames = 4\n'
                   '[calibration]\ngolden_frames = 24\ndomain_frames = 60\n')
    base = ["--data-dir", str(data_dir), "--config", str(cfg), "calibrate", "--source", AFTER, "--who", "ann"]
    assert main(base) == 2
    err = capsys.readouterr().err
    assert "not finished: focus, golden parts failed" in err and err.count("\n") == 1
    assert not (data_dir / "reports").exists()
    rc = main([*base, "--json", "--override", "focus=fixed-focus lens, accepted by quality",
               "--override", "golden=golden parts checked by eye"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    steps = {s["name"]: s for s in out["steps"]}
    assert steps["geometry"]["status"] == "pass"
    assert steps["golden"]["override"]["reason"] == "golden parts checked by eye"
    assert (data_dir / "station.json").is_file() and out["reference_id"]
    assert "golden parts checked by eye" in Path(out["report"]).read_text()
