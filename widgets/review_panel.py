"""The operator's review controls: large buttons for gloved hands, each also on a key.

The panel only shows state and emits intents; the shell turns them into decisions and tells
the panel when a decision is durable ("Saved").
"""

from __future__ import annotations

from typing import Sequence

from PySide6 import QtCore, QtGui, QtWidgets

BUTTON_HEIGHT = 56  # a gloved finger on a touch screen


MAX_CLASS_BUTTONS = 9  # one key each, 1-9
CLASS_COLUMNS = 3


class OperatorEdit(QtWidgets.QLineEdit):
    """Who reviews. Once read-only (the signed-in badge) it takes no keyboard focus, so that no key of the window
    (Ctrl+O, F, C, X…) is ever typed into a field that cannot take it; Enter hands the keys back to the window."""

    def setReadOnly(self, on: bool) -> None:
        super().setReadOnly(on)
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus if on else QtCore.Qt.FocusPolicy.StrongFocus)
        if on and self.hasFocus():
            self.clearFocus()

    def keyPressEvent(self, ev: QtGui.QKeyEvent) -> None:
        super().keyPressEvent(ev)
        if ev.key() in (QtCore.Qt.Key.Key_Return, QtCore.Qt.Key.Key_Enter, QtCore.Qt.Key.Key_Escape):
            self.clearFocus()


class ReviewPanel(QtWidgets.QWidget):
    freeze_toggled = QtCore.Signal()
    next_queued = QtCore.Signal()
    confirm = QtCore.Signal()
    reject = QtCore.Signal()
    reclass = QtCore.Signal(str)
    draw_missed = QtCore.Signal(bool)
    unsure = QtCore.Signal()
    undo = QtCore.Signal()
    next_detection = QtCore.Signal()

    def __init__(self, classes: Sequence[str], operator: str = "", parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("reviewPanel")
        self.classes = list(classes)

        def button(text: str, tip: str, name: str, signal: QtCore.SignalInstance | None = None,
                   checkable: bool = False) -> QtWidgets.QPushButton:
            b = QtWidgets.QPushButton(text)
            b.setObjectName(name)
            b.setMinimumHeight(BUTTON_HEIGHT)
            b.setToolTip(tip)
            b.setCheckable(checkable)
            if signal is not None:
                b.clicked.connect(lambda *_: signal.emit())
            return b

        self.operator = OperatorEdit(operator)
        self.operator.setObjectName("operatorName")
        self.operator.setPlaceholderText("who is reviewing")
        self.freeze_button = button("Freeze frame  (F)", "Hold this frame for review; the line keeps running",
                                    "freezeButton", self.freeze_toggled, checkable=True)
        self.queue_button = button("Next in queue  (N)", "Review the next frame the station set aside",
                                   "queueButton", self.next_queued)
        self.queue_label = QtWidgets.QLabel("Queue: 0")
        self.queue_label.setObjectName("queueLength")
        self.confirm_button = button("✔ Confirm  (C)", "The selected detection is a real defect of this class",
                                     "confirmButton", self.confirm)
        self.confirm_button.setStyleSheet("QPushButton { background:#2e7d32; color:white; font-size:15px; }"
                                          "QPushButton:disabled { background:#4a4a4a; color:#9e9e9e; }")
        self.reject_button = button("✘ Reject  (X)", "The selected detection is not a defect", "rejectButton",
                                    self.reject)
        self.reject_button.setStyleSheet("QPushButton { background:#c62828; color:white; font-size:15px; }"
                                         "QPushButton:disabled { background:#4a4a4a; color:#9e9e9e; }")
        self.class_buttons: list[QtWidgets.QPushButton] = []
        # A model with many classes (a COCO-trained one has 80) gets a list to pick from, not a row of buttons
        # wider than the screen.
        self.class_combo = QtWidgets.QComboBox()
        self.class_combo.setObjectName("classChooser")
        self.class_combo.setMinimumHeight(48)
        self.class_combo.setToolTip("The selected detection is of this class, or draw a missed one of it")
        self.class_combo.activated.connect(lambda i: self.reclass.emit(self.class_combo.itemData(i)))
        classes_row = self.classes_row = QtWidgets.QGridLayout()
        self._button = button
        self.set_classes(self.classes)
        self.missed_button = button("▭ Missed defect  (M)", "Drag a box around a defect the model missed",
                                    "missedButton", checkable=True)
        self.missed_button.toggled.connect(self.draw_missed.emit)
        self.unsure_button = button("? Unsure  (U)", "Flag this frame for an engineer", "unsureButton", self.unsure)
        self.undo_button = button("↶ Undo  (Ctrl+Z)", "Take back your last decision (recorded as a new entry)",
                                  "undoButton", self.undo)
        self.next_button = button("Next detection  (Tab)", "Select the next detection", "nextButton",
                                  self.next_detection)
        self.status = QtWidgets.QLabel("Live. Freeze a frame (F) or take one from the queue (N) to review it.")
        self.status.setObjectName("reviewStatus")
        self.status.setWordWrap(True)
        self.saved = QtWidgets.QLabel("")
        self.saved.setObjectName("savedState")
        self.saved.setWordWrap(True)

        lay = QtWidgets.QVBoxLayout(self)
        who = QtWidgets.QHBoxLayout()
        who.addWidget(QtWidgets.QLabel("Operator:"))
        who.addWidget(self.operator, 1)
        lay.addLayout(who)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.freeze_button)
        row.addWidget(self.queue_button)
        lay.addLayout(row)
        lay.addWidget(self.queue_label)
        lay.addWidget(self.status)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.confirm_button)
        row.addWidget(self.reject_button)
        lay.addLayout(row)
        lay.addLayout(classes_row)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.missed_button)
        row.addWidget(self.unsure_button)
        lay.addLayout(row)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.next_button)
        row.addWidget(self.undo_button)
        lay.addLayout(row)
        lay.addWidget(self.saved)
        lay.addStretch(1)
        self.set_reviewing(False)

    def set_classes(self, classes: Sequence[str]) -> None:
        """The classes of the model that runs, in its order: up to :data:`MAX_CLASS_BUTTONS` as buttons keyed
        1, 2, 3…, three to a row; more as a list to pick from (keys 1-9 still choose the first nine)."""
        for b in self.class_buttons:
            self.classes_row.removeWidget(b)
            b.deleteLater()
        self.classes_row.removeWidget(self.class_combo)
        self.class_combo.hide()
        self.classes = list(classes)
        self.class_buttons = []
        enabled = self.missed_button.isEnabled() if hasattr(self, "missed_button") else False
        if len(self.classes) > MAX_CLASS_BUTTONS:
            self.class_combo.clear()
            for i, name in enumerate(self.classes):
                self.class_combo.addItem(f"{name}  ({i + 1})" if i < 9 else name, name)
            self.class_combo.setEnabled(enabled)
            self.classes_row.addWidget(self.class_combo, 0, 0, 1, CLASS_COLUMNS)
            self.class_combo.show()
            return
        for i, name in enumerate(self.classes):
            b = self._button(f"{name}  ({i + 1})", f"The selected detection is a {name}, or draw a missed {name}",
                             f"classButton_{name}")
            b.clicked.connect(lambda *_, n=name: self.reclass.emit(n))
            b.setEnabled(enabled)
            self.class_buttons.append(b)
            self.classes_row.addWidget(b, i // CLASS_COLUMNS, i % CLASS_COLUMNS)

    def set_reviewing(self, on: bool, has_detection: bool = False) -> None:
        """Enable what makes sense: decisions only on a frozen frame, per-detection ones only with a selection."""
        with QtCore.QSignalBlocker(self.freeze_button):
            self.freeze_button.setChecked(on)
        self.freeze_button.setText("Resume live  (F)" if on else "Freeze frame  (F)")
        for b in (self.confirm_button, self.reject_button, self.next_button):
            b.setEnabled(on and has_detection)
        for b in (*self.class_buttons, self.class_combo, self.missed_button, self.unsure_button):
            b.setEnabled(on)
        if not on and self.missed_button.isChecked():
            self.missed_button.setChecked(False)

    def set_queue(self, n: int) -> None:
        self.queue_label.setText(f"Queue: {n}")
        self.queue_button.setEnabled(n > 0)

    def show_saving(self, what: str) -> None:
        self.saved.setStyleSheet("color:#f9a825;")
        self.saved.setText(f"Saving: {what}…")

    def show_saved(self, what: str, latency_ms: float) -> None:
        self.saved.setStyleSheet("color:#43a047; font-weight:bold;")
        self.saved.setText(f"Saved ✓ {what} ({latency_ms:.0f} ms)")

    def clear_saved(self) -> None:
        """Another frame, or back to live: the last frame's save status goes with it (failures stay)."""
        if not self.saved.text().startswith("NOT saved"):
            self.saved.setText("")

    def show_failed(self, message: str) -> None:
        self.saved.setStyleSheet("color:#e53935; font-weight:bold;")
        self.saved.setText(f"NOT saved: {message}")
