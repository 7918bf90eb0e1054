"""The station's models: which one is the champion, the challengers, the retired ones, and what each card says."""

from __future__ import annotations

from typing import Any

from PySide6 import QtCore, QtWidgets

from engine.inference.registry import lineage_text

COLUMNS = ("Status", "Name", "Model", "F1 (card)", "Lineage")


class ModelRegistryPanel(QtWidgets.QWidget):
    """A table of the registry's models (rows as :meth:`engine.inference.registry.Entry.summary` gives them) and
    the selected one's card. Emits ``promote_requested(name)`` and ``rollback_requested()``; reads no files."""

    promote_requested = QtCore.Signal(str)
    rollback_requested = QtCore.Signal()
    train_requested = QtCore.Signal()

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("modelRegistryPanel")
        self.rows: list[dict[str, Any]] = []
        self.running = QtWidgets.QLabel("Running: —")
        self.running.setObjectName("runningModel")
        self.running.setWordWrap(True)
        self.table = QtWidgets.QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("modelTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._selected)
        self.card = QtWidgets.QLabel("")
        self.card.setObjectName("modelCard")
        self.card.setWordWrap(True)
        self.card.setTextFormat(QtCore.Qt.TextFormat.PlainText)
        self.card.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.promote = QtWidgets.QPushButton("Promote to champion…")
        self.promote.setObjectName("promoteModel")
        self.promote.setToolTip("Make the selected model the one the station runs (signed by an engineer)")
        self.promote.clicked.connect(self._promote)
        self.rollback = QtWidgets.QPushButton("Roll back…")
        self.rollback.setObjectName("rollbackModel")
        self.rollback.setToolTip("Run the champion before this one again; this one is retired (signed by an engineer)")
        self.rollback.clicked.connect(self.rollback_requested.emit)
        self.train = QtWidgets.QPushButton("Train…")
        self.train.setObjectName("trainModel")
        self.train.setToolTip("Fine-tune the champion on feedback bundles; the result joins as a challenger")
        self.train.clicked.connect(self.train_requested.emit)
        self.buttons = QtWidgets.QWidget()  # the shell gates this box by permission; the buttons by selection
        self.buttons.setObjectName("modelRegistryButtons")
        buttons = QtWidgets.QHBoxLayout(self.buttons)
        buttons.setContentsMargins(0, 0, 0, 0)
        buttons.addWidget(self.promote)
        buttons.addWidget(self.rollback)
        buttons.addStretch(1)
        buttons.addWidget(self.train)
        lay = QtWidgets.QVBoxLayout(self)
        lay.addWidget(self.running)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.card)
        lay.addWidget(self.buttons)
        self._update_buttons()

    def set_models(self, rows: list[dict[str, Any]]) -> None:
        selected = self.selected_name()
        self.rows = list(rows)
        self.table.setRowCount(len(self.rows))
        for i, r in enumerate(self.rows):
            f1 = r.get("f1")
            cells = (r.get("status", ""), r.get("name", ""), r.get("title", ""),
                     f"{f1:.3f}" if isinstance(f1, (int, float)) else "—", lineage_text(r.get("lineage")))
            for j, text in enumerate(cells):
                item = QtWidgets.QTableWidgetItem(str(text))
                if r.get("status") == "champion":
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.table.setItem(i, j, item)
        self.table.resizeColumnsToContents()
        for i, r in enumerate(self.rows):
            if r.get("name") == selected:
                self.table.selectRow(i)
        self._update_buttons()

    def set_running(self, text: str) -> None:
        self.running.setText(f"Running: {text}")

    def select(self, name: str) -> bool:
        for i, r in enumerate(self.rows):
            if r.get("name") == name:
                self.table.selectRow(i)
                return True
        return False

    def selected_name(self) -> str | None:
        r = self._selected_row()
        return None if r is None else str(r.get("name"))

    def _selected_row(self) -> dict[str, Any] | None:
        idx = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not idx or idx[0].row() >= len(self.rows):
            return None
        return self.rows[idx[0].row()]

    def _selected(self) -> None:
        r = self._selected_row()
        if r is None:
            self.card.setText("")
        else:
            classes = ", ".join(r.get("classes") or [])
            parts = [f"{r.get('title', '')} ({r.get('name')}, {r.get('status')})",
                     f"SHA-256 {str(r.get('sha256', ''))[:16]}…", f"classes: {classes}"]
            if isinstance(r.get("map50"), (int, float)):
                parts.append(f"card: F1 {r['f1']:.3f}, mAP@0.5 {r['map50']:.3f}")
            if r.get("lineage"):
                parts.append(f"lineage: {lineage_text(r['lineage'])}")
            if r.get("added_utc"):
                parts.append(f"added {r['added_utc']}")
            self.card.setText("\n".join(parts))
        self._update_buttons()

    def _update_buttons(self) -> None:
        r = self._selected_row()
        self.promote.setEnabled(r is not None and r.get("status") != "champion")
        champion = next((x for x in self.rows if x.get("status") == "champion"), None)
        self.rollback.setEnabled(champion is not None and champion.get("name") != "builtin")

    def _promote(self) -> None:
        name = self.selected_name()
        if name:
            self.promote_requested.emit(name)
