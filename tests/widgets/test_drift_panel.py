"""The drift dock's tiles, trends and log: a tile shows its metric's trend, labels never print over each other,
series stay bounded, and the log tells a drift alarm from a warning."""

import numpy as np
import pytest
from PySide6 import QtCore

from widgets.drift_panel import LEVEL_COLOURS, DriftPanel, _Series
from widgets.source_panel import EventLog

METRICS = ["mean_luma", "focus", "grid_drift", "novel_rate"]


def panel(qtbot) -> DriftPanel:
    d = DriftPanel(METRICS)
    qtbot.addWidget(d)
    d.resize(700, 600)
    d.show()
    qtbot.waitExposed(d)
    return d


def test_a_tile_click_shows_its_metrics_trend_sized_to_its_box(qtbot):
    d = panel(qtbot)
    d.append("focus", np.arange(100.0), np.linspace(1.0, 1.2, 100))
    assert d.selected == "mean_luma"
    with qtbot.waitSignal(d.metric_selected) as got:
        qtbot.mouseClick(d.tiles["focus"], QtCore.Qt.MouseButton.LeftButton)
    assert got.args == ["focus"] and d.selected == "focus"
    page = d.trends.currentWidget()
    assert page.objectName() == "trend_focus"
    assert page.height() >= d.trends.height() - 2  # the one chart fills the box, no scrolling
    assert d.plots["focus"].curve.xData.size == 100  # drawn when chosen


def test_tiles_say_warming_up_and_a_steady_drift(qtbot):
    d = panel(qtbot)
    d.set_levels({m: ("warming", "") for m in METRICS}, {})
    assert all("warming up" in t.text() for t in d.tiles.values())
    assert all(t.property("level") == "ok" for t in d.tiles.values())
    d.set_levels({"focus": ("warning", "focus drifting")}, {"focus": "steady"})
    assert d.tiles["focus"].text() == "focus\nsteady" and d.tiles["focus"].property("level") == "warning"
    assert LEVEL_COLOURS["warning"] in d.tiles["focus"].styleSheet()


@pytest.mark.parametrize("height", [600, 330])  # 330: the chart as short as on a 1024 x 768 screen
def test_event_labels_close_together_never_overlap(qtbot, height):
    d = panel(qtbot)
    d.resize(700, height)
    qtbot.waitUntil(lambda: d.height() == height, timeout=2000)
    d.append("mean_luma", np.arange(0.0, 1000.0), np.ones(1000))
    for t, text in ((500.0, "opened"), (500.5, "model"), (501.0, "recalibration"), (502.0, "opened"),
                    (900.0, "model")):
        d.add_event(t, text)
    d.redraw()
    qtbot.wait(50)
    d.plots["mean_luma"].place_labels()
    lines = d.plots["mean_luma"].events
    assert [ln.toolTip() for ln in lines] == ["opened", "model", "recalibration", "opened", "model"]
    shown = [ln.label.sceneBoundingRect() for ln in lines if ln.label.isVisible()]
    assert len(shown) >= 2
    for i, a in enumerate(shown):
        for b in shown[i + 1:]:
            assert not a.intersects(b), "two event labels print over each other"
    assert len(d._events) == 5 * len(METRICS)  # every chart has every event line


def test_a_series_keeps_the_newest_points_only():
    s = _Series(cap=100)
    for k in range(5):
        s.extend(np.arange(k * 60, (k + 1) * 60, dtype=float), np.zeros(60))
    assert s.n == 100 and len(s.t) == 100
    assert s.t[s.n - 1] == 299.0 and s.t[0] == 200.0 and np.all(np.diff(s.t[:s.n]) == 1.0)


def test_the_log_shows_alarms_and_warnings_in_two_colours_and_whole(qtbot):
    log = EventLog()
    qtbot.addWidget(log)
    long = "focus alarm: focus outside its tolerance: 0.9 against reference 1.19 (tolerance 1.01..1.37)" * 2
    log.add("alarm", long)
    log.add("alarm", "focus warning: focus drifting, still within tolerance: 1.16 against reference 1.19")
    warning, alarm = log.item(0), log.item(1)
    assert warning.foreground().color().name() != alarm.foreground().color().name()
    assert alarm.foreground().color().name() == EventLog.RED and warning.foreground().color().name() == EventLog.AMBER
    assert alarm.toolTip().endswith(long) and log.wordWrap()
    assert log.textElideMode() == QtCore.Qt.TextElideMode.ElideNone


def test_time_to_the_limit_reads_steady_beyond_the_horizon():
    from app.gui.drift_view import time_to_limit

    assert time_to_limit(None) == "steady"
    assert time_to_limit(1800.0) == "limit in 30 min"
    assert time_to_limit(5 * 3600.0) == "limit in 5.0 h"
