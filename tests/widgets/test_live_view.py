import numpy as np
from PySide6 import QtCore, QtGui

from engine.core.frame import Box
from widgets.live_view import LiveView
from widgets.source_panel import EventLog, SourceChooser, ValuesTable


def boxes(n, score=None):
    return [Box(10 + 20 * i, 10, 25 + 20 * i, 30, i % 3, ("scratch", "dent", "contamination")[i % 3], score)
            for i in range(n)]


def test_live_view_draws_frames_with_fixed_levels_and_reuses_overlay_items(qtbot):
    view = LiveView()
    qtbot.addWidget(view)
    frame = np.zeros((100, 200, 3), np.uint8)
    frame[:, :, 0] = 40  # a dark frame must stay dark: no per-frame auto-levels
    view.show_frame(frame, boxes(3, 0.9), boxes(2))
    assert view.overlay_counts == (3, 2)
    view.image.render()  # a uint8 frame is drawn byte for byte: the dark frame stays dark
    assert QtGui.QColor(view.image.qimage.pixel(0, 0)).red() == 40
    assert view.image.image.shape == (100, 200, 3)
    items_before = len(view.view.addedItems)
    view.show_frame(frame, boxes(1, 0.5), ())
    assert view.overlay_counts == (1, 0)
    assert len(view.view.addedItems) == items_before  # hidden, not recreated
    visible = [r for r in view._detections.rects if r.isVisible()]
    assert len(visible) == 1 and visible[0].rect().width() == 15
    assert view._detections.labels[0].toPlainText() == "scratch 0.50"
    view.show_frame(frame, boxes(5), ())
    assert view.overlay_counts == (5, 0) and view.frames_shown == 3


def test_source_chooser_emits_the_uri_typed_or_picked(qtbot):
    chooser = SourceChooser([("Nominal line", "sim://?scenario=nominal")], current="sim://?scenario=nominal")
    qtbot.addWidget(chooser)
    with qtbot.waitSignal(chooser.source_chosen) as sig:
        chooser.combo.setEditText("cam://2")
        qtbot.keyClick(chooser.combo.lineEdit(), QtCore.Qt.Key.Key_Return)
    assert sig.args == ["cam://2"]
    with qtbot.waitSignal(chooser.source_chosen) as sig:
        chooser.combo.activated.emit(0)
    assert sig.args == ["sim://?scenario=nominal"]
    with qtbot.waitSignal(chooser.browse_requested) as sig:
        chooser.combo.activated.emit(chooser.combo.findData("browse:folder"))
    assert sig.args == ["folder"]


def test_event_log_is_newest_first_and_bounded(qtbot):
    log = EventLog(max_lines=3)
    qtbot.addWidget(log)
    for i in range(5):
        log.add("stalled", f"event {i}")
    assert log.count() == 3 and log.item(0).text().endswith("stalled: event 4")


def test_values_table_follows_the_values(qtbot):
    table = ValuesTable()
    qtbot.addWidget(table)
    table.set_values({"luma": 87.123, "sequence": 5})
    assert table.rowCount() == 2 and table.item(0, 1).text() == "87.12" and table.item(1, 1).text() == "5"


def test_drawing_frames_does_not_leak_references_to_shared_singletons(qtbot):
    """A station draws millions of frames. PySide6 6.12 decremented the refcounts of True and None on each
    ImageItem.setImage, which crashed the window after a while; the pin in pyproject.toml keeps it out."""
    import sys

    view = LiveView()
    qtbot.addWidget(view)
    frame = np.zeros((64, 80, 3), np.uint8)
    view.show_frame(frame, boxes(2, 0.7), boxes(1))
    before = sys.getrefcount(True), sys.getrefcount(None)
    for _ in range(500):
        view.show_frame(frame, boxes(2, 0.7), boxes(1))
    after = sys.getrefcount(True), sys.getrefcount(None)
    assert after[0] >= before[0] - 5 and after[1] >= before[1] - 5
