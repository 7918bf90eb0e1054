"""Drift at a glance: one light per metric (green, amber, red) in a strip; a tap opens the details."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6 import QtCore, QtGui, QtWidgets

LIGHT_COLOURS = {"ok": "#43a047", "warning": "#ffb300", "alarm": "#e53935", "": "#5f6368"}
LIGHT_SIZE = 18
STRIP_HEIGHT = 48  # a finger's tap


class DriftStrip(QtWidgets.QFrame):
    """``open_detail`` when tapped or clicked anywhere (or Enter while it has the focus)."""

    open_detail = QtCore.Signal()

    def __init__(self, metrics: Sequence[str], parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("driftStrip")
        self.setMinimumHeight(STRIP_HEIGHT)
        self.setCursor(QtCore.Qt.CursorShape.PointingHandCursor)
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.TabFocus)
        self.setToolTip("Drift of the image statistics against the reference: tap for the details")
        self.setStyleSheet("QFrame#driftStrip { background:#2b2c2f; border-radius:4px; }")
        lay = QtWidgets.QHBoxLayout(self)
        lay.setContentsMargins(8, 2, 8, 2)
        lay.setSpacing(3)
        title = QtWidgets.QLabel("Drift")
        title.setStyleSheet("color:#e8eaed; font-weight:bold;")
        lay.addWidget(title)
        self.levels: dict[str, str] = {m: "" for m in metrics}
        self.lights: dict[str, QtWidgets.QLabel] = {}
        for m in metrics:
            light = QtWidgets.QLabel()
            light.setObjectName(f"light_{m}")
            light.setFixedSize(LIGHT_SIZE, LIGHT_SIZE)
            light.setToolTip(f"{m}: no batch yet")
            self.lights[m] = light
            lay.addWidget(light)
            self._paint(m, "")
        self.summary = QtWidgets.QLabel("waiting for the first batch")
        self.summary.setObjectName("driftSummary")
        self.summary.setStyleSheet("color:#e8eaed;")
        lay.addSpacing(8)
        lay.addWidget(self.summary, 1)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Fixed)

    def _paint(self, metric: str, level: str) -> None:
        colour = LIGHT_COLOURS.get(level, LIGHT_COLOURS[""])
        self.lights[metric].setStyleSheet(f"background:{colour}; border-radius:{LIGHT_SIZE // 2}px;")

    def set_levels(self, levels: dict[str, tuple[str, str]]) -> None:
        """``{metric: (level, tooltip)}`` with level ``ok``, ``warning`` or ``alarm``; other metrics keep theirs."""
        for m, (level, tip) in levels.items():
            if m not in self.lights:
                continue
            if self.levels[m] != level:
                self.levels[m] = level
                self._paint(m, level)
            self.lights[m].setToolTip(tip)
        red = [m for m, lv in self.levels.items() if lv == "alarm"]
        amber = [m for m, lv in self.levels.items() if lv == "warning"]
        if red:
            text = "ALARM: " + ", ".join(red)
        elif amber:
            text = "watch: " + ", ".join(amber)
        elif any(self.levels.values()):
            text = "all within tolerance"
        else:
            text = "waiting for the first batch"
        if amber and red:
            text += f"; watch: {', '.join(amber)}"
        if self.summary.text() != text:
            self.summary.setText(text)

    def worst(self) -> str:
        """``alarm``, ``warning``, ``ok``, or ``""`` before the first batch."""
        for level in ("alarm", "warning", "ok"):
            if level in self.levels.values():
                return level
        return ""

    def mousePressEvent(self, ev: QtGui.QMouseEvent) -> None:
        if ev.button() == QtCore.Qt.MouseButton.LeftButton:
            self.open_detail.emit()
            ev.accept()
            return
        super().mousePressEvent(ev)

    def keyPressEvent(self, ev: QtGui.QKeyEvent) -> None:
        if ev.key() in (QtCore.Qt.Key.Key_Return, QtCore.Qt.Key.Key_Enter, QtCore.Qt.Key.Key_Space):
            self.open_detail.emit()
            return
        super().keyPressEvent(ev)
