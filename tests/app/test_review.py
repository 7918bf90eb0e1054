"""An operator's review, driven through the real window: keys, clicks and a drawn box, read back from the store."""

import json

import pytest
from PySide6 import QtCore

from app.gui.start import make_app
from app.gui.window import MainWindow
from engine.core.config import default_config
from engine.review.feedback import list_decisions

SOURCE = "sim://?seed=2&scenario=nominal&width=640&height=512&fps=30"


@pytest.fixture
def window(qtbot, data_dir):
    make_app()
    w = MainWindow(default_config(), data_dir, source=SOURCE)
    qtbot.addWidget(w)
    w.resize(1400, 900)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.close()


def frame_to_widget(w, x, y):
    scene = w.live.view.mapViewToScene(QtCore.QPointF(x, y))
    return w.live.mapFromScene(scene)


def wait_saved(qtbot, w):
    qtbot.waitUntil(lambda: w.review.saved.text().startswith("Saved"), timeout=10000)


def test_freeze_draw_a_missed_defect_flag_unsure_and_undo(qtbot, window, data_dir):
    w = window
    qtbot.waitUntil(lambda: w.live.frames_shown >= 3, timeout=20000)
    qtbot.keyClick(w, QtCore.Qt.Key.Key_F)
    assert w.station.review.frozen is not None and w.review.freeze_button.isChecked()
    shown = w.live.frames_shown
    qtbot.wait(300)
    assert w.live.frames_shown == shown  # frozen: the line runs on behind it
    assert w.station.pipeline.stats.processed > 0
    qtbot.keyClick(w, QtCore.Qt.Key.Key_M)
    assert w.live.draw_mode
    qtbot.keyClick(w, QtCore.Qt.Key.Key_2)  # the missed defect is a dent
    vp = w.live.viewport()
    a, b = frame_to_widget(w, 100, 120), frame_to_widget(w, 160, 170)
    qtbot.mousePress(vp, QtCore.Qt.MouseButton.LeftButton, pos=a)
    qtbot.mouseMove(vp, pos=(a + b) / 2)
    qtbot.mouseMove(vp, pos=b)
    qtbot.mouseRelease(vp, QtCore.Qt.MouseButton.LeftButton, pos=b)
    wait_saved(qtbot, w)
    assert not w.live.draw_mode
    qtbot.keyClick(w, QtCore.Qt.Key.Key_U)
    qtbot.waitUntil(lambda: "unsure" in w.review.saved.text(), timeout=10000)
    qtbot.keyClick(w, QtCore.Qt.Key.Key_Z, QtCore.Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: "Undid: flagged frame" in w.review.saved.text()
                    and w.review.saved.text().startswith("Saved"), timeout=10000)
    assert ("unsure", "? UNSURE — flagged for an engineer") not in w.live.drawn_marks()
    assert any(kind == "missed" and "dent" in text for kind, text in w.live.drawn_marks())
    qtbot.keyClick(w, QtCore.Qt.Key.Key_F)
    assert w.station.review.frozen is None
    w.close()
    rows = list_decisions(data_dir)
    assert [r["verdict"] for r in rows] == ["missed", "unsure", "undo"]
    missed = rows[0]
    assert missed["new_class"] == "dent" and missed["operator"]
    x0, y0, x1, y1 = json.loads(missed["new_box"])
    assert x0 == pytest.approx(100, abs=3) and y0 == pytest.approx(120, abs=3)
    assert x1 == pytest.approx(160, abs=3) and y1 == pytest.approx(170, abs=3)
    assert rows[2]["undoes"] == rows[1]["review_id"]


def test_confirm_reject_and_reclass_detections_with_keys_clicks_and_buttons(qtbot, window, data_dir):
    w = window
    # Wait for a frame the model found at least two defects on, and freeze it.
    def two_detections():
        _, r = w.station.pipeline.latest() if w.station.pipeline else (0, None)
        return r is not None and r.detections is not None and len(r.detections.boxes) >= 2

    qtbot.waitUntil(two_detections, timeout=60000)
    qtbot.keyClick(w, QtCore.Qt.Key.Key_F)
    dets = w.station.review.frame.detections
    assert len(dets) >= 2 and w.station.review.selected == 0
    qtbot.keyClick(w, QtCore.Qt.Key.Key_C)  # confirm the first; the next is selected by itself
    assert w.station.review.selected == 1
    wait_saved(qtbot, w)
    qtbot.mouseClick(w.review.reject_button, QtCore.Qt.MouseButton.LeftButton)  # reject the second
    wait_saved(qtbot, w)
    # Click on the first box to select it again, and change its class with a key.
    b = dets[0]
    qtbot.mouseClick(w.live.viewport(), QtCore.Qt.MouseButton.LeftButton,
                     pos=frame_to_widget(w, (b.x0 + b.x1) / 2, (b.y0 + b.y1) / 2))
    assert w.station.review.selected == 0
    other = next(i for i in (1, 2, 3) if ("scratch", "dent", "contamination")[i - 1] != b.class_name)
    qtbot.keyClick(w, getattr(QtCore.Qt.Key, f"Key_{other}"))
    wait_saved(qtbot, w)
    w.close()
    rows = list_decisions(data_dir)
    assert [r["verdict"] for r in rows] == ["confirm", "reject", "reclass"]
    assert rows[0]["old_class"] == dets[0].class_name and rows[2]["new_class"] != dets[0].class_name
    assert all(r["model"] for r in rows) and rows[0]["score"] == pytest.approx(dets[0].score, abs=1e-3)
