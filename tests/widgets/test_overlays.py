"""Labels that never cover each other, decisions drawn as marks, the banner, the counts and the drift lights."""

import numpy as np
from PySide6 import QtCore, QtWidgets

from engine.core.frame import Box
from widgets.drift_strip import DriftStrip
from widgets.live_view import LiveView, Marks, place_labels
from widgets.state_banner import ShiftCounts, StateBanner


def overlaps(rects):
    return [(a, b) for i, a in enumerate(rects) for b in rects[i + 1:]
            if not (a[0] + a[2] <= b[0] or b[0] + b[2] <= a[0] or a[1] + a[3] <= b[1] or b[1] + b[3] <= a[1])]


def test_greedy_placement_tries_above_below_inside_then_moves_down():
    anchors = [(10, 50, 40, 80), (12, 52, 42, 82), (14, 54, 44, 84), (16, 56, 46, 86)]  # four boxes on one spot
    sizes = [(60, 12)] * 4
    spots = place_labels(anchors, sizes, bounds=(200, 200))
    assert spots[0] == (10, 38)  # above its box
    assert spots[1] == (12, 82)  # above is taken: below
    rects = [(x, y, w, h) for (x, y), (w, h) in zip(spots, sizes)]
    assert overlaps(rects) == []
    assert all(0 <= y for _, y, _, _ in rects)
    top = place_labels([(150, 0, 190, 20)], [(80, 12)], bounds=(200, 200))
    assert top == [(120, 20)]  # no room above the frame's top: below, kept inside the frame


def test_close_boxes_get_labels_that_do_not_overlap(qtbot):
    view = LiveView()
    qtbot.addWidget(view)
    view.resize(640, 480)
    view.show()
    qtbot.waitExposed(view)
    frame = np.zeros((200, 300, 3), np.uint8)
    dets = [Box(40 + 6 * i, 60 + 4 * i, 80 + 6 * i, 100 + 4 * i, i % 3, ("scratch", "dent", "contamination")[i % 3],
                0.5 + i / 20) for i in range(5)]
    view.show_frame(frame, dets)
    qtbot.wait(20)
    view._place_labels()
    rects = view.label_rects()
    assert len(rects) == 5
    assert all(not a.intersects(b) for i, a in enumerate(rects) for b in rects[i + 1:])


def test_each_decision_has_its_own_mark(qtbot):
    view = LiveView()
    qtbot.addWidget(view)
    frame = np.zeros((200, 300, 3), np.uint8)
    dets = [Box(10, 10, 40, 40, 0, "scratch", 0.62), Box(100, 10, 140, 40, 1, "dent", 0.7),
            Box(10, 100, 40, 140, 0, "scratch", 0.55)]
    marks = Marks(states={0: "confirm", 1: "reject", 2: "reclass"}, relabels={2: "contamination"},
                  missed=(((200, 100, 260, 160), "dent", "missed"),), unsure="unsure")
    view.show_frame(frame, dets, marks=marks)
    drawn = view.drawn_marks()
    assert drawn[:4] == [("confirm", "✔ scratch 0.62"), ("reject", "✘ dent 0.70"),
                         ("reclass", "✔ scratch → contamination"), ("missed", "+ dent (missed)")]
    assert drawn[4][0] == "unsure"
    assert view._detections.crosses[1].isVisible() and not view._detections.crosses[0].isVisible()
    assert view._detections.rects[1].pen().style() == QtCore.Qt.PenStyle.DashLine
    view.restyle(None, {}, Marks())  # the frame left: nothing of it stays
    assert [k for k, _ in view.drawn_marks()] == ["detection"] * 3
    assert not view._missed.rects[0].isVisible() and not view._detections.crosses[1].isVisible()


def test_banner_counts_and_drift_lights(qtbot):
    banner, counts, strip = StateBanner(), ShiftCounts(), DriftStrip(["focus", "noise", "mean_luma"])
    for w in (banner, counts, strip):
        qtbot.addWidget(w)
    banner.set_state("alarm", "ALARM: drift out of tolerance: focus")
    assert banner.kind == "alarm" and "b71c1c" in banner.styleSheet()
    counts.set_counts(200, 10, 7, 3)
    assert counts.figures["yield"].text() == "95.0 %" and counts.figures["rejected"].text() == "3"
    assert strip.worst() == ""
    strip.set_levels({"focus": ("alarm", "focus low"), "noise": ("warning", "noise up"), "mean_luma": ("ok", "")})
    assert strip.worst() == "alarm" and strip.summary.text() == "ALARM: focus; watch: noise"
    assert "#e53935" in strip.lights["focus"].styleSheet()
    assert strip.minimumHeight() >= 48
    with qtbot.waitSignal(strip.open_detail):
        qtbot.mouseClick(strip, QtCore.Qt.MouseButton.LeftButton)


def test_the_shift_counts_stay_whole_beside_a_dock_on_a_1024_screen(qtbot):
    holder = QtWidgets.QWidget()  # the window's central column, as narrow as beside the engineer's docks
    qtbot.addWidget(holder)
    counts = ShiftCounts(holder)
    counts.set_counts(21530, 7030, 1000, 1000)  # a long shift's five-digit figures
    holder.resize(900, 40)
    holder.show()
    counts.setGeometry(0, 0, 470, 40)  # the image's width beside the engineer's docks at 1024 x 768
    qtbot.waitUntil(lambda: counts.compact, timeout=2000)
    assert counts.captions["yield"].text() == "Clear"
    assert counts.layout().sizeHint().width() <= 470, "the share of clear frames is cut off"
    counts.setGeometry(0, 0, 900, 40)
    qtbot.waitUntil(lambda: not counts.compact, timeout=2000)
    assert counts.captions["yield"].text() == "Clear frames"
