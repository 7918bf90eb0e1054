"""Which model looks at the line, and how sure it must be to report a defect."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets


class ModelControls(QtWidgets.QWidget):
    """Shows the model in use; emits ``builtin_requested``, ``browse_requested`` and
    ``confidence_changed(float)``. Knows nothing of files: picking one is the shell's job."""

    builtin_requested = QtCore.Signal()
    browse_requested = QtCore.Signal()
    confidence_changed = QtCore.Signal(float)

    def __init__(self, confidence: float, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("modelControls")
        self.label = QtWidgets.QLabel("Model: loading…")
        self.label.setObjectName("modelLabel")
        self.choose = QtWidgets.QToolButton()
        self.choose.setObjectName("chooseModel")
        self.choose.setText("Model ▾")
        self.choose.setPopupMode(QtWidgets.QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QtWidgets.QMenu(self.choose)
        menu.addAction("Built-in model", self.builtin_requested.emit)
        menu.addAction("Model file (.pt2, TorchScript)…", self.browse_requested.emit)
        self.choose.setMenu(menu)
        self.confidence = QtWidgets.QDoubleSpinBox()
        self.confidence.setObjectName("confidence")
        self.confidence.setRange(0.01, 0.99)
        self.confidence.setSingleStep(0.05)
        self.confidence.setDecimals(2)
        self.confidence.setValue(confidence)
        self.confidence.setToolTip("Score a detection needs to be shown ([ and ] change it)")
        self.confidence.valueChanged.connect(self.confidence_changed.emit)
        lay = QtWidgets.QHBoxLayout(self)
        lay.setContentsMargins(4, 0, 4, 0)
        lay.addWidget(self.choose)
        lay.addWidget(self.label)
        lay.addSpacing(8)
        lay.addWidget(QtWidgets.QLabel("Confidence ≥"))
        lay.addWidget(self.confidence)

    def set_model(self, text: str) -> None:
        self.label.setText(text)

    def step_confidence(self, steps: int) -> None:
        self.confidence.stepBy(steps)
