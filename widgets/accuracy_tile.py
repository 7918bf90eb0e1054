"""The field-accuracy tile: precision and recall from the random review sample with their 95 % intervals, the
label-free estimate, a small trend, the retrain suggestion, and the shadow model's agreement with who was right.

A widget only: it draws what it is given (:meth:`show_figures`, :meth:`show_live`, :meth:`show_shadow`) and asks
for the shadow model to start or stop through its signals; it reads no file and no database.
"""

from __future__ import annotations

from typing import Any

import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets


def _ci(fig: dict[str, Any] | None) -> str:
    if not fig or not fig.get("n"):
        return "–"
    return f"{fig['value']:.2f}  [{fig['low']:.2f}–{fig['high']:.2f}]  n={fig['n']}"


class AccuracyTile(QtWidgets.QWidget):
    start_shadow = QtCore.Signal()
    stop_shadow = QtCore.Signal()

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QtWidgets.QVBoxLayout(self)
        form = QtWidgets.QFormLayout()
        self.precision = QtWidgets.QLabel("–")
        self.recall = QtWidgets.QLabel("–")
        self.estimate = QtWidgets.QLabel("–")
        self.estimate.setToolTip("Expected precision of the boxes shown, from the model's calibrated scores over "
                                 "the recent frames; needs no operator")
        form.addRow("Precision (sample)", self.precision)
        form.addRow("Recall (sample)", self.recall)
        self.expected_recall = QtWidgets.QLabel("–")
        self.expected_recall.setToolTip("Expected recall and F1: the calibrated scores of the boxes shown against "
                                        "those of the candidates below the threshold and the near-threshold peaks "
                                        "beyond the reference line's rate (a conservative count of misses)")
        form.addRow("Label-free estimate", self.estimate)
        form.addRow("Expected recall / F1", self.expected_recall)
        lay.addLayout(form)
        self.classes = QtWidgets.QLabel("")
        self.classes.setWordWrap(True)
        lay.addWidget(self.classes)
        self.plot = pg.PlotWidget()
        self.plot.setMinimumHeight(110)
        self.plot.setYRange(0, 1.02)
        self.plot.showGrid(y=True, alpha=0.3)
        self.plot.getAxis("bottom").setStyle(showValues=False)
        self.estimate_curve = self.plot.plot([], [], pen=pg.mkPen("#4fa3e0", width=2), name="estimate")
        self.f1_curve = self.plot.plot([], [], pen=pg.mkPen("#c678dd", width=2), name="expected F1")
        self.sample_curve = self.plot.plot([], [], pen=None, symbol="o", symbolSize=6, symbolBrush="#5cb85c")
        lay.addWidget(self.plot)
        self.suggestion = QtWidgets.QLabel("")
        self.suggestion.setWordWrap(True)
        self.suggestion.setStyleSheet("color: #e8a33d; font-weight: bold")
        self.suggestion.hide()
        lay.addWidget(self.suggestion)
        box = QtWidgets.QGroupBox("Shadow model")
        sl = QtWidgets.QVBoxLayout(box)
        self.shadow_model = QtWidgets.QLabel("none running")
        self.shadow_model.setWordWrap(True)
        self.shadow_figures = QtWidgets.QLabel("")
        self.shadow_figures.setWordWrap(True)
        buttons = QtWidgets.QHBoxLayout()
        self.start_button = QtWidgets.QPushButton("Start shadow…")
        self.start_button.setToolTip("Run a challenger model on a share of the live frames, beside the running one")
        self.stop_button = QtWidgets.QPushButton("Stop shadow")
        self.stop_button.setEnabled(False)
        self.start_button.clicked.connect(self.start_shadow.emit)
        self.stop_button.clicked.connect(self.stop_shadow.emit)
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.stop_button)
        sl.addWidget(self.shadow_model)
        sl.addWidget(self.shadow_figures)
        sl.addLayout(buttons)
        lay.addWidget(box)
        lay.addStretch(1)

    def show_figures(self, out: dict[str, Any]) -> None:
        """The stored figures (``accuracy --json``'s object)."""
        self.precision.setText(_ci(out.get("precision")))
        self.recall.setText(_ci(out.get("recall")))
        self.classes.setText("\n".join(f"{c}: precision {_ci(f['precision'])}, recall {_ci(f['recall'])}"
                                       for c, f in (out.get("classes") or {}).items()))
        ep = out.get("expected_precision") or {}
        trend = ep.get("trend") or []
        self.estimate_curve.setData([r["minute"] for r in trend], [r["value"] for r in trend])
        f1 = (out.get("expected_f1") or {}).get("trend") or []
        self.f1_curve.setData([r["minute"] for r in f1], [r["value"] for r in f1])
        pts = [(r["hour"] + 1800, r["precision"]["value"]) for r in out.get("trend") or []
               if r["precision"]["value"] is not None]
        self.sample_curve.setData([t for t, _ in pts], [v for _, v in pts])
        self.show_suggestion(out.get("suggestion"))

    def show_live(self, estimate: float | None, note: str = "", recall: float | None = None,
                  f1: float | None = None) -> None:
        self.estimate.setText(f"{estimate:.3f}" if estimate is not None else (note or "–"))
        self.expected_recall.setText("–" if recall is None else
                                     f"{recall:.3f} / {'–' if f1 is None else f'{f1:.3f}'}")

    def show_suggestion(self, text: str | None) -> None:
        self.suggestion.setText(text or "")
        self.suggestion.setVisible(bool(text))

    def show_shadow(self, snap: dict[str, Any] | None) -> None:
        running = snap is not None and snap.get("running", True)
        self.start_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        if snap is None:
            self.shadow_model.setText("none running")
            return
        self.shadow_model.setText(f"{snap['model']} on {snap['share']:.0%} of frames"
                                  + ("" if running else " (stopped)"))
        agree = snap.get("agreement")
        j = snap.get("judged") or {}
        self.shadow_figures.setText(
            f"shadowed {snap['shadowed']}, skipped {snap['skipped']}; agreement "
            f"{'–' if agree is None else f'{agree:.1%}'}\n"
            f"disagreed {snap['disagreed']}: only running model {snap['only_champion']}, only challenger "
            f"{snap['only_challenger']}, other class {snap['different_class']}\n"
            f"decided: running model right {j.get('champion', 0)}, challenger right {j.get('challenger', 0)}, "
            f"both {j.get('both', 0)}, neither {j.get('neither', 0)}")
