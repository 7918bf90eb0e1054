"""The engineer's export dialog, driven in the real window: Ctrl+E, the count preview, export, cancel."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6 import QtCore, QtWidgets

from app.gui.start import make_app
from app.gui.window import MainWindow
from engine.datasets.bundle import ExportOptions, preview, verify
from engine.core.config import default_config
from engine.review.feedback import Decision, FeedbackStore, FrameForReview
from engine.core.frame import Box
from widgets.export_dialog import ROWS, ExportDialog

T0 = 1_767_225_600.0
SOURCE = "sim://?seed=1&scenario=nominal&width=320&height=256"


def _store(data, n: int = 12) -> None:
    s = FeedbackStore(data)
    for seq in range(n):
        img = np.full((48, 64, 3), seq * 9 % 256, np.uint8)
        fr = FrameForReview(img, "cam:0", seq, T0 + 60 * seq,
                            (Box(4, 4, 20, 20, 0, "scratch", 0.8), Box(30, 10, 40, 30, 1, "dent", 0.5)), "m 0123abcd")
        s.submit(Decision(fr, "ann", "confirm", detection=0)).result(10)
        verdict = ("reject", "confirm", "unsure")[seq % 3]
        s.submit(Decision(fr, "ann", verdict, detection=1)).result(10)
        if seq % 4 == 0:
            s.submit(Decision(fr, "bob", "missed", new_class="contamination", new_box=(50, 30, 60, 40))).result(10)
    s.close()


@pytest.fixture
def window(qtbot, data_dir):
    make_app()
    w = MainWindow(default_config(), data_dir, source=SOURCE, autostart=False, model="none")
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.export_controller.shutdown()
    w.close()


def _table(d: ExportDialog) -> dict[str, list[str]]:
    return {kind: [d.table.item(r, c).text() if d.table.item(r, c) else ""
                   for c in range(d.table.columnCount())] for r, kind in enumerate(ROWS)}


def _expected(counts: dict, classes: list[str]) -> dict[str, list[str]]:
    return {k: [str(counts["by_kind"][k])] + [str(counts["by_kind_and_class"][k].get(c, 0)) for c in classes]
            for k in ROWS}


def test_ctrl_e_opens_the_dialog_which_previews_and_exports(qtbot, window, data_dir, tmp_path):
    _store(data_dir)
    w = window
    assert w.act_export_bundle in w.tools_menu.actions()
    assert w.act_export_bundle.shortcut().toString() == "Ctrl+E"
    qtbot.keyClick(w, QtCore.Qt.Key.Key_E, QtCore.Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: w.export_controller.dialog is not None and w.export_controller.dialog.isVisible(),
                    timeout=5000)
    d = w.export_controller.dialog
    want = preview(data_dir, ExportOptions())
    qtbot.waitUntil(lambda: _table(d) == _expected(want, d.classes), timeout=10000)
    assert d.summary.text().startswith(f"{want['images']} images")
    # The period starts at the stored frames' span, read off the GUI thread and filled in when it arrives.
    qtbot.waitUntil(lambda: d.since.dateTime().toSecsSinceEpoch() == int(T0), timeout=10000)
    assert d.until.dateTime().toSecsSinceEpoch() == int(T0 + 60 * 11 + 60)
    d.grab().save("/tmp/export_dialog.png")

    d.kind_boxes["fp"].setChecked(False)
    d.class_boxes["dent"].setChecked(False)
    fewer = preview(data_dir, ExportOptions(kinds=("fn", "confirmed", "unsure"),
                                            classes=("scratch", "contamination")))
    assert fewer["images"] < want["images"]
    qtbot.waitUntil(lambda: _table(d) == _expected(fewer, d.classes), timeout=10000)

    out = tmp_path / "bundle"
    d.path.setText(str(out))
    qtbot.mouseClick(d.export_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: d.status.text().startswith("Saved"), timeout=30000)
    assert not d.running and d.export_button.isEnabled()
    assert verify(out).ok
    m = json.loads((out / "manifest.json").read_text())
    assert m["filters"]["kinds"] == ["fn", "confirmed", "unsure"]
    assert m["filters"]["classes"] == ["scratch", "contamination"]
    assert m["counts"]["images"] == fewer["images"]

    # The same target again: one sentence in the dialog, nothing touched.
    qtbot.mouseClick(d.export_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "already exists" in d.status.text(), timeout=10000)
    assert verify(out).ok


def test_escape_cancels_a_running_export_and_nothing_is_left(qtbot, window, data_dir, tmp_path):
    from app.cli.bench import _bench_store

    _bench_store(data_dir, 1500, 640, 512)
    w = window
    w.act_export_bundle.trigger()
    d = w.export_controller.dialog
    qtbot.waitUntil(lambda: d.summary.text().startswith("1500 images"), timeout=20000)
    out = tmp_path / "exports" / "bundle"
    d.path.setText(str(out))
    qtbot.mouseClick(d.export_button, QtCore.Qt.MouseButton.LeftButton)
    assert d.running and d.cancel_button.isEnabled() and not d.close_button.isEnabled()
    qtbot.waitUntil(lambda: d.progress.maximum() > 1 and d.progress.value() > 0, timeout=20000)
    qtbot.keyClick(d, QtCore.Qt.Key.Key_Escape)  # while running, Esc cancels and the dialog stays open
    assert d.isVisible()
    qtbot.waitUntil(lambda: not d.running, timeout=30000)
    assert d.status.text() == "Cancelled: nothing was written."
    assert list((tmp_path / "exports").iterdir()) == []


def test_the_dialog_alone_says_what_is_wrong_and_shows_counts(qtbot):
    make_app()
    d = ExportDialog(["scratch", "dent"], replay_share=0.25)
    qtbot.addWidget(d)
    seen = []
    d.options_changed.connect(seen.append)
    o = d.options()
    assert isinstance(o, ExportOptions) and o.classes is None and o.replay_share == 0.25 and o.since is None
    for b in d.kind_boxes.values():
        b.setChecked(False)
    qtbot.waitUntil(lambda: bool(seen), timeout=2000)
    assert seen[-1] == "choose at least one kind (fp, fn, confirmed, unsure)"
    requested = []
    d.export_requested.connect(lambda *a: requested.append(a))
    d.path.setText("/somewhere/new")
    qtbot.mouseClick(d.export_button, QtCore.Qt.MouseButton.LeftButton)
    assert not requested and d.status.text().startswith("Choose at least one kind")
    d.kind_boxes["fn"].setChecked(True)
    d.since_on.setChecked(True)
    d.class_boxes["dent"].setChecked(False)
    o = d.options()
    assert o.kinds == ("fn",) and o.classes == ("scratch",) and o.since is not None
    d.show_preview({"images": 3, "chosen": 2, "replay": 1, "defect_free_images": 0,
                    "by_kind": {"fp": 0, "fn": 2, "confirmed": 0, "unsure": 0, "replay": 1},
                    "by_kind_and_class": {"fn": {"scratch": 2}}, "boxes_by_class": {"scratch": 4},
                    "predictions": 5, "decisions": 6})
    assert d.table.item(1, 0).text() == "2" and d.table.item(1, 1).text() == "2"
    assert d.summary.text().startswith("3 images (2 chosen, 1 replay")
    d.show()
    qtbot.waitExposed(d)
    d.activateWindow()
    qtbot.waitUntil(lambda: QtWidgets.QApplication.activeWindow() is d, timeout=5000)
    qtbot.keyClick(d, QtCore.Qt.Key.Key_Return, QtCore.Qt.KeyboardModifier.ControlModifier)
    assert requested and requested[-1][1] == "/somewhere/new"
