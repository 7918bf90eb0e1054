"""Choosing what the station watches, and a log of what its source did."""

from __future__ import annotations

import time
from typing import ClassVar, Sequence

from PySide6 import QtCore, QtGui, QtWidgets

BROWSE_FILE = "Video file…"
BROWSE_FOLDER = "Image folder…"


class SourceChooser(QtWidgets.QWidget):
    """An editable list of source URIs. Emits ``source_chosen(uri)``, or ``browse_requested(kind)``
    when the user wants to pick a file (``"file"``) or a folder (``"folder"``)."""

    source_chosen = QtCore.Signal(str)
    browse_requested = QtCore.Signal(str)

    def __init__(self, presets: Sequence[tuple[str, str]], current: str = "",
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("sourceChooser")
        self.combo = QtWidgets.QComboBox(editable=True)
        self.combo.setObjectName("sourceCombo")
        self.combo.setInsertPolicy(QtWidgets.QComboBox.InsertPolicy.NoInsert)
        self.combo.setMinimumContentsLength(34)
        self.combo.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        for label, uri in presets:
            self.combo.addItem(label, uri)
        self.combo.insertSeparator(self.combo.count())
        self.combo.addItem(BROWSE_FILE, "browse:file")
        self.combo.addItem(BROWSE_FOLDER, "browse:folder")
        self.combo.setToolTip("sim://…, cam://0, a video file, folder://PATH or rtsp://… — Enter to open")
        self.open_button = QtWidgets.QPushButton("Open")
        self.open_button.setObjectName("openSource")
        self.open_button.setToolTip("Watch this source (Enter)")
        lay = QtWidgets.QHBoxLayout(self)
        lay.setContentsMargins(4, 0, 4, 0)
        lay.addWidget(QtWidgets.QLabel("Source:"))
        lay.addWidget(self.combo, 1)
        lay.addWidget(self.open_button)
        self.set_current(current)
        self.combo.activated.connect(self._activated)
        self.combo.lineEdit().returnPressed.connect(self._open_clicked)
        self.open_button.clicked.connect(self._open_clicked)

    def set_current(self, uri: str) -> None:
        i = self.combo.findData(uri)
        if i >= 0:
            self.combo.setCurrentIndex(i)
        self.combo.setEditText(uri)

    def uri(self) -> str:
        return self.combo.currentText().strip()

    def _activated(self, index: int) -> None:
        data = self.combo.itemData(index)
        if isinstance(data, str) and data.startswith("browse:"):
            self.browse_requested.emit(data.split(":", 1)[1])
        elif isinstance(data, str):
            self.combo.setEditText(data)
            self.source_chosen.emit(data)

    def _open_clicked(self) -> None:
        text = self.uri()
        i = self.combo.findText(text)
        data = self.combo.itemData(i) if i >= 0 else None
        if isinstance(data, str) and data.startswith("browse:"):
            self.browse_requested.emit(data.split(":", 1)[1])
            return
        uri = data if isinstance(data, str) else text
        if uri:
            self.combo.setEditText(uri)
            self.source_chosen.emit(uri)


class EventLog(QtWidgets.QListWidget):
    """Newest first; warnings and failures stand out, drift alarms in red and drift warnings in amber. Lines wrap
    rather than being cut, and each one's full text is its tooltip. Keeps a bounded number of lines."""

    AMBER, RED = "#e8a33d", "#e05a4f"
    COLOURS = {"stalled": AMBER, "frozen": AMBER, "unavailable": RED, "error": RED,
               "failed": RED, "model-error": RED, "alarm": AMBER, "recovered": "#5cb85c", "frame-error": AMBER}
    SEVERITY_COLOURS: ClassVar[dict[str, str]] = {"alarm": RED, "warning": AMBER, "cleared": "#5cb85c"}

    def __init__(self, max_lines: int = 500, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("eventLog")
        self.max_lines = max_lines
        self.setAlternatingRowColors(True)
        self.setWordWrap(True)
        self.setTextElideMode(QtCore.Qt.TextElideMode.ElideNone)
        self.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setResizeMode(QtWidgets.QListView.ResizeMode.Adjust)

    def colour(self, kind: str, message: str) -> str | None:
        """The line's colour: for an alarm event (``"<metric> <severity>: ..."``) by its severity."""
        if kind == "alarm":
            head = message.split(":", 1)[0].split()
            if len(head) >= 2 and head[-1] in self.SEVERITY_COLOURS:
                return self.SEVERITY_COLOURS[head[-1]]
        return self.COLOURS.get(kind)

    def add(self, kind: str, message: str, when: float | None = None) -> None:
        stamp = time.strftime("%H:%M:%S", time.localtime(when if when is not None else time.time()))
        text = f"{stamp}  {kind}: {message}"
        item = QtWidgets.QListWidgetItem(text)
        item.setToolTip(text)
        colour = self.colour(kind, message)
        if colour:
            item.setForeground(QtGui.QBrush(QtGui.QColor(colour)))
        self.insertItem(0, item)
        while self.count() > self.max_lines:
            self.takeItem(self.count() - 1)


class ValuesTable(QtWidgets.QTableWidget):
    """Name/value rows for the current frame's measurements."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(0, 2, parent)
        self.setObjectName("valuesTable")
        self.setHorizontalHeaderLabels(["Measurement", "Value"])
        self.horizontalHeader().setStretchLastSection(True)
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)

    def set_values(self, values: dict[str, object]) -> None:
        if self.rowCount() != len(values):
            self.setRowCount(len(values))
        for row, (name, value) in enumerate(values.items()):
            text = f"{value:.2f}" if isinstance(value, float) else str(value)
            for col, t in enumerate((name, text)):
                item = self.item(row, col)
                if item is None:
                    self.setItem(row, col, QtWidgets.QTableWidgetItem(t))
                elif item.text() != t:
                    item.setText(t)
