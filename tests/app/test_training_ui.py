"""Training from the window: an engineer picks a real bundle, signs, and a child process fine-tunes the champion
with progress in the dialog; the result joins the registry as a challenger; Cancel writes nothing. Real window
(pytest-qt, offscreen), real bundle from an auto-reviewed run, real torch training (a few steps)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6 import QtCore, QtWidgets

from engine.inference import registry
from engine.security import audit
from tests.station_windows import BADGE, PIN, aged_bundle, open_window

SOURCE = "sim://?seed=2&scenario=nominal&width=320&height=256&fps=30"
TINY = {"steps": 3, "batch": 4, "replay_frames": 2}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return aged_bundle(tmp_path_factory.mktemp("bundle"))


def _window(qtbot, data_dir, users=False):
    return open_window(qtbot, data_dir, SOURCE, users)


def test_an_engineer_trains_from_a_bundle_in_the_window_and_the_model_joins_as_a_challenger(qtbot, data_dir,
                                                                                           bundle):
    w = _window(qtbot, data_dir, users=True)
    c = w.training
    w.act_train_model.trigger()  # Ctrl+Shift+M
    d = c.dialog
    assert d is not None and d.isVisible() and "champion" in d.base.text() and not d.train.isEnabled()
    d.set_bundles([str(bundle)])
    assert d.train.isEnabled()
    c.overrides = TINY
    assert c.start(d.bundles, seed=0, minutes=0, pin=PIN)
    assert d.running and not d.train.isEnabled() and d.cancel.isEnabled()
    qtbot.waitUntil(lambda: not c.busy, timeout=240000)
    assert d.status.text().startswith("Trained "), d.status.text() + "\n" + d.log.toPlainText()
    assert "held-out" in d.status.text() and "challenger" in d.status.text()
    assert d.progress.value() == d.progress.maximum() == TINY["steps"]
    assert "parent" in d.log.toPlainText()  # the child's progress lines reached the dialog
    r = c.result
    entry = registry.resolve(data_dir, r["registered"])
    assert entry is not None and entry.status == "challenger" and entry.sha256 == r["sha256"]
    assert Path(r["out"]).is_file() and Path(r["out"]).parent == data_dir / "training"
    assert not list((data_dir / "training").glob("*.spec.json"))  # the spec is gone with the run
    signed = [e for e in audit.entries(data_dir) if e["action"] == "model_training_started"]
    assert signed and signed[-1]["user"] == BADGE and signed[-1]["meaning"] == "authored"
    assert registry.champion(data_dir).name == registry.BUILTIN  # trained is not promoted
    qtbot.waitUntil(lambda: any(row["name"] == entry.name for row in w.models.panel.rows), timeout=20000)
    w.close()


def test_cancel_stops_the_training_and_writes_nothing(qtbot, data_dir, bundle):
    w = _window(qtbot, data_dir)
    c = w.training
    c.overrides = {**TINY, "steps": 5000}
    assert c.start([str(bundle)], seed=0, minutes=0)
    qtbot.waitUntil(lambda: c.dialog.progress.value() >= 1, timeout=240000)  # training has begun
    c.cancel()
    qtbot.waitUntil(lambda: not c.busy, timeout=30000)
    assert c.dialog.status.text() == "Cancelled: nothing was written."
    assert not list((data_dir / "training").iterdir())
    assert [e.name for e in registry.entries(data_dir)] == [registry.BUILTIN]
    w.close()


def test_a_folder_that_is_not_a_bundle_is_one_sentence_in_the_dialog(qtbot, data_dir, tmp_path):
    w = _window(qtbot, data_dir)
    c = w.training
    assert c.start([str(tmp_path)], seed=0, minutes=0)
    qtbot.waitUntil(lambda: not c.busy, timeout=120000)
    text = c.dialog.status.text()
    assert "is not a feedback bundle" in text and "Traceback" not in text and text.count("\n") == 0
    assert not c.dialog.running and c.dialog.train.isEnabled() is False  # no bundles listed in the dialog
    w.close()


def test_the_frozen_program_runs_the_training_child_as_the_window_starts_it(tmp_path):
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"bundles": [str(tmp_path / "no-such-bundle")], "out": str(tmp_path / "m.pt")}))
    r = subprocess.run([sys.executable, str(root / "packaging/frozen_main.py"), "-m", "engine.inference.train_job",
                        str(spec)], capture_output=True, text=True, timeout=300, cwd=root)
    assert r.returncode == 2, r.stderr
    answer = json.loads(r.stdout.strip().splitlines()[-1])
    assert "no-such-bundle does not exist" in answer["error"] and "Traceback" not in r.stderr


def _answer_the_question(qtbot, button):
    def click():
        box = QtWidgets.QApplication.activeModalWidget()
        if isinstance(box, QtWidgets.QMessageBox):
            box.button(button).click()
        else:
            QtCore.QTimer.singleShot(50, click)

    QtCore.QTimer.singleShot(50, click)


def test_closing_the_window_during_training_asks_first_and_then_stops_it_writing_nothing(qtbot, data_dir, bundle):
    w = _window(qtbot, data_dir)
    c = w.training
    c.overrides = {**TINY, "steps": 5000}
    assert c.start([str(bundle)], seed=0, minutes=0)
    qtbot.waitUntil(lambda: c.dialog.progress.value() >= 1, timeout=240000)
    _answer_the_question(qtbot, QtWidgets.QMessageBox.StandardButton.No)
    w.close()
    assert w.isVisible() and c.busy  # kept open, still training
    _answer_the_question(qtbot, QtWidgets.QMessageBox.StandardButton.Yes)
    w.close()
    assert not w.isVisible()
    qtbot.waitUntil(lambda: not c.busy, timeout=30000)
    assert not list((data_dir / "training").glob("*.pt"))
