"""The calibration exercise: a new operator labels the gold set, one picture at a time, and then sees where
and why they differ from its reference answers.

The dialog is given the pictures (RGB arrays, the marked region, the choices); when every item is answered it
emits ``completed(operator, answers)``, and the shell, having scored them, calls :meth:`show_result` with the
result of :meth:`engine.datasets.agreement.gold.CalibrationExercise.result`. It reads no file and stores nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from widgets.agreement_dashboard import _pixmap

BUTTON_HEIGHT = 56


@dataclass(frozen=True)
class ExerciseItem:
    id: str
    image: np.ndarray  # RGB uint8
    box: tuple[float, float, float, float]


class CalibrationExerciseDialog(QtWidgets.QDialog):
    completed = QtCore.Signal(str, dict)  # operator, {item id: label}

    def __init__(self, items: Sequence[ExerciseItem], choices: Sequence[str], operator: str = "",
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("calibrationExercise")
        self.setWindowTitle("Calibration exercise")
        self.items = list(items)
        self.choices = list(choices)
        self.index = 0
        self.answers: dict[str, str] = {}
        self.stack = QtWidgets.QStackedWidget()

        # page 0: who
        start = QtWidgets.QWidget()
        sl = QtWidgets.QVBoxLayout(start)
        intro = QtWidgets.QLabel(
            f"<h3>Calibration exercise</h3><p>{len(self.items)} pictures from the gold set follow. For each, say "
            "what the <b>yellow box</b> shows: one of the defect classes, or no defect. Answer from your own "
            "judgement; at the end you see where the reference answers differ, and the written criterion that "
            "decides each case.</p><p>Keys: " + ", ".join(f"<b>{self._key(i)}</b> {c}" for i, c in
                                                       enumerate(self.choices))
            + (" (or <b>X</b>)" if "none" in self.choices else "") + ", <b>Backspace</b> back.</p>")
        intro.setWordWrap(True)
        self.operator = QtWidgets.QLineEdit(operator)
        self.operator.setObjectName("calibrationOperator")
        self.operator.setPlaceholderText("your name or badge")
        self.start_button = QtWidgets.QPushButton("Start  (Enter)")
        self.start_button.setObjectName("calibrationStart")
        self.start_button.setMinimumHeight(BUTTON_HEIGHT)
        self.start_button.clicked.connect(self.begin)
        self.operator.returnPressed.connect(self.begin)
        sl.addWidget(intro)
        sl.addWidget(QtWidgets.QLabel("Operator:"))
        sl.addWidget(self.operator)
        sl.addStretch(1)
        sl.addWidget(self.start_button)

        # page 1: the pictures
        ask = QtWidgets.QWidget()
        al = QtWidgets.QVBoxLayout(ask)
        self.progress = QtWidgets.QLabel("")
        self.progress.setObjectName("calibrationProgress")
        self.picture = QtWidgets.QLabel()
        self.picture.setObjectName("calibrationPicture")
        self.picture.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.picture.setMinimumSize(432, 432)
        row = QtWidgets.QHBoxLayout()
        self.choice_buttons: dict[str, QtWidgets.QPushButton] = {}
        for i, c in enumerate(self.choices):
            b = QtWidgets.QPushButton(f"{c}  ({self._key(i)})")
            b.setObjectName(f"choice_{c}")
            b.setMinimumHeight(BUTTON_HEIGHT)
            b.clicked.connect(lambda *_, c=c: self.answer(c))
            row.addWidget(b)
            self.choice_buttons[c] = b
        self.back_button = QtWidgets.QPushButton("Back  (Backspace)")
        self.back_button.setMinimumHeight(BUTTON_HEIGHT)
        self.back_button.clicked.connect(self.back)
        row.addWidget(self.back_button)
        al.addWidget(self.progress)
        al.addWidget(self.picture, 1)
        al.addLayout(row)

        # page 2: the result
        res = QtWidgets.QWidget()
        rl = QtWidgets.QVBoxLayout(res)
        self.score = QtWidgets.QLabel("Scoring…")
        self.score.setObjectName("calibrationScore")
        self.score.setWordWrap(True)
        self.score.setMinimumHeight(90)
        self.score.setSizePolicy(QtWidgets.QSizePolicy.Policy.Preferred, QtWidgets.QSizePolicy.Policy.Minimum)
        self.differences = QtWidgets.QListWidget()
        self.differences.setObjectName("calibrationDifferences")
        self.differences.setIconSize(QtCore.QSize(144, 144))
        self.differences.setWordWrap(True)
        self.differences.setSpacing(4)
        close = QtWidgets.QPushButton("Close  (Esc)")
        close.setMinimumHeight(BUTTON_HEIGHT)
        close.clicked.connect(self.accept)
        rl.addWidget(self.score)
        rl.addWidget(self.differences, 1)
        rl.addWidget(close)

        for page in (start, ask, res):
            self.stack.addWidget(page)
        lay = QtWidgets.QVBoxLayout(self)
        lay.addWidget(self.stack)
        self.resize(760, 640)

    @staticmethod
    def _key(i: int) -> str:
        return str(i + 1)

    # ------------------------------------------------------------------ flow

    def begin(self) -> None:
        if not self.operator.text().strip():
            self.operator.setPlaceholderText("a name is needed, so the result can be kept")
            self.operator.setFocus()
            return
        self.index = 0
        self.stack.setCurrentIndex(1)
        self._show_item()

    def _show_item(self) -> None:
        it = self.items[self.index]
        self.progress.setText(f"Picture {self.index + 1} of {len(self.items)}: what does the yellow box show?")
        self.picture.setPixmap(_pixmap(it.image, it.box, QtCore.QSize(432, 432)))
        given = self.answers.get(it.id)
        for c, b in self.choice_buttons.items():
            b.setStyleSheet("QPushButton { border: 3px solid #ffeb3b; }" if c == given else "")
        self.back_button.setEnabled(self.index > 0)

    def answer(self, label: str) -> None:
        if self.stack.currentIndex() != 1:
            return
        self.answers[self.items[self.index].id] = label
        if self.index + 1 < len(self.items):
            self.index += 1
            self._show_item()
        else:
            self.stack.setCurrentIndex(2)
            self.completed.emit(self.operator.text().strip(), dict(self.answers))

    def back(self) -> None:
        if self.stack.currentIndex() == 1 and self.index > 0:
            self.index -= 1
            self._show_item()

    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:  # noqa: N802 (Qt naming)
        if self.stack.currentIndex() == 1:
            text = event.text()
            if text.isdigit() and 1 <= int(text) <= len(self.choices):
                self.answer(self.choices[int(text) - 1])
                return
            if event.key() == QtCore.Qt.Key.Key_X and "none" in self.choices:  # as in review: X rejects
                self.answer("none")
                return
            if event.key() == QtCore.Qt.Key.Key_Backspace:
                self.back()
                return
        super().keyPressEvent(event)

    # ------------------------------------------------------------------ the result

    def show_result(self, result: dict[str, Any]) -> None:
        """Where and why the operator differs from the reference answers."""
        self.stack.setCurrentIndex(2)
        kappa = result.get("kappa")
        bands = result.get("per_band", {})

        def pct(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.0%}"

        self.score.setText(
            f"<span style='font-size:16px; font-weight:bold'>{result['operator']}: {pct(result['agreement'])} "
            f"agree with the gold set (Cohen's κ {'n/a' if kappa is None else f'{kappa:.2f}'})</span>"
            f"<p>Easy cases {pct(bands.get('easy', {}).get('agreement'))}, boundary cases "
            f"{pct(bands.get('boundary', {}).get('agreement'))}. {len(result['disagreements'])} of "
            f"{result['answered']} answers differ"
            + (":" if result["disagreements"] else ". Nothing to correct.") + "</p>")
        self.differences.clear()
        by_id = {it.id: it for it in self.items}
        for d in result["disagreements"]:
            it = by_id.get(d["item"])
            text = (f"You said {d['given']}; the reference is {d['answer']}"
                    f"{' (a boundary case)' if d['boundary'] else ''}. {d['note']}.\n"
                    f"Criterion — {d['criterion']}: {d['why']}")
            row = QtWidgets.QListWidgetItem(text)
            if it is not None:
                row.setIcon(QtGui.QIcon(_pixmap(it.image, it.box, QtCore.QSize(144, 144))))
            self.differences.addItem(row)
