"""The engineer's dialog for a feedback bundle: filters, a preview of the counts, progress and cancel.

The dialog reads and writes nothing itself. It emits the chosen options (debounced, for the preview), the
request to export and the request to cancel; the shell answers with :meth:`ExportDialog.show_preview`,
:meth:`ExportDialog.set_progress` and :meth:`ExportDialog.finish`.
"""

from __future__ import annotations

from typing import Any, Sequence

from PySide6 import QtCore, QtGui, QtWidgets

from engine.datasets.bundle import FORMATS, KINDS, BundleError, ExportOptions, SplitRule

KIND_LABELS = {"fp": "False positives (a rejected detection)", "fn": "Missed defects (drawn by an operator)",
               "confirmed": "Confirmed correct", "unsure": "Flagged unsure"}
ROWS = (*KINDS, "replay")


class ExportDialog(QtWidgets.QDialog):
    options_changed = QtCore.Signal(object)  # ExportOptions, or a sentence saying what is wrong
    export_requested = QtCore.Signal(object, str)  # ExportOptions, target path
    cancel_requested = QtCore.Signal()
    browse_requested = QtCore.Signal()

    def __init__(self, classes: Sequence[str], replay_share: float = 0.1, replay_seed: int = 0,
                 span: tuple[float, float] | None = None, out_path: str = "",
                 parent: QtWidgets.QWidget | None = None, split_rule: SplitRule | None = None) -> None:
        super().__init__(parent)
        self.split_rule = split_rule if split_rule is not None else SplitRule()
        self.setObjectName("exportDialog")
        self.setWindowTitle("Export feedback bundle")
        self.classes = list(classes)
        self.replay_seed = replay_seed
        self.running = False
        utc = QtCore.QTimeZone.utc()

        def stamp(t: float) -> QtCore.QDateTime:
            d = QtCore.QDateTime.fromSecsSinceEpoch(int(t), utc)
            return d

        lo, hi = span if span else (QtCore.QDateTime.currentSecsSinceEpoch() - 86400,
                                    QtCore.QDateTime.currentSecsSinceEpoch())
        self.since_on = QtWidgets.QCheckBox("From")
        self.since_on.setObjectName("sinceEnabled")
        self.since = QtWidgets.QDateTimeEdit(stamp(lo))
        self.until_on = QtWidgets.QCheckBox("Before")
        self.until_on.setObjectName("untilEnabled")
        self.until = QtWidgets.QDateTimeEdit(stamp(hi + 60))
        for w, name in ((self.since, "sinceTime"), (self.until, "untilTime")):
            w.setObjectName(name)
            w.setTimeZone(utc)
            w.setDisplayFormat("yyyy-MM-dd HH:mm:ss 'UTC'")
            w.setCalendarPopup(True)
            w.setEnabled(False)
        self.since_on.toggled.connect(self.since.setEnabled)
        self.until_on.toggled.connect(self.until.setEnabled)
        period = QtWidgets.QGroupBox("Period (the frames' clock, UTC; unticked: all stored)")
        pl = QtWidgets.QGridLayout(period)
        pl.addWidget(self.since_on, 0, 0)
        pl.addWidget(self.since, 0, 1)
        pl.addWidget(self.until_on, 1, 0)
        pl.addWidget(self.until, 1, 1)

        self.kind_boxes: dict[str, QtWidgets.QCheckBox] = {}
        kinds = QtWidgets.QGroupBox("Frames")
        kl = QtWidgets.QVBoxLayout(kinds)
        for k in KINDS:
            b = QtWidgets.QCheckBox(KIND_LABELS[k])
            b.setObjectName(f"kind_{k}")
            b.setChecked(True)
            self.kind_boxes[k] = b
            kl.addWidget(b)
        self.class_boxes: dict[str, QtWidgets.QCheckBox] = {}
        cls = QtWidgets.QGroupBox("Classes")
        cl = QtWidgets.QVBoxLayout(cls)
        for c in self.classes:
            b = QtWidgets.QCheckBox(c)
            b.setObjectName(f"class_{c}")
            b.setChecked(True)
            self.class_boxes[c] = b
            cl.addWidget(b)
        cl.addStretch(1)

        self.format_boxes: dict[str, QtWidgets.QCheckBox] = {}
        out = QtWidgets.QGroupBox("Bundle")
        ol = QtWidgets.QFormLayout(out)
        fr = QtWidgets.QHBoxLayout()
        for f, text in zip(FORMATS, ("COCO (JSON + predictions)", "YOLO (labels + data.yaml)")):
            b = QtWidgets.QCheckBox(text)
            b.setObjectName(f"format_{f}")
            b.setChecked(True)
            self.format_boxes[f] = b
            fr.addWidget(b)
        self.zip_box = QtWidgets.QCheckBox("One ZIP file")
        self.zip_box.setObjectName("zipBox")
        fr.addWidget(self.zip_box)
        ol.addRow("Formats", fr)
        self.replay = QtWidgets.QDoubleSpinBox()
        self.replay.setObjectName("replayShare")
        self.replay.setRange(0.0, 100.0)
        self.replay.setDecimals(0)
        self.replay.setSuffix(" %")
        self.replay.setValue(round(replay_share * 100))
        self.replay.setToolTip("Confirmed-correct frames added as replay, as a share of the chosen frames")
        ol.addRow("Replay frames", self.replay)
        pr = QtWidgets.QHBoxLayout()
        self.path = QtWidgets.QLineEdit(out_path)
        self.path.setObjectName("outPath")
        self.path.setPlaceholderText("a new folder (or .zip) for the bundle")
        self.browse = QtWidgets.QPushButton("Browse…")
        self.browse.setObjectName("browseButton")
        self.browse.clicked.connect(lambda *_: self.browse_requested.emit())
        pr.addWidget(self.path, 1)
        pr.addWidget(self.browse)
        ol.addRow("Save as", pr)

        self.table = QtWidgets.QTableWidget(len(ROWS), 1 + len(self.classes))
        self.table.setObjectName("previewTable")
        self.table.setHorizontalHeaderLabels(["frames", *self.classes])
        self.table.setVerticalHeaderLabels(list(ROWS))
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.table.setMinimumHeight(190)
        self.summary = QtWidgets.QLabel("Counting…")
        self.summary.setObjectName("previewSummary")
        self.summary.setWordWrap(True)
        preview = QtWidgets.QGroupBox("Preview")
        vl = QtWidgets.QVBoxLayout(preview)
        vl.addWidget(self.table)
        vl.addWidget(self.summary)

        self.progress = QtWidgets.QProgressBar()
        self.progress.setObjectName("exportProgress")
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status = QtWidgets.QLabel("")
        self.status.setObjectName("exportStatus")
        self.status.setWordWrap(True)
        self.export_button = QtWidgets.QPushButton("Export  (Ctrl+Enter)")
        self.export_button.setObjectName("exportButton")
        self.export_button.setDefault(True)
        self.export_button.clicked.connect(self._request_export)
        self.cancel_button = QtWidgets.QPushButton("Cancel export  (Esc)")
        self.cancel_button.setObjectName("cancelButton")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(lambda *_: self.cancel_requested.emit())
        self.close_button = QtWidgets.QPushButton("Close")
        self.close_button.setObjectName("closeButton")
        self.close_button.clicked.connect(self.reject)
        for seq in ("Ctrl+Return", "Ctrl+Enter"):
            QtGui.QShortcut(QtGui.QKeySequence(seq), self, activated=self._request_export)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addStretch(1)
        for b in (self.export_button, self.cancel_button, self.close_button):
            buttons.addWidget(b)

        top = QtWidgets.QHBoxLayout()
        left = QtWidgets.QVBoxLayout()
        left.addWidget(period)
        left.addWidget(kinds)
        top.addLayout(left, 2)
        top.addWidget(cls, 1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(out)
        layout.addWidget(preview)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addLayout(buttons)

        self._debounce = QtCore.QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(250)
        self._debounce.timeout.connect(lambda: self.options_changed.emit(self.options()))
        for b in (*self.kind_boxes.values(), *self.class_boxes.values(), self.since_on, self.until_on,
                  *self.format_boxes.values(), self.zip_box):
            b.toggled.connect(self._changed)
        self.since.dateTimeChanged.connect(self._changed)
        self.until.dateTimeChanged.connect(self._changed)
        self.replay.valueChanged.connect(self._changed)

    # ------------------------------------------------------------------ what the engineer chose

    def options(self) -> ExportOptions | str:
        """The chosen options, or one sentence saying what is wrong with them."""
        kinds = tuple(k for k, b in self.kind_boxes.items() if b.isChecked())
        classes = tuple(c for c, b in self.class_boxes.items() if b.isChecked())
        if self.classes and not classes:
            return "choose at least one class"
        try:
            return ExportOptions(
                since=float(self.since.dateTime().toSecsSinceEpoch()) if self.since_on.isChecked() else None,
                until=float(self.until.dateTime().toSecsSinceEpoch()) if self.until_on.isChecked() else None,
                kinds=kinds, classes=None if len(classes) == len(self.classes) else classes,
                formats=tuple(f for f, b in self.format_boxes.items() if b.isChecked()),
                replay_share=self.replay.value() / 100.0, replay_seed=self.replay_seed, zip=self.zip_box.isChecked(),
                split=self.split_rule)
        except BundleError as e:
            return str(e)

    def set_span(self, span: tuple[float, float] | None) -> None:
        """The stored frames' first and last times (the frames' clock), once known: the period's start values.
        A period the user has already ticked is left as it is."""
        if span is None:
            return
        utc = QtCore.QTimeZone.utc()
        lo, hi = span
        if not self.since_on.isChecked():
            self.since.setDateTime(QtCore.QDateTime.fromSecsSinceEpoch(int(lo), utc))
        if not self.until_on.isChecked():
            self.until.setDateTime(QtCore.QDateTime.fromSecsSinceEpoch(int(hi + 60), utc))

    def set_output(self, path: str) -> None:
        self.path.setText(path)

    def _changed(self, *_: Any) -> None:
        self._debounce.start()

    def refresh(self) -> None:
        """Ask for a preview now (the shell calls it when the dialog opens)."""
        self._debounce.stop()
        self.options_changed.emit(self.options())

    def _request_export(self) -> None:
        if self.running:
            return
        o = self.options()
        if isinstance(o, str):
            self.status.setText(o[0].upper() + o[1:] + ".")
            return
        if not self.path.text().strip():
            self.status.setText("Choose where to save the bundle.")
            self.path.setFocus()
            return
        self.export_requested.emit(o, self.path.text().strip())

    # ------------------------------------------------------------------ what the shell tells it

    def show_preview(self, counts: dict[str, Any] | None, error: str | None = None) -> None:
        if counts is None:
            self.summary.setText(error or "")
            for r in range(self.table.rowCount()):
                for c in range(self.table.columnCount()):
                    self.table.setItem(r, c, QtWidgets.QTableWidgetItem(""))
            return
        for r, kind in enumerate(ROWS):
            self.table.setItem(r, 0, QtWidgets.QTableWidgetItem(str(counts["by_kind"].get(kind, 0))))
            per = counts["by_kind_and_class"].get(kind, {})
            for c, name in enumerate(self.classes, 1):
                self.table.setItem(r, c, QtWidgets.QTableWidgetItem(str(per.get(name, 0))))
        boxes = sum(counts["boxes_by_class"].values())
        left = sum(counts.get("left_out", {}).values())
        text = (f"{counts['images']} images ({counts['chosen']} chosen, {counts['replay']} replay, "
                f"{counts['defect_free_images']} defect-free), {boxes} boxes, {counts['predictions']} predictions, "
                f"{counts['decisions']} decisions")
        if left:
            text += f"; {left} frames left out (a missed defect without a box, or the same image twice)"
        if counts["chosen"] == 0:
            text = "Nothing to export with these filters."
        self.summary.setText(text)
        self.export_button.setEnabled(not self.running and counts["chosen"] > 0)

    def set_running(self, running: bool) -> None:
        self.running = running
        self.cancel_button.setEnabled(running)
        self.export_button.setEnabled(not running)
        self.close_button.setEnabled(not running)
        for w in (*self.kind_boxes.values(), *self.class_boxes.values(), *self.format_boxes.values(),
                  self.zip_box, self.replay, self.path, self.browse, self.since_on, self.until_on):
            w.setEnabled(not running)
        self.since.setEnabled(not running and self.since_on.isChecked())
        self.until.setEnabled(not running and self.until_on.isChecked())
        if running:
            self.progress.setRange(0, 0)
            self.status.setText("Exporting…")

    def set_progress(self, done: int, total: int, stage: str) -> None:
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(done)
        self.status.setText(f"Exporting: {stage}, {done} of {total}")

    def finish(self, ok: bool, message: str) -> None:
        self.set_running(False)
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if ok else 0)
        self.status.setText(message)

    def reject(self) -> None:
        """Esc or Close: cancels a running export first; closes the dialog otherwise."""
        if self.running:
            self.cancel_requested.emit()
            return
        super().reject()
