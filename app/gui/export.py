"""The "Export feedback bundle…" action (Ctrl+E) in the Tools menu: the dialog, with the work off the GUI thread.

Counting (the preview) and writing run on Python threads of their own; their results come back to the GUI
thread through the window's task runner (the workers never call into Qt), so the window never waits on the disk.
The dialog offers the classes of the model the station runs.
A new preview request while one is counting is kept and run next (only the newest). Cancel sets an event the
export checks between files.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from engine.datasets.bundle import BundleError, Cancelled, ExportOptions, SplitRule, export_bundle, preview
from engine.datasets.bundle.export import stored_span
from engine.core.config import station_id
from app.gui import files
from app.gui.host import StationWindow
from widgets.export_dialog import ExportDialog


class ExportController(QtCore.QObject):
    def __init__(self, window: StationWindow) -> None:
        super().__init__(window)  # type: ignore[arg-type]
        self.window = window
        self.config: dict[str, Any] = window.config
        self.data_dir = Path(window.data_dir)
        self.dialog: ExportDialog | None = None
        self.relay = window.tasks  # the workers' results, delivered on the GUI thread
        self._cancel = threading.Event()
        self._preview_thread: threading.Thread | None = None
        self._pending: ExportOptions | None = None
        self._export_thread: threading.Thread | None = None
        self.last_result: Path | None = None
        app = QtWidgets.QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

    # ------------------------------------------------------------------ the dialog

    def open(self) -> ExportDialog:
        if self.dialog is not None and self.dialog.classes != list(self.window.station.classes) and not self.busy:
            self.dialog.deleteLater()  # another model runs now: its classes
            self.dialog = None
        if self.dialog is None:
            cfg = self.config.get("export", {})
            classes = list(self.window.station.classes)
            stamp = time.strftime("%Y%m%d-%H%M", time.gmtime())
            default_out = Path.home() / f"feedback-{station_id(self.config)}-{stamp}"
            self.dialog = ExportDialog(classes, float(cfg.get("replay_share", 0.1)), int(cfg.get("replay_seed", 0)),
                                       None, str(default_out), self.window,  # type: ignore[arg-type]
                                       split_rule=SplitRule.from_config(cfg))
            self.dialog.options_changed.connect(self.request_preview)
            self.dialog.export_requested.connect(self.start_export)
            self.dialog.cancel_requested.connect(self.cancel)
            self.dialog.browse_requested.connect(self._browse)
            dialog = self.dialog
            # The stored frames' span is a database read: on the runner, shown when it arrives.
            self.relay.run(stored_span, self.data_dir, on_error=lambda e: None,
                           on_done=lambda span, d=dialog: d.set_span(span) if self.dialog is d else None)
        self.dialog.show()
        self.dialog.raise_()
        self.dialog.activateWindow()
        self.dialog.refresh()
        return self.dialog

    def _browse(self) -> None:
        assert self.dialog is not None
        path, _ = files.save_file_name(
            self.dialog, "Save the feedback bundle as", self.dialog.path.text(), "",
            options=files.Option.DontConfirmOverwrite)
        if path:
            self.dialog.set_output(path)

    # ------------------------------------------------------------------ preview, off the GUI thread

    def request_preview(self, options: ExportOptions | str) -> None:
        if self.dialog is None:
            return
        if isinstance(options, str):
            self.dialog.show_preview(None, options[0].upper() + options[1:] + ".")
            return
        if self._preview_thread is not None and self._preview_thread.is_alive():
            self._pending = options
            return
        self._preview_thread = threading.Thread(target=self._count, args=(options,), name="bundle-preview",
                                                daemon=True)
        self._preview_thread.start()

    def _count(self, options: ExportOptions) -> None:
        try:
            counts = preview(self.data_dir, options)
            self.relay.post(self._preview_ready, counts, None)
        except BundleError as e:
            self.relay.post(self._preview_ready, None, str(e)[0].upper() + str(e)[1:] + ".")
        except Exception as e:  # a damaged database: say so in the dialog, never crash the window
            self.relay.post(self._preview_ready, None, f"The store cannot be read: {e}")

    def _preview_ready(self, counts: dict[str, Any] | None, error: str | None) -> None:
        if self.dialog is not None:
            self.dialog.show_preview(counts, error)
        if self._pending is not None:
            pending, self._pending = self._pending, None
            if self._preview_thread is not None:
                self._preview_thread.join(5)
            self.request_preview(pending)

    # ------------------------------------------------------------------ export, off the GUI thread

    def start_export(self, options: ExportOptions, path: str) -> None:
        if self._export_thread is not None and self._export_thread.is_alive():
            return
        auth = getattr(self.window, "auth", None)
        if auth is not None and not auth.sign("approved", "export", obj=str(path), label="Export feedback bundle"):
            return  # a signed station: the export is signed with the PIN again, or not done
        self._cancel.clear()
        if self.dialog is not None:
            self.dialog.set_running(True)
        cfg = self.config.get("export", {})
        self._export_thread = threading.Thread(
            target=self._write, args=(options, Path(path).expanduser(), int(cfg.get("threads", 2)),
                                      bool(cfg.get("link_images", False))),
            name="bundle-export", daemon=True)
        self._export_thread.start()

    def _write(self, options: ExportOptions, out: Path, threads: int, link: bool) -> None:
        try:
            res = export_bundle(self.data_dir, out, options, station_id(self.config), progress=self._post_progress,
                                cancel=self._cancel, threads=threads, link_images=link)
        except Cancelled:
            self.relay.post(self._finished, False, "Cancelled: nothing was written.", None)
        except BundleError as e:
            self.relay.post(self._finished, False, str(e)[0].upper() + str(e)[1:] + ".", None)
        except Exception as e:
            self.relay.post(self._finished, False, f"The export failed: {type(e).__name__}: {e}", None)
        else:
            c = res.counts
            self.relay.post(self._finished, True, f"Saved {res.path}: {c['images']} images, "
                                                  f"{sum(c['boxes_by_class'].values())} boxes, {c['decisions']} "
                                                  f"decisions in {res.seconds:.1f} s.", res.path)

    def _post_progress(self, done: int, total: int, stage: str) -> None:
        self.relay.post(self._progress, done, total, stage)

    def _progress(self, done: int, total: int, stage: str) -> None:
        if self.dialog is not None and self.dialog.running:
            self.dialog.set_progress(done, total, stage)

    def _finished(self, ok: bool, message: str, path: Path | None) -> None:
        if ok:
            self.last_result = path
        if self.dialog is not None:
            self.dialog.finish(ok, message)

    def cancel(self) -> None:
        self._cancel.set()
        if self.dialog is not None:
            self.dialog.status.setText("Cancelling…")

    @property
    def busy(self) -> bool:
        return any(t is not None and t.is_alive() for t in (self._export_thread, self._preview_thread))

    def shutdown(self) -> None:
        """Cancel a running export and wait for the workers (the temporary is removed on the way out)."""
        self._cancel.set()
        self._pending = None
        for t in (self._export_thread, self._preview_thread):
            if t is not None:
                t.join(30)


def install(window: Any) -> ExportController:
    """Add "Export feedback bundle…" (Ctrl+E) to the window's Tools menu."""
    controller = ExportController(window)
    action = QtGui.QAction("Export feedback bundle…", window)
    action.setObjectName("exportBundleAction")
    action.setProperty("permission", "export")
    action.setShortcut(QtGui.QKeySequence("Ctrl+E"))
    action.setToolTip("Write reviewed frames, corrected truth and decisions as a bundle for retraining (Ctrl+E)")
    action.triggered.connect(lambda *_: controller.open())
    window.addAction(action)
    window.tools_menu.addAction(action)  # type: ignore[attr-defined]
    window.export_controller = controller  # type: ignore[attr-defined]
    window.act_export_bundle = action  # type: ignore[attr-defined]
    return controller
