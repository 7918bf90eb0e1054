"""The Field accuracy dock: the sampled precision and recall, the label-free estimate and its trend, the retrain
suggestion, and the shadow model (start with a model chosen from a file dialog, stop, agreement, who was right).

``install(window)`` adds the dock beside the drift dock. The stored figures are read by the window's task runner
every ``REFRESH_MS`` (never on the GUI thread); the live estimate and the shadow counts are the station's
in-memory figures, read each second. Loading and stopping a shadow model run on the task runner too.
"""

from __future__ import annotations

from typing import Any

from PySide6 import QtCore

from app.gui import files
from widgets.accuracy_tile import AccuracyTile

REFRESH_MS = 15000
LIVE_MS = 1000
MODEL_FILTER = "Models (*.onnx *.pt2 *.torchscript *.pt *.ts);;All files (*)"


class AccuracyView(QtCore.QObject):
    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.w = window
        self.tile = AccuracyTile()
        self.reading = False
        self.last: dict[str, Any] | None = None
        self.tile.start_shadow.connect(self.choose_shadow)
        self.tile.stop_shadow.connect(self.stop_shadow)
        self._stored = QtCore.QTimer(self)
        self._stored.setInterval(REFRESH_MS)
        self._stored.timeout.connect(self.refresh)
        self._stored.start()
        self._live = QtCore.QTimer(self)
        self._live.setInterval(LIVE_MS)
        self._live.timeout.connect(self.show_live)
        self._live.start()
        self._shadow_snap: dict[str, Any] | None = None
        self.closed = False
        window.installEventFilter(self)  # the timers stop when the window closes, before its task runner does
        QtCore.QTimer.singleShot(0, self.refresh)

    def eventFilter(self, obj: QtCore.QObject, event: QtCore.QEvent) -> bool:
        if obj is self.w and event.type() == QtCore.QEvent.Type.Close:
            self.closed = True
            self._stored.stop()
            self._live.stop()
        return False

    # ------------------------------------------------------------------ stored figures (task runner)

    def refresh(self) -> None:
        if self.reading or self.closed:
            return
        from engine.runtime.field import field_report

        self.reading = True
        self.w.tasks.run(field_report, self.w.data_dir, self.w.config, on_done=self._read, on_error=self._failed)

    def _read(self, out: dict[str, Any]) -> None:
        self.reading = False
        self.last = out
        self.tile.show_figures(out)
        self.show_live()

    def _failed(self, e: BaseException) -> None:
        self.reading = False
        self.w.report("error", f"the field accuracy cannot be read: {e}")

    # ------------------------------------------------------------------ live figures (memory only)

    def show_live(self) -> None:
        field = self.w.station.field
        self.tile.show_live(field.expected_precision, field.calibration_note, field.expected_recall,
                            field.expected_f1)
        if field.suggestion:
            self.tile.show_suggestion(field.suggestion)
        shadow = field.shadow
        if shadow is not None:
            self._shadow_snap = {**shadow.snapshot(), "judged": field.shadow_judged(), "running": True}
        self.tile.show_shadow(self._shadow_snap)

    # ------------------------------------------------------------------ the shadow model

    def choose_shadow(self) -> None:
        path, _ = files.open_file_name(self.w, "Challenger model to run in shadow", "", MODEL_FILTER)
        if path:
            self.start_shadow(path)

    def start_shadow(self, path: str | None) -> None:
        if self.closed:
            return
        self.tile.start_button.setEnabled(False)
        self.w.report("model", f"loading {path or 'the built-in model'} to run in shadow")
        self.w.tasks.run(self.w.station.start_shadow, path, on_done=self._started, on_error=self._refused)

    def _started(self, runner: Any) -> None:
        self.w.report("model", f"{runner.name} runs in shadow on {runner.share:.0%} of the frames")
        self.show_live()

    def _refused(self, e: BaseException) -> None:
        self.tile.start_button.setEnabled(True)
        self.w.report("error", f"the shadow model cannot run: {e}")

    def stop_shadow(self) -> None:
        if self.closed:
            return
        self.tile.stop_button.setEnabled(False)
        self.w.tasks.run(self.w.station.stop_shadow, on_done=self._stopped)

    def _stopped(self, snap: dict[str, Any] | None) -> None:
        if snap is not None:
            self._shadow_snap = {**snap, "judged": self.w.station.field.shadow_judged(), "running": False}
        self.tile.show_shadow(self._shadow_snap)


def install(window: Any) -> AccuracyView:
    """The Field accuracy dock, tabbed with the drift dock."""
    view = AccuracyView(window)
    window.accuracy = view
    dock = window._dock("Field accuracy", "accuracyDock", view.tile, QtCore.Qt.DockWidgetArea.RightDockWidgetArea,
                        views=("engineer",))
    window.tabifyDockWidget(window.dock_drift, dock)
    window.dock_drift.raise_()
    window.dock_accuracy = dock
    return view
