"""The drift dock: status tiles, one trend per metric with its tolerance band, and histograms.

It is given what to show (series, levels, tolerances, events) and emits nothing but the
user's choice of time range; it never reads a database or a file.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

LEVEL_COLOURS = {"ok": "#2e7d32", "warning": "#f9a825", "alarm": "#c62828"}
RANGES = {"Last hour": 3600.0, "Shift (8 h)": 8 * 3600.0, "Week": 7 * 86400.0, "All": None}


class _Series:
    """A growing time series in preallocated arrays (doubling), drawn with one PlotDataItem."""

    def __init__(self) -> None:
        self.t = np.empty(1024)
        self.y = np.empty(1024)
        self.n = 0

    def extend(self, t: Sequence[float], y: Sequence[float]) -> None:
        k = len(t)
        if self.n + k > len(self.t):
            size = max(2 * len(self.t), self.n + k)
            self.t = np.resize(self.t, size)
            self.y = np.resize(self.y, size)
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
        self.alarm_t: list[float] = []
        self.alarm_y: list[float] = []
        self.alarm_brush: list[QtGui.QBrush] = []

    def set_reference(self, ref: float, low: float, high: float) -> None:
        self.ref.setValue(ref)
        self.ref.setVisible(True)
        if np.isfinite(low) and np.isfinite(high):
            self.band.setRegion((low, high))
            self.band.setVisible(True)

    def redraw(self) -> None:
        s = self.series
        self.curve.setData(s.t[:s.n], s.y[:s.n])
        self.alarms.setData(self.alarm_t, self.alarm_y, brush=self.alarm_brush)


class DriftPanel(QtWidgets.QWidget):
    range_changed = QtCore.Signal(object)  # seconds, or None for all

    def __init__(self, metrics: Sequence[str], parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("driftPanel")
        self.metrics = list(metrics)
        # Status tiles.
        tiles = QtWidgets.QWidget()
        grid = QtWidgets.QGridLayout(tiles)
        grid.setSpacing(3)
        grid.setContentsMargins(0, 0, 0, 0)
        self.tiles: dict[str, QtWidgets.QLabel] = {}
        for i, m in enumerate(self.metrics):
            t = QtWidgets.QLabel(m)
            t.setObjectName(f"tile_{m}")
            t.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
            t.setMinimumHeight(34)
            t.setWordWrap(True)
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
        # Trends, one plot per metric, x axes linked, in a scroll area.
        self.trends = pg.GraphicsLayoutWidget()
        self.trends.setObjectName("driftTrends")
        self.plots: dict[str, MetricPlot] = {}
        first = None
        for i, m in enumerate(self.metrics):
            p = self.trends.addPlot(row=i, col=0, axisItems={"bottom": pg.DateAxisItem()})
            p.setMinimumHeight(110)
            if first is None:
                first = p
            else:
                p.setXLink(first)
            self.plots[m] = MetricPlot(p, m)
        self.trends.setMinimumHeight(115 * len(self.metrics))
        scroll = QtWidgets.QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.trends)
        # Current window against the reference: luminance histogram.
        self.hist = pg.PlotWidget(title="Luminance histogram: window (white) vs reference (blue)")
        self.hist.setObjectName("driftHistogram")
        self.hist.setMaximumHeight(150)
        self.hist_cur = self.hist.plot(pen=pg.mkPen("#e0e0e0"))
        self.hist_ref = self.hist.plot(pen=pg.mkPen("#90caf9"))
        lay = QtWidgets.QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(tiles)
        lay.addWidget(scroll, 1)
        lay.addWidget(self.hist)
        self._events: list[pg.InfiniteLine] = []
        self._latest = 0.0

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
            line = pg.InfiniteLine(pos=t, angle=90, pen=pg.mkPen("#ce93d8", width=1),
                                   label=text if p is next(iter(self.plots.values())) else None,
                                   labelOpts={"position": 0.9, "color": "#ce93d8"})
            p.plot.addItem(line)
            self._events.append(line)

    def set_levels(self, levels: dict[str, tuple[str, str]], etas: dict[str, str]) -> None:
        """``levels``: metric -> (level, tooltip); ``etas``: metric -> time to tolerance, as text."""
        for m, (level, tip) in levels.items():
            tile = self.tiles.get(m)
            if tile is None:
                continue
            colour = LEVEL_COLOURS.get(level, "#616161")
            eta = etas.get(m, "")
            tile.setText(f"{m}\n{eta}" if eta else m)
            tile.setToolTip(tip)
            tile.setProperty("level", level)
            tile.setStyleSheet(f"background:{colour}; color:white; border-radius:4px; padding:2px;"
                               f" font-weight:{'bold' if level != 'ok' else 'normal'}")

    def set_histograms(self, current: np.ndarray, reference: np.ndarray) -> None:
        x = np.arange(257)
        if current.sum():
            self.hist_cur.setData(x, current, stepMode="center")
        if reference.sum():
            self.hist_ref.setData(x, reference, stepMode="center")

    def redraw(self) -> None:
        for p in self.plots.values():
            p.redraw()
        self._apply_range()

    # ------------------------------------------------------------------ range

    def _range_chosen(self, text: str) -> None:
        self._apply_range()
        self.range_changed.emit(RANGES[text])

    def _apply_range(self) -> None:
        span = RANGES[self.range.currentText()]
        first = next(iter(self.plots.values())).plot
        if span is None or not self._latest:
            first.enableAutoRange(axis="x")
        else:
            first.setXRange(self._latest - span, self._latest, padding=0)
        for p in self.plots.values():
            p.plot.enableAutoRange(axis="y")
