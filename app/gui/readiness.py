"""The data readiness report from the window: Tools > Data readiness report… (Ctrl+Shift+R).

``install(window)`` adds the action to ``window.tools_menu``. It asks where the report goes (default: the data
directory), uses the reference the station is set to (``[drift] reference``; asks for a file when there is
none), builds the report on a worker thread behind a progress dialog that can cancel it, and then offers to
open it in the browser. The line keeps running meanwhile.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from app.gui import files
from app.gui.host import StationWindow
from app.gui.tasks import Relay, Worker

SHORTCUT = "Ctrl+Shift+R"


class ReportWorker(Worker):
    """Builds one report off the GUI thread; reports progress, the result or one sentence of failure."""

    progressed = QtCore.Signal(int, str)
    succeeded = QtCore.Signal(object)
    failed = QtCore.Signal(str)

    def __init__(self, reference: str, data_dir: Path, out: Path, config: dict[str, Any], runner: Relay,
                 parent: QtCore.QObject | None = None) -> None:
        super().__init__("report-readiness", runner, parent)
        self.reference, self.data_dir, self.out, self.config = reference, data_dir, out, config
        self.cancel = threading.Event()

    def run(self) -> None:
        from engine.datasets.readiness import ReadinessCancelled, ReadinessError
        from engine.datasets.readiness_report import build_report

        try:
            result = build_report(self.reference, self.data_dir, self.out, None, self.config,
                                  lambda f, m: self.emit_later(self.progressed, int(round(100 * f)), m), self.cancel)
        except ReadinessCancelled:
            self.emit_later(self.failed, "")
        except ReadinessError as e:
            self.emit_later(self.failed, str(e))
        except Exception as e:  # a report must never take the station down
            self.emit_later(self.failed, f"the report failed: {type(e).__name__}: {e}")
        else:
            self.emit_later(self.succeeded, result)


class ReadinessAction(QtCore.QObject):
    """The menu action and the one report being built at a time."""

    def __init__(self, window: StationWindow) -> None:
        super().__init__(window)  # type: ignore[arg-type]
        self.window = window
        self.worker: ReportWorker | None = None
        self.dialog: QtWidgets.QProgressDialog | None = None
        self.last_result: Any = None
        self.last_error: str | None = None
        self.message: QtWidgets.QMessageBox | None = None  # the last outcome shown
        a = QtGui.QAction("Data readiness report…", window)
        a.setShortcut(QtGui.QKeySequence(SHORTCUT))
        a.setToolTip(f"Is the feedback ready to retrain on? Training reference against production, classes, "
                     f"coverage, agreement ({a.shortcut().toString()})")
        a.setProperty("permission", "readiness")
        a.triggered.connect(self.ask)
        window.addAction(a)
        window.tools_menu.addAction(a)
        self.action = a

    # ------------------------------------------------------------------ asking

    def default_out(self) -> Path:
        return Path(self.window.data_dir) / f"readiness-{time.strftime('%Y%m%d-%H%M%S')}.html"

    def reference(self) -> str | None:
        ref = (self.window.config.get("drift", {}).get("reference") or "").strip()
        if ref:
            return ref
        path, _ = files.open_file_name(self.window, "Training reference", str(self.window.data_dir),
                                                        "References (*.npz)")
        return path or None

    def ask(self) -> None:
        if self.worker is not None:
            return
        reference = self.reference()
        if not reference:
            return
        path, _ = files.save_file_name(self.window, "Save the data readiness report",
                                                        str(self.default_out()), "HTML report (*.html)")
        if not path:
            return
        self.start(reference, Path(path))

    # ------------------------------------------------------------------ building

    def start(self, reference: str, out: Path) -> ReportWorker:
        """Build the report into ``out`` on a worker thread, behind a cancellable progress dialog."""
        dlg = QtWidgets.QProgressDialog("Building the data readiness report…", "Cancel", 0, 100, self.window)
        dlg.setWindowTitle("Data readiness")
        dlg.setWindowModality(QtCore.Qt.WindowModality.WindowModal)
        dlg.setMinimumDuration(0)
        dlg.setValue(0)
        self.dialog = dlg
        w = ReportWorker(reference, Path(self.window.data_dir), out, self.window.config, self.window.tasks, self)
        w.progressed.connect(self._progress)
        w.succeeded.connect(self._done)
        w.failed.connect(self._failed)
        w.finished.connect(self._cleanup)
        dlg.canceled.connect(w.cancel.set)
        self.worker = w
        self.last_result, self.last_error = None, None
        w.start()
        return w

    def _progress(self, percent: int, message: str) -> None:
        if self.dialog is not None:
            self.dialog.setLabelText(f"Data readiness: {message}…")
            self.dialog.setValue(min(99, percent))

    def _close_dialog(self) -> None:
        if self.dialog is not None:
            self.dialog.canceled.disconnect()
            self.dialog.close()
            self.dialog.deleteLater()
            self.dialog = None

    def _done(self, result: Any) -> None:
        self._close_dialog()
        self.last_result = result
        out = self.worker.out if self.worker is not None else None
        text = f"Verdict: {result.verdict.upper()}"
        if result.reasons:
            text += "\n\n" + "\n".join(f"• {r}" for r in result.reasons)
        box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Information, "Data readiness report",
                                    f"{text}\n\nThe report is in {out}. Open it?",
                                    QtWidgets.QMessageBox.StandardButton.Open
                                    | QtWidgets.QMessageBox.StandardButton.Close, self.window)
        box.setDefaultButton(QtWidgets.QMessageBox.StandardButton.Open)
        box.setObjectName("readinessDone")
        opener = box.button(QtWidgets.QMessageBox.StandardButton.Open)
        box.buttonClicked.connect(lambda b: self._open(out) if b is opener else None)
        box.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        self.message = box
        box.open()

    def _open(self, out: Path | None) -> None:
        if out is not None:
            QtGui.QDesktopServices.openUrl(QtCore.QUrl.fromLocalFile(str(out)))

    def _failed(self, message: str) -> None:
        self._close_dialog()
        self.last_error = message or "cancelled"
        if message:
            box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Warning, "Data readiness report",
                                        message[0].upper() + message[1:] + ".",
                                        QtWidgets.QMessageBox.StandardButton.Close, self.window)
            box.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
            self.message = box
            box.open()

    def _cleanup(self) -> None:
        if self.worker is not None:
            self.worker.deleteLater()
        self.worker = None


def install(window: Any) -> ReadinessAction:
    """Add "Data readiness report…" to the window's Tools menu."""
    window.readiness = ReadinessAction(window)
    return window.readiness
