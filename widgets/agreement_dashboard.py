"""The engineers' agreement dashboard: the pairwise kappa matrix, each operator's agreement over time, the
figures per band and class, and the most disputed samples.

It is given a report (the dict of :func:`engine.datasets.agreement.report.report`) and, on request, a picture
of a disputed sample; it emits what the engineer asks for (refresh, a CSV to load, a disputed sample to look at) and never
reads a database or a file.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

CURVE_COLOURS = ("#4fc3f7", "#ffb74d", "#81c784", "#e57373", "#ba68c8", "#fff176", "#a1887f", "#90a4ae")


def _fmt(v: float | None, pct: bool = False) -> str:
    if v is None:
        return "n/a"
    return f"{v:.0%}" if pct else f"{v:.2f}"


def kappa_colour(k: float | None) -> QtGui.QColor:
    """Red below 0.4, amber to 0.6, green from 0.8 (Landis and Koch's bands, roughly); grey when undefined."""
    if k is None:
        return QtGui.QColor("#616161")
    x = float(np.clip((k - 0.2) / 0.7, 0.0, 1.0))
    red, green = QtGui.QColor("#c62828"), QtGui.QColor("#2e7d32")
    return QtGui.QColor(int(red.red() + x * (green.red() - red.red())),
                        int(red.green() + x * (green.green() - red.green())),
                        int(red.blue() + x * (green.blue() - red.blue())))


def _item(text: str, tip: str = "", align: QtCore.Qt.AlignmentFlag = QtCore.Qt.AlignmentFlag.AlignCenter
          ) -> QtWidgets.QTableWidgetItem:
    it = QtWidgets.QTableWidgetItem(text)
    it.setTextAlignment(align | QtCore.Qt.AlignmentFlag.AlignVCenter)
    if tip:
        it.setToolTip(tip)
    it.setFlags(it.flags() & ~QtCore.Qt.ItemFlag.ItemIsEditable)
    return it


class WholeNumberAxis(pg.AxisItem):
    """An axis of counted things (items reviewed): ticks on whole numbers only."""

    def tickValues(self, minVal: float, maxVal: float, size: float) -> list[tuple[float, list[float]]]:
        lo, hi = int(np.ceil(minVal)), int(np.floor(maxVal))
        if hi < lo:
            return []
        most = max(2.0, size / 60)  # at most a tick every 60 px
        step = next(m * 10 ** e for e in range(12) for m in (1, 2, 5) if (hi - lo) / (m * 10 ** e) <= most)
        first = lo + (-lo) % step
        return [(float(step), [float(v) for v in range(first, hi + 1, step)])]

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:
        return [str(round(v)) for v in values]


def needs_more(rep: dict[str, Any]) -> str | None:
    """What the report needs before agreement means anything, in a sentence; None when it has enough."""
    raters = len(rep.get("raters") or [])
    shared = int((rep.get("overall") or {}).get("items") or 0)
    if raters >= 2 and shared > 0:
        return None
    return (f"Agreement needs at least two reviewers on the same items: {raters} reviewer"
            f"{'' if raters == 1 else 's'}, {shared} shared item{'' if shared == 1 else 's'} so far.")


class AgreementDashboard(QtWidgets.QWidget):
    refresh_requested = QtCore.Signal()
    csv_requested = QtCore.Signal()
    disputed_selected = QtCore.Signal(dict)  # the disputed entry of the report

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("agreementDashboard")
        self.report: dict[str, Any] | None = None
        self.headline = QtWidgets.QLabel("Annotator agreement")
        self.headline.setObjectName("agreementHeadline")
        self.headline.setStyleSheet("font-size: 15px; font-weight: bold;")
        self.summary = QtWidgets.QLabel("No report yet.")  # its own full-width row: it wraps as a paragraph
        self.summary.setObjectName("agreementSummary")
        self.summary.setWordWrap(True)
        self.summary.setStyleSheet("font-size: 14px;")
        self.needs = QtWidgets.QLabel("")
        self.needs.setObjectName("agreementNeeds")
        self.needs.setWordWrap(True)
        self.needs.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.needs.setStyleSheet("font-size: 16px; padding: 24px;")
        self.needs.setVisible(False)
        self.warnings = QtWidgets.QLabel("")
        self.warnings.setObjectName("agreementWarnings")
        self.warnings.setWordWrap(True)
        self.warnings.setStyleSheet("color: #ef5350; font-weight: bold;")
        self.act_refresh = self._action("Ctrl+R", self.refresh_requested)
        self.act_csv = self._action("Ctrl+L", self.csv_requested)
        self.refresh_button = QtWidgets.QPushButton("Refresh  (Ctrl+R)")
        self.refresh_button.clicked.connect(lambda *_: self.act_refresh.trigger())
        self.csv_button = QtWidgets.QPushButton("Check a CSV…  (Ctrl+L)")
        self.csv_button.setToolTip("Compute the same figures from item,rater,label rows")
        self.csv_button.clicked.connect(lambda *_: self.act_csv.trigger())
        top = QtWidgets.QHBoxLayout()
        top.addWidget(self.headline, 1)
        top.addWidget(self.refresh_button)
        top.addWidget(self.csv_button)

        self.matrix = QtWidgets.QTableWidget()
        self.matrix.setObjectName("pairwiseMatrix")
        self.operators = QtWidgets.QTableWidget()
        self.operators.setObjectName("operatorTable")
        self.trend = pg.PlotWidget(axisItems={"bottom": WholeNumberAxis("bottom")})
        self.trend.setObjectName("agreementTrend")
        self.trend.setLabel("left", "agreement with the others")
        self.trend.setLabel("bottom", "items reviewed")
        self.trend.setYRange(0, 1.02)
        self.trend.showGrid(x=True, y=True, alpha=0.2)
        self.trend.setMenuEnabled(False)
        self.legend = self.trend.addLegend(offset=(-10, 10))
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.breakdown = QtWidgets.QTableWidget()
        self.breakdown.setObjectName("bandClassTable")
        self.disputed = QtWidgets.QTableWidget()
        self.disputed.setObjectName("disputedTable")
        self.disputed.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.disputed.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.disputed.itemSelectionChanged.connect(self._disputed_changed)
        self.preview = QtWidgets.QLabel("Select a disputed sample to see it.")
        self.preview.setObjectName("disputedPreview")
        self.preview.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.preview.setMinimumSize(260, 200)
        for t in (self.matrix, self.operators, self.breakdown, self.disputed):
            t.verticalHeader().setDefaultSectionSize(26)

        pairs = QtWidgets.QWidget()
        pl = QtWidgets.QVBoxLayout(pairs)
        pl.addWidget(QtWidgets.QLabel("Cohen's kappa of each pair on the items both rated (hover for counts)"))
        pl.addWidget(self.matrix, 1)
        pl.addWidget(QtWidgets.QLabel("By confidence band and by class"))
        pl.addWidget(self.breakdown, 1)
        ops = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        ops.addWidget(self.operators)
        ops.addWidget(self.trend)
        disp = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        disp.addWidget(self.disputed)
        disp.addWidget(self.preview)
        disp.setStretchFactor(0, 3)
        disp.setStretchFactor(1, 2)
        self.tabs = QtWidgets.QTabWidget()
        self.tabs.addTab(pairs, "Pairs && bands")
        self.tabs.addTab(ops, "Operators over time")
        self.tabs.addTab(disp, "Most disputed")
        lay = QtWidgets.QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.summary)
        lay.addWidget(self.warnings)
        lay.addWidget(self.needs, 1)
        lay.addWidget(self.tabs, 1)

    def _action(self, shortcut: str, signal: QtCore.SignalInstance) -> QtGui.QAction:
        a = QtGui.QAction(self)
        a.setShortcut(QtGui.QKeySequence(shortcut))
        a.triggered.connect(lambda *_: signal.emit())
        self.addAction(a)
        return a

    # ------------------------------------------------------------------ showing a report

    def show_busy(self, text: str = "Computing…") -> None:
        self.summary.setText(text)
        self.refresh_button.setEnabled(False)
        self.act_refresh.setEnabled(False)

    def show_error(self, text: str) -> None:
        self.summary.setText(f"<span style='color:#ef5350'>{text}</span>")
        self.refresh_button.setEnabled(True)
        self.act_refresh.setEnabled(True)

    def set_report(self, rep: dict[str, Any]) -> None:
        self.report = rep
        self.refresh_button.setEnabled(True)
        self.act_refresh.setEnabled(True)
        o = rep["overall"]
        fleiss = (f"Fleiss' κ {_fmt(o['fleiss'])} ({o['fleiss_items']} items × {o['fleiss_raters']})"
                  if o["fleiss_items"] else "Fleiss' κ n/a (fewer than 3 ratings per item)")
        source = f"; {rep['source']}" if rep.get("source") else ""
        missing = needs_more(rep)
        self.needs.setText(missing or "")
        self.needs.setVisible(missing is not None)
        self.tabs.setVisible(missing is None)
        if missing is not None:
            self.headline.setText("Annotator agreement: not enough data yet")
            self.summary.setText(f"{rep['ratings']} ratings{source}.")
            self.warnings.setText("\n".join(f"⚠ {w}" for w in rep["warnings"]))
            self.warnings.setVisible(bool(rep["warnings"]))
            self._fill_matrix(rep)
            self._fill_breakdown(rep)
            self._fill_operators(rep)
            self._fill_trend(rep)
            self._fill_disputed(rep)
            return
        self.headline.setText(f"Annotator agreement: α {_fmt(o['alpha'])} over {o['items']} shared items")
        self.summary.setText(
            f"<b>{o['items']}</b> items rated by two or more ({rep['ratings']} ratings, {len(rep['raters'])} "
            f"operators{source}) — Krippendorff's α <b>{_fmt(o['alpha'])}</b>, mean Cohen's κ "
            f"<b>{_fmt(o['mean_cohen'])}</b>, {fleiss}, agreeing pairs {_fmt(o['percent_agreement'], True)}, "
            f"intra-rater {_fmt(rep['intra']['agreement'], True)} of {rep['intra']['n']}")
        self.warnings.setText("\n".join(f"⚠ {w}" for w in rep["warnings"]))
        self.warnings.setVisible(bool(rep["warnings"]))
        self._fill_matrix(rep)
        self._fill_breakdown(rep)
        self._fill_operators(rep)
        self._fill_trend(rep)
        self._fill_disputed(rep)

    def _fill_matrix(self, rep: dict[str, Any]) -> None:
        raters = rep["raters"]
        pair = {(p["a"], p["b"]): p for p in rep["pairwise"]}
        m = self.matrix
        m.clear()
        m.setRowCount(len(raters))
        m.setColumnCount(len(raters))
        m.setHorizontalHeaderLabels(raters)
        m.setVerticalHeaderLabels(raters)
        for i, a in enumerate(raters):
            for j, b in enumerate(raters):
                p = pair.get((a, b)) or pair.get((b, a))
                if a == b or p is None:
                    it = _item("—")
                else:
                    it = _item(_fmt(p["kappa"]), f"{a} and {b}: {p['n']} items in common, "
                                                 f"{_fmt(p['agreement'], True)} agreeing")
                    it.setBackground(kappa_colour(p["kappa"]))
                    it.setForeground(QtGui.QColor("white"))
                m.setItem(i, j, it)
        m.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.Stretch)

    def _fill_breakdown(self, rep: dict[str, Any]) -> None:
        rows = [(f"band: {b}", v["items"], v["alpha"], v["fleiss"], v["percent_agreement"])
                for b, v in rep["per_band"].items()]
        rows += [(f"class: {c}", v["items"], v["alpha"], None, None) for c, v in rep["per_class"].items()]
        t = self.breakdown
        t.clear()
        t.setColumnCount(5)
        t.setHorizontalHeaderLabels(["", "items", "α", "Fleiss' κ", "agreeing pairs"])
        t.setRowCount(len(rows))
        for r, (name, n, alpha, fleiss, pa) in enumerate(rows):
            t.setItem(r, 0, _item(name, align=QtCore.Qt.AlignmentFlag.AlignLeft))
            t.setItem(r, 1, _item(str(n)))
            a = _item(_fmt(alpha))
            a.setBackground(kappa_colour(alpha))
            a.setForeground(QtGui.QColor("white"))
            t.setItem(r, 2, a)
            t.setItem(r, 3, _item(_fmt(fleiss)))
            t.setItem(r, 4, _item(_fmt(pa, True)))
        t.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.Stretch)

    def _fill_operators(self, rep: dict[str, Any]) -> None:
        cols = ["operator", "items", "vs others", "κ vs others", "vs gold", "κ vs gold", "intra", "calibration",
                "trend"]
        t = self.operators
        t.clear()
        t.setColumnCount(len(cols))
        t.setHorizontalHeaderLabels(cols)
        t.setRowCount(len(rep["operators"]))
        for r, (name, op) in enumerate(rep["operators"].items()):
            d = op["drift"]
            cal = op.get("calibration") or {}
            trend = ("drifting" if d["flagged"] else "steady") if d["baseline"] is not None else "too few items"
            tip = (f"first {rep['settings']['baseline_items']} items {_fmt(d['baseline'], True)}, latest "
                   f"{rep['settings']['trend_window']} {_fmt(d['recent'], True)}" if d["baseline"] is not None else "")
            cells = [name, str(op["items"]), _fmt(op["vs_consensus"]["agreement"], True),
                     _fmt(op["vs_consensus"]["kappa"]), _fmt(op["vs_gold"]["agreement"], True),
                     _fmt(op["vs_gold"]["kappa"]), _fmt(op["intra"]["agreement"], True),
                     _fmt(cal.get("agreement"), True), trend]
            for c, text in enumerate(cells):
                it = _item(text, tip if c == 8 else "")
                if c == 8 and d["flagged"]:
                    it.setBackground(QtGui.QColor("#c62828"))
                    it.setForeground(QtGui.QColor("white"))
                t.setItem(r, c, it)
        t.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.Stretch)

    def _fill_trend(self, rep: dict[str, Any]) -> None:
        for c in self.curves.values():
            self.trend.removeItem(c)
        self.legend.clear()
        self.curves = {}
        for k, (name, op) in enumerate(rep["operators"].items()):
            pts = op["trend"]
            if not pts:
                continue
            colour = CURVE_COLOURS[k % len(CURVE_COLOURS)]
            style = QtCore.Qt.PenStyle.DashLine if op["drift"]["flagged"] else QtCore.Qt.PenStyle.SolidLine
            curve = self.trend.plot([p["index"] for p in pts], [p["agreement"] for p in pts],
                                    pen=pg.mkPen(colour, width=2, style=style), symbol="o", symbolSize=6,
                                    symbolBrush=colour, name=name + (" (drifting)" if op["drift"]["flagged"] else ""))
            self.curves[name] = curve
        last = max((p["index"] for op in rep["operators"].values() for p in op["trend"]), default=1)
        self.trend.setXRange(0, max(1, last), padding=0.02)

    def _fill_disputed(self, rep: dict[str, Any]) -> None:
        cols = ["sample", "score", "band", "labels", "gold", "disagreement"]
        t = self.disputed
        with QtCore.QSignalBlocker(t):
            t.clear()
            t.setColumnCount(len(cols))
            t.setHorizontalHeaderLabels(cols)
            t.setRowCount(len(rep["disputed"]))
            for r, d in enumerate(rep["disputed"]):
                where = (f"frame {d['sequence']} #{d['detection'] + 1}" if "sequence" in d else str(d["item"]))
                labels = ", ".join(f"{k}: {v}" for k, v in d["labels"].items())
                cells = [where, _fmt(d.get("score")), d.get("band") or "", labels, d.get("gold") or "",
                         _fmt(d["disagreement"], True)]
                for c, text in enumerate(cells):
                    t.setItem(r, c, _item(text, d.get("source", "") if c == 0 else "",
                                          QtCore.Qt.AlignmentFlag.AlignLeft if c == 3
                                          else QtCore.Qt.AlignmentFlag.AlignCenter))
            t.resizeColumnsToContents()
            t.horizontalHeader().setStretchLastSection(True)
        self.preview.setPixmap(QtGui.QPixmap())
        self.preview.setText("Select a disputed sample to see it." if rep["disputed"] else "Nothing disputed.")

    def _disputed_changed(self) -> None:
        rows = self.disputed.selectionModel().selectedRows()
        if rows and self.report is not None:
            self.disputed_selected.emit(self.report["disputed"][rows[0].row()])

    def show_preview(self, rgb: np.ndarray | None, box: tuple[float, float, float, float] | None = None,
                     caption: str = "") -> None:
        """A disputed sample's picture (RGB uint8), with its detection's box drawn; None: not available."""
        if rgb is None:
            self.preview.setPixmap(QtGui.QPixmap())
            self.preview.setText(caption or "The picture is no longer stored.")
            return
        self.preview.setPixmap(_pixmap(rgb, box, self.preview.size()))
        self.preview.setToolTip(caption)


def _pixmap(rgb: np.ndarray, box: tuple[float, float, float, float] | None, size: QtCore.QSize,
            colour: str = "#ffeb3b") -> QtGui.QPixmap:
    """An RGB array as a pixmap scaled into ``size``, with ``box`` (image pixels) outlined."""
    rgb = np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    img = QtGui.QImage(rgb.data, w, h, 3 * w, QtGui.QImage.Format.Format_RGB888).copy()
    pm = QtGui.QPixmap.fromImage(img).scaled(size, QtCore.Qt.AspectRatioMode.KeepAspectRatio,
                                             QtCore.Qt.TransformationMode.SmoothTransformation)
    if box is not None:
        s = pm.width() / w
        p = QtGui.QPainter(pm)
        p.setPen(QtGui.QPen(QtGui.QColor(colour), 2))
        x0, y0, x1, y1 = box
        p.drawRect(QtCore.QRectF(x0 * s, y0 * s, (x1 - x0) * s, (y1 - y0) * s))
        p.end()
    return pm
