"""The drift dock: status tiles, the trend of the chosen metric with its tolerance band, and histograms.

It is given what to show (series, levels, tolerances, events) and emits the user's choices (a time range, a
metric); it never reads a database or a file. A tile click shows that metric's trend, sized to its box. Every
series is a bounded ring (the newest ``MAX_POINTS``), so a window left running for weeks stays the same size.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

LEVEL_COLOURS = {"ok": "#2e7d32", "warning": "#f9a825", "alarm": "#c62828", "warming": "#616161"}
MAX_POINTS = 20000  # per series: about 18 hours of batches at 30 frames/s (older history: the minute aggregates)
MAX_MARKS = 500  # alarm marks and event lines kept per chart
LABEL_ROWS = (0.95, 0.82, 0.69)  # where event labels go up the chart; a label with no free row is left out
LABEL_GAP_PX = 6
RANGES = {"Last hour": 3600.0, "Shift (8 h)": 8 * 3600.0, "Week": 7 * 86400.0, "All": None}


class _Series:
    """A time series in preallocated arrays, growing (doubling) up to ``cap`` points, then keeping the newest
    ``cap``; drawn with one PlotDataItem."""

    def __init__(self, cap: int = MAX_POINTS) -> None:
        self.cap = max(16, int(cap))
        self.t = np.empty(min(1024, self.cap))
        self.y = np.empty(min(1024, self.cap))
        self.n = 0

    def extend(self, t: Sequence[float], y: Sequence[float]) -> None:
        t, y = np.asarray(t, float)[-self.cap:], np.asarray(y, float)[-self.cap:]
        k = len(t)
        if self.n + k > len(self.t) and len(self.t) < self.cap:
            size = min(self.cap, max(2 * len(self.t), self.n + k))
            self.t = np.resize(self.t, size)
            self.y = np.resize(self.y, size)
        if self.n + k > len(self.t):  # full: the oldest go
            keep = len(self.t) - k
            self.t[:keep] = self.t[self.n - keep:self.n]
            self.y[:keep] = self.y[self.n - keep:self.n]
            self.n = keep
        self.t[self.n:self.n + k] = t
        self.y[self.n:self.n + k] = y
        self.n += k


class MetricPlot:
    def __init__(self, plot: pg.PlotItem, name: str) -> None:
        self.plot = plot
        plot.setTitle(name, size="9pt")
        plot.showGrid(x=True, y=True, alpha=0.2)
        plot.setMenuEnabled(False)
        self.band = pg.LinearRegionItem(orientation="horizontal", movable=False,
                                        brush=pg.mkBrush(46, 125, 50, 40), pen=pg.mkPen(None))
        self.band.setZValue(-10)
        self.band.setVisible(False)
        plot.addItem(self.band)
        self.ref = pg.InfiniteLine(angle=0, pen=pg.mkPen("#90caf9", style=QtCore.Qt.PenStyle.DashLine))
        self.ref.setVisible(False)
        plot.addItem(self.ref)
        self.curve = plot.plot(pen=pg.mkPen("#e0e0e0", width=1.5))
        self.curve.setDownsampling(auto=True, method="peak")
        self.curve.setClipToView(True)
        self.alarms = pg.ScatterPlotItem(size=8, pen=None)
        plot.addItem(self.alarms)
        self.series = _Series()
        self.alarm_t: deque[float] = deque(maxlen=MAX_MARKS)
        self.alarm_y: deque[float] = deque(maxlen=MAX_MARKS)
        self.alarm_brush: deque[QtGui.QBrush] = deque(maxlen=MAX_MARKS)
        self.events: deque[pg.InfiniteLine] = deque()

    def set_reference(self, ref: float, low: float, high: float) -> None:
        self.ref.setValue(ref)
        self.ref.setVisible(True)
        if np.isfinite(low) and np.isfinite(high):
            self.band.setRegion((low, high))
            self.band.setVisible(True)

    def redraw(self) -> None:
        s = self.series
        self.curve.setData(s.t[:s.n], s.y[:s.n])
        self.alarms.setData(list(self.alarm_t), list(self.alarm_y), brush=list(self.alarm_brush))

    def add_event(self, t: float, text: str) -> pg.InfiniteLine:
        line = pg.InfiniteLine(pos=t, angle=90, pen=pg.mkPen("#ce93d8", width=1), label=text,
                               labelOpts={"position": LABEL_ROWS[0], "color": "#ce93d8"})
        line.setToolTip(text)
        self.plot.addItem(line)
        self.events.append(line)
        if len(self.events) > MAX_MARKS:
            self.plot.removeItem(self.events.popleft())
        return line

    def place_labels(self) -> None:
        """Event labels in rows so that none prints over another; one with no room is left out (its line stays,
        its text is in the line's tooltip)."""
        (x0, x1), _ = self.plot.vb.viewRange()
        width = self.plot.vb.width()
        if not self.events or width <= 0 or x1 <= x0:
            return
        px = width / (x1 - x0)
        # Rows at least a label's height apart: on a short chart fewer of them fit.
        tall = max(ln.label.boundingRect().height() for ln in self.events) + 2
        step = max(LABEL_ROWS[0] - LABEL_ROWS[1], tall / max(self.plot.vb.height(), 1.0))
        rows = [r for r in (LABEL_ROWS[0] - i * step for i in range(len(LABEL_ROWS))) if r >= 0.1] or [LABEL_ROWS[0]]
        ends = [-np.inf] * len(rows)
        for line in sorted(self.events, key=lambda ln: ln.value()):
            label = line.label
            x = (line.value() - x0) * px
            w = label.boundingRect().width() + LABEL_GAP_PX
            row = next((i for i, end in enumerate(ends) if x - w / 2 >= end), None)
            if row is None or not (0 <= x <= width):
                label.setVisible(False)
                continue
            ends[row] = x + w / 2
            label.setPosition(rows[row])
            label.setVisible(True)


class DriftPanel(QtWidgets.QWidget):
    range_changed = QtCore.Signal(object)  # seconds, or None for all
    metric_selected = QtCore.Signal(str)

    def __init__(self, metrics: Sequence[str], parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("driftPanel")
        self.metrics = list(metrics)
        self.selected = self.metrics[0] if self.metrics else ""
        self._levels: dict[str, tuple[str, str, str]] = {}  # metric -> (level, tooltip, status line)
        # Status tiles.
        tiles = QtWidgets.QWidget()
        grid = QtWidgets.QGridLayout(tiles)
        grid.setSpacing(3)
        grid.setContentsMargins(0, 0, 0, 0)
        self.tiles: dict[str, QtWidgets.QPushButton] = {}
        for i, m in enumerate(self.metrics):
            t = QtWidgets.QPushButton(m)  # a touch target: a click (or tap) shows the metric's trend
            t.setObjectName(f"tile_{m}")
            t.setMinimumHeight(38)
            t.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
            t.setSizePolicy(QtWidgets.QSizePolicy.Policy.Expanding, QtWidgets.QSizePolicy.Policy.Preferred)
            t.clicked.connect(lambda _=False, m=m: self.select_metric(m))
            self.tiles[m] = t
            grid.addWidget(t, i // 4, i % 4)
        self.set_levels({m: ("ok", "") for m in self.metrics}, {})
        # Range.
        self.range = QtWidgets.QComboBox()
        self.range.setObjectName("driftRange")
        self.range.addItems(list(RANGES))
        self.range.setCurrentText("All")
        self.range.currentTextChanged.connect(self._range_chosen)
        self.summary = QtWidgets.QLabel("No reference active: statistics only, no drift alarms.")
        self.summary.setObjectName("driftSummary")
        self.summary.setWordWrap(True)
        top = QtWidgets.QHBoxLayout()
        top.addWidget(self.summary, 1)
        top.addWidget(QtWidgets.QLabel("Range:"))
        top.addWidget(self.range)
        # Trends: one chart per metric, x axes linked; the chosen metric's chart fills the box.
        self.trends = QtWidgets.QStackedWidget()
        self.trends.setObjectName("driftTrends")
        self.trends.setMinimumHeight(110)
        self.plots: dict[str, MetricPlot] = {}
        self._pages: dict[str, pg.PlotWidget] = {}
        first = None
        for m in self.metrics:
            w = pg.PlotWidget(axisItems={"bottom": pg.DateAxisItem()})
            w.setObjectName(f"trend_{m}")
            p = w.getPlotItem()
            if first is None:
                first = p
            else:
                p.setXLink(first)
            self.plots[m] = MetricPlot(p, m)
            p.vb.sigRangeChanged.connect(lambda *_, mp=self.plots[m]: mp.place_labels())
            p.vb.sigResized.connect(lambda *_, mp=self.plots[m]: mp.place_labels())
            self._pages[m] = w
            self.trends.addWidget(w)
        # Current window against the reference: luminance histogram.
        self.hist = pg.PlotWidget(title="Luminance histogram: window (white) vs reference (blue)")
        self.hist.setObjectName("driftHistogram")
        self.hist.setMinimumHeight(80)  # its axis labels stay apart on a 1024 x 768 screen
        self.hist.setMaximumHeight(150)
        self.hist_cur = self.hist.plot(pen=pg.mkPen("#e0e0e0"))
        self.hist_ref = self.hist.plot(pen=pg.mkPen("#90caf9"))
        lay = QtWidgets.QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(tiles)
        lay.addWidget(self.trends, 1)
        lay.addWidget(self.hist)
        self._latest = 0.0
        if self.selected:
            self.select_metric(self.selected)

    @property
    def _events(self) -> list[pg.InfiniteLine]:
        """Every event line on every chart."""
        return [line for p in self.plots.values() for line in p.events]

    # ------------------------------------------------------------------ choosing a metric

    def select_metric(self, metric: str) -> None:
        """Show ``metric``'s trend and mark its tile as the chosen one."""
        if metric not in self.plots:
            return
        self.selected = metric
        self.plots[metric].redraw()
        self.trends.setCurrentWidget(self._pages[metric])
        self._restyle()
        self.plots[metric].place_labels()
        self.metric_selected.emit(metric)

    # ------------------------------------------------------------------ feeding it

    def set_references(self, refs: dict[str, tuple[float, float, float]]) -> None:
        for m, (ref, low, high) in refs.items():
            if m in self.plots:
                self.plots[m].set_reference(ref, low, high)

    def append(self, metric: str, t: Sequence[float], y: Sequence[float]) -> None:
        if metric in self.plots and len(t):
            self.plots[metric].series.extend(t, y)
            self._latest = max(self._latest, float(t[-1]))

    def mark_alarm(self, metric: str, t: float, y: float, level: str) -> None:
        if metric in self.plots:
            p = self.plots[metric]
            p.alarm_t.append(t)
            p.alarm_y.append(y)
            p.alarm_brush.append(pg.mkBrush(LEVEL_COLOURS.get(level, "#9e9e9e")))

    def add_event(self, t: float, text: str) -> None:
        for p in self.plots.values():
            p.add_event(t, text)
        if self.selected in self.plots:
            self.plots[self.selected].place_labels()

    def set_levels(self, levels: dict[str, tuple[str, str]], etas: dict[str, str]) -> None:
        """``levels``: metric -> (level, tooltip), level "warming" while the monitor warms up; ``etas``: metric ->
        a status line under its name (time to tolerance, "steady")."""
        for m, (level, tip) in levels.items():
            if m in self.tiles:
                self._levels[m] = (level, tip, etas.get(m, ""))
        self._restyle()

    def _restyle(self) -> None:
        for m, tile in self.tiles.items():
            level, tip, line = self._levels.get(m, ("ok", "", ""))
            if level == "warming":
                line = line or "warming up"
            tile.setText(f"{m}\n{line}" if line else m)
            tile.setToolTip(tip)
            tile.setProperty("level", "ok" if level == "warming" else level)
            colour = LEVEL_COLOURS.get(level, "#616161")
            chosen = "border: 3px solid #e0e0e0;" if m == self.selected else "border: 3px solid transparent;"
            tile.setStyleSheet(f"background:{colour}; color:white; border-radius:4px; padding:2px; {chosen}"
                               f" font-weight:{'bold' if level in ('warning', 'alarm') else 'normal'}")

    def set_histograms(self, current: np.ndarray, reference: np.ndarray) -> None:
        x = np.arange(257)
        if current.sum():
            self.hist_cur.setData(x, current, stepMode="center")
        if reference.sum():
            self.hist_ref.setData(x, reference, stepMode="center")

    def redraw(self) -> None:
        """Draw the chosen metric's chart (the others are drawn when chosen)."""
        if self.selected in self.plots:
            self.plots[self.selected].redraw()
        self._apply_range()
        if self.selected in self.plots:
            self.plots[self.selected].place_labels()

    # ------------------------------------------------------------------ range

    def _range_chosen(self, text: str) -> None:
        self._apply_range()
        self.range_changed.emit(RANGES[text])

    def _apply_range(self) -> None:
        if not self.plots:
            return
        span = RANGES[self.range.currentText()]
        first = next(iter(self.plots.values())).plot
        if span is None or not self._latest:
            first.enableAutoRange(axis="x")
        else:
            first.setXRange(self._latest - span, self._latest, padding=0)
        for p in self.plots.values():
            p.plot.enableAutoRange(axis="y")
