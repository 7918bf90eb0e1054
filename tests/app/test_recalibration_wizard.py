"""The recalibration wizard driven end to end with pytest-qt on the simulated lens change."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from PySide6 import QtCore

from app.gui.start import make_app
from app.gui.window import MainWindow
from engine.core.config import default_config
from engine.storage.db import read
from engine.inference import load_detector
from engine.monitoring.reference import Reference
from engine.simulation.scenarios import LENS_CHANGE_AT
from engine.sources import open_source
from engine.monitoring.stats import cpu_stats

W, H = 640, 512
SHOTS = os.environ.get("INSPECTION_STATION_SHOTS", "")
LINE = f"sim://?seed=1&scenario=lens-change&width={W}&height={H}&fps=30&realtime=0&start={LENS_CHANGE_AT}"


@pytest.fixture(scope="module")
def reference_file(tmp_path_factory):
    """The station's reference before the lens change, at this frame size (60 frames, with embeddings)."""
    det = load_detector(None, device="cpu")
    src = open_source(f"sim://?seed=1&scenario=lens-change&width={W}&height={H}")
    src.open()
    frames = [src.read() for _ in range(60)]
    items = []
    for i in range(0, 60, 8):
        for f, d in zip(frames[i:i + 8], det.detect(frames[i:i + 8])):
            items.append((cpu_stats(f.image), d.embedding))
    ref = Reference.build(items, {"source": "nominal lens", "width": W, "height": H})
    return ref.save(tmp_path_factory.mktemp("ref") / "before.npz"), ref.id


@pytest.fixture
def window(qtbot, data_dir, reference_file):
    make_app()
    cfg = copy.deepcopy(default_config())
    cfg["drift"]["reference"] = str(reference_file[0])
    cfg["drift"]["batch_frames"] = 4  # the small references of this test must carry 15 batches
    cfg["calibration"].update(golden_frames=40, domain_frames=64)
    w = MainWindow(cfg, data_dir, source=LINE)
    qtbot.addWidget(w)
    w.show()
    yield w
    ctl = getattr(w, "recalibration_controller", None)
    if ctl is not None:
        ctl.shutdown()
    w.close()  # a wizard still open does not start the line again behind a closed window


def _keep_picture(widget, name: str) -> None:
    """With INSPECTION_STATION_SHOTS=DIR, keep offscreen pictures of the pages (documentation)."""
    if SHOTS:
        assert widget.grab().save(str(Path(SHOTS) / name))


def _assert_plain(page) -> None:
    """What a step page says it measured is sentences: no True/False, no field names."""
    text = page.values.text()
    assert text and not re.search(r"\b(True|False|None)\b|\b[a-z]+_[a-z_]+\b", text), text


def _wait_judged(qtbot, page, timeout=60000):
    qtbot.waitUntil(lambda: page.state is not None, timeout=timeout)
    return page.state


def test_wizard_end_to_end_on_the_simulated_lens_change(qtbot, window, data_dir, reference_file):
    qtbot.waitUntil(lambda: window.live.frames_shown >= 3, timeout=20000)
    action = window.act_recalibrate
    assert action in window.tools_menu.actions()
    assert action.shortcut().toString() == "Ctrl+Shift+K" and action.property("permission") == "recalibrate"
    action.trigger()
    wiz = window.recalibration_wizard
    qtbot.waitUntil(wiz.isVisible, timeout=5000)
    assert window.station.pipeline is None  # the wizard has the camera; the line waits

    # Reason: 'other' needs a note; then a lens replacement by the technician.
    page = wiz.reason_page
    qtbot.waitUntil(lambda: page.preview.frames_shown > 0, timeout=20000)  # live preview here too
    page.reason.setCurrentText("other")
    page.who.setText("ann")
    wiz.next()
    assert wiz.currentPage() is page and "other" in page.error.text()
    page.reason.setCurrentText("lens replacement")
    wiz.next()

    # Geometry: the simulated line shows the checkerboard; solved once the field is covered.
    geo = wiz.step_pages["geometry"]
    assert wiz.currentPage() is geo
    state = _wait_judged(qtbot, geo)
    assert state["status"] == "pass", state["summary"]
    assert geo.verdict.text() == "PASS" and geo.preview.frames_shown > 0
    assert "reprojection" in geo.summary.text()
    assert re.search(r"The checkerboard was found in \d+ of \d+ images\.", geo.values.text())
    _assert_plain(geo)
    fx = next(r for r in state["values"]["comparison"] if r["key"] == "fx")
    assert 0.03 < fx["relative"] < 0.09  # the replacement lens's focal length is 6 % longer
    _keep_picture(geo, "wizard_geometry.png")
    wiz.next()

    # Focus: the simulated replacement lens is defocused and cannot be refocused: FAIL, then a written override.
    focus = wiz.step_pages["focus"]
    qtbot.waitUntil(lambda: focus.preview.frames_shown >= 12, timeout=20000)
    assert not wiz.button(wiz.WizardButton.NextButton).isEnabled()  # not judged yet
    qtbot.mouseClick(focus.accept_button, QtCore.Qt.MouseButton.LeftButton)
    state = _wait_judged(qtbot, focus)
    assert state["status"] == "fail" and focus.verdict.text() == "FAIL"
    assert focus.override_box.isVisible()
    focus.override_reason.setText("short")
    qtbot.mouseClick(focus.override_button, QtCore.Qt.MouseButton.LeftButton)
    assert "at least 10 characters" in focus.summary.text()
    focus.override_reason.setText("fixed-focus replacement lens, supplier sheet attached")
    qtbot.mouseClick(focus.override_button, QtCore.Qt.MouseButton.LeftButton)
    assert "overridden" in focus.verdict.text()
    _assert_plain(focus)
    wiz.next()

    exposure = wiz.step_pages["exposure"]
    qtbot.waitUntil(lambda: exposure.preview.frames_shown >= 12, timeout=20000)
    qtbot.mouseClick(exposure.accept_button, QtCore.Qt.MouseButton.LeftButton)
    assert _wait_judged(qtbot, exposure)["status"] in ("pass", "fail")
    wiz.next()

    golden = wiz.step_pages["golden"]
    state = _wait_judged(qtbot, golden)
    assert state["status"] == "fail"  # at this small size the model raises false alarms: left failed for now
    _keep_picture(golden, "wizard_golden.png")
    wiz.next()

    domain = wiz.step_pages["domain"]
    state = _wait_judged(qtbot, domain)
    assert state["status"] == "warn" and "not been trained on images like these" in state["summary"]
    for page in (exposure, golden, domain):
        _assert_plain(page)
    wiz.next()

    # The failed mandatory golden check blocks the finish...
    commit = wiz.commit_page
    assert wiz.currentPage() is commit
    assert not commit.commit_button.isEnabled() and "Golden parts" in commit.blocked.text()
    wiz.back()
    wiz.back()
    assert wiz.currentPage() is golden
    golden.override_reason.setText("golden parts checked by eye: all defects seen; retraining requested")
    qtbot.mouseClick(golden.override_button, QtCore.Qt.MouseButton.LeftButton)
    wiz.next()
    wiz.next()
    # ...until it is overridden with a reason.
    assert wiz.currentPage() is commit and commit.commit_button.isEnabled()
    assert commit.new_reference.isChecked()
    qtbot.mouseClick(commit.commit_button, QtCore.Qt.MouseButton.LeftButton)
    assert commit.outcome.text() != commit.WAITING  # signed: writing (or done), no longer waiting for the PIN
    qtbot.waitUntil(lambda: commit.result is not None, timeout=60000)
    result = commit.result

    # Afterwards: the report, the event on every trend chart and the new station reference.
    report = data_dir / "reports"
    pages = list(report.glob("recalibration-*.html"))
    assert len(pages) == 1 and str(pages[0]) == result["report"]
    text = pages[0].read_text()
    assert "retraining requested" in text and text.count("data:image/png;base64,") >= 4 and text.count("<svg") >= 3
    events = read(data_dir, "SELECT * FROM station_events WHERE kind = 'recalibration'")
    assert len(events) == 1 and "lens replacement by ann" in events[0]["detail"]
    station = json.loads((data_dir / "station.json").read_text())
    assert station["reference_id"] == result["reference_id"] != reference_file[1]
    assert Reference.load(station["reference"]).id == result["reference_id"]
    assert list((data_dir / "lens_profiles").glob("*.json"))
    assert window.station.router.campaign is not None and window.station.router.campaign.every_n == 10
    if SHOTS:
        shutil.copy(pages[0], Path(SHOTS) / "recal_report.html")

    # Finish: the line starts again, after the lens change, against the new reference, with the event drawn.
    wiz.accept()
    qtbot.waitUntil(lambda: window.station.pipeline is not None and window.station.monitor is not None, timeout=20000)
    assert window.station.monitor.ref.id == result["reference_id"]
    assert "start=" in window.station.uri
    qtbot.waitUntil(lambda: not window.tasks.busy, timeout=10000)  # the new reference's history, read off the GUI thread
    marks = [line.value() for line in window.drift._events]  # one vertical line per chart and event
    assert marks.count(result["event_time"]) == len(window.drift.plots)
