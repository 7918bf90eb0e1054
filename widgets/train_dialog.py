"""The engineer's dialog for fine-tuning a model from feedback bundles: what to train on, progress, cancel.

The dialog reads and writes nothing itself. It emits the request to add a bundle (the shell asks for a folder),
to train (bundles, seed, minutes) and to cancel; the shell answers with :meth:`TrainDialog.set_bundles`,
:meth:`TrainDialog.set_progress`, :meth:`TrainDialog.add_log` and :meth:`TrainDialog.finish`.
"""

from __future__ import annotations

from typing import Sequence

from PySide6 import QtCore, QtWidgets


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


class TrainDialog(QtWidgets.QDialog):
    add_requested = QtCore.Signal()
    train_requested = QtCore.Signal(list, int, float)  # bundle folders, seed, minutes (0: no cap)
    cancel_requested = QtCore.Signal()

    def __init__(self, base: str, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("trainDialog")
        self.setWindowTitle("Train a model from feedback bundles")
        self.running = False
        self.bundles: list[str] = []

        self.base = QtWidgets.QLabel()
        self.base.setObjectName("trainBase")
        self.base.setWordWrap(True)
        self.set_base(base)
        self.list = QtWidgets.QListWidget()
        self.list.setObjectName("trainBundles")
        self.list.setMinimumHeight(80)
        self.add = QtWidgets.QPushButton("Add bundle…")
        self.add.setObjectName("trainAddBundle")
        self.add.clicked.connect(self.add_requested)
        self.remove = QtWidgets.QPushButton("Remove")
        self.remove.setObjectName("trainRemoveBundle")
        self.remove.clicked.connect(self._remove)
        side = QtWidgets.QVBoxLayout()
        side.addWidget(self.add)
        side.addWidget(self.remove)
        side.addStretch(1)
        rows = QtWidgets.QHBoxLayout()
        rows.addWidget(self.list, 1)
        rows.addLayout(side)

        self.minutes = QtWidgets.QSpinBox()
        self.minutes.setObjectName("trainMinutes")
        self.minutes.setRange(0, 240)
        self.minutes.setValue(15)
        self.minutes.setSuffix(" min")
        self.minutes.setSpecialValueText("no cap")
        self.minutes.setToolTip("Training stops after this long and keeps what it learnt so far (0: no cap)")
        self.seed = QtWidgets.QSpinBox()
        self.seed.setObjectName("trainSeed")
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setToolTip("The same bundles, base and seed give the same weights")
        form = QtWidgets.QFormLayout()
        form.addRow("Trains from", self.base)
        form.addRow("Bundles (their train split only)", rows)
        form.addRow("At most", self.minutes)
        form.addRow("Seed", self.seed)

        self.progress = QtWidgets.QProgressBar()
        self.progress.setObjectName("trainProgress")
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status = QtWidgets.QLabel("Add the bundles exported from this station or others, then Train.")
        self.status.setObjectName("trainStatus")
        self.status.setWordWrap(True)
        self.log = QtWidgets.QPlainTextEdit()
        self.log.setObjectName("trainLog")
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(2000)
        self.log.setMinimumHeight(140)

        self.train = QtWidgets.QPushButton("Train")
        self.train.setObjectName("trainStart")
        self.train.setDefault(True)
        self.train.clicked.connect(self._train)
        self.cancel = QtWidgets.QPushButton("Cancel training")
        self.cancel.setObjectName("trainCancel")
        self.cancel.clicked.connect(self.cancel_requested)
        self.close_button = QtWidgets.QPushButton("Close")
        self.close_button.setObjectName("trainClose")
        self.close_button.clicked.connect(self.hide)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addStretch(1)
        for b in (self.train, self.cancel, self.close_button):
            b.setMinimumHeight(36)
            buttons.addWidget(b)

        lay = QtWidgets.QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.progress)
        lay.addWidget(self.status)
        lay.addWidget(self.log, 1)
        lay.addLayout(buttons)
        self.resize(640, 520)
        self._update()

    # ------------------------------------------------------------------ what the shell calls

    def set_base(self, text: str) -> None:
        self.base.setText(text)

    def set_bundles(self, paths: Sequence[str]) -> None:
        self.bundles = list(dict.fromkeys(paths))
        self.list.clear()
        self.list.addItems(self.bundles)
        self._update()

    def set_running(self, running: bool) -> None:
        self.running = running
        if running:
            self.log.clear()
            self.progress.setRange(0, 0)  # busy until the first step is reported
            self.status.setText("Starting: reading the bundles and the base model…")
        self._update()

    def set_progress(self, step: int, steps: int, loss: float, eta_s: float) -> None:
        self.progress.setRange(0, max(1, steps))
        self.progress.setValue(step)
        self.status.setText(f"Step {step} of {steps}, loss {loss:.3f}, about {_duration(eta_s)} left")

    def add_log(self, line: str) -> None:
        self.log.appendPlainText(line)

    def finish(self, ok: bool, message: str) -> None:
        self.running = False
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1)
        if ok:
            self.progress.setValue(self.progress.maximum())
        self.status.setText(message)
        self._update()

    # ------------------------------------------------------------------ internals

    def _remove(self) -> None:
        rows = sorted({i.row() for i in self.list.selectedIndexes()}, reverse=True)
        for r in rows:
            del self.bundles[r]
        self.set_bundles(self.bundles)

    def _train(self) -> None:
        if self.bundles and not self.running:
            self.train_requested.emit(list(self.bundles), self.seed.value(), float(self.minutes.value()))

    def _update(self) -> None:
        idle = not self.running
        self.train.setEnabled(idle and bool(self.bundles))
        self.cancel.setEnabled(self.running)
        for w in (self.add, self.remove, self.list, self.minutes, self.seed):
            w.setEnabled(idle)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        event.ignore()
        self.hide()  # a running training goes on; the dialog comes back with its progress
