"""Annotator agreement in the window: Tools > Annotator agreement… (Ctrl+Shift+A), Calibration exercise…
(Ctrl+Shift+G) and Blind re-review (Ctrl+Shift+B).

``install(window)`` adds both actions to ``window.tools_menu``. The dashboard's report is computed on a worker
thread (from the store, or from a CSV the engineer picks), so the line and the window keep running; the picture
of a disputed sample is read from the store's image folder when it is selected. The calibration exercise loads
the gold set (``[agreement] gold_set``, or the built-in one), scores the operator's answers with
:class:`engine.datasets.agreement.gold.CalibrationExercise`, keeps the result under ``<data dir>/calibration/`` and shows where
and why the answers differ.

Tools > Blind re-review (Ctrl+Shift+B) puts the oldest stored frame that is due for a blind re-review by the
station's operator (the signed-in badge, or the name typed in the review dock) (``engine.review.recheck``: another operator's frame, or now and then their own)
before them in the review dock, with the model's boxes as first shown and no earlier verdict nor ground truth;
the decisions are stored as usual, with ``queue_reason`` ``recheck-inter`` or ``recheck-intra``. Finding the
frame and reading its picture run on the window's task runner, off the GUI thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
from PySide6 import QtCore, QtGui, QtWidgets

from app.gui import files
from app.gui.host import StationWindow
from app.gui.tasks import Relay, Worker
from widgets.agreement_dashboard import AgreementDashboard
from widgets.calibration_exercise import CalibrationExerciseDialog, ExerciseItem

DASHBOARD_SHORTCUT = "Ctrl+Shift+A"
EXERCISE_SHORTCUT = "Ctrl+Shift+G"
RECHECK_SHORTCUT = "Ctrl+Shift+B"


class ReportWorker(Worker):
    """One agreement report off the GUI thread: the result, or one sentence of failure."""

    succeeded = QtCore.Signal(object)
    failed = QtCore.Signal(str)

    def __init__(self, data_dir: Path, config: dict[str, Any], runner: Relay, csv: Path | None = None,
                 parent: QtCore.QObject | None = None) -> None:
        super().__init__("report-agreement", runner, parent)
        self.data_dir, self.config, self.csv = data_dir, config, csv

    def run(self) -> None:
        from engine.datasets.agreement.ratings import read_csv, report_from_store
        from engine.datasets.agreement.report import AgreementSettings, report

        try:
            if self.csv is not None:
                rep = report(read_csv(self.csv), AgreementSettings.from_config(self.config))
                rep["source"] = f"csv:{self.csv.name}"
            else:
                rep = report_from_store(self.data_dir, self.config)
        except (ValueError, OSError, UnicodeDecodeError) as e:
            self.emit_later(self.failed, str(e))
        except Exception as e:  # a report must never take the station down
            self.emit_later(self.failed, f"the agreement report failed: {type(e).__name__}: {e}")
        else:
            self.emit_later(self.succeeded, rep)


class AgreementTools(QtCore.QObject):
    def __init__(self, window: StationWindow) -> None:
        super().__init__(window)  # type: ignore[arg-type]
        self.window = window
        self._recheck_pending = False
        self.worker: ReportWorker | None = None
        self.dialog: QtWidgets.QDialog | None = None
        self.dashboard: AgreementDashboard | None = None
        self.exercise: CalibrationExerciseDialog | None = None
        self.last_result: dict[str, Any] | None = None
        self.last_saved: Path | None = None
        self.last_recheck: Any = None  # the last blind re-review task looked up (None: none was due)

        def action(text: str, shortcut: str, slot: Any, tip: str, permission: str) -> QtGui.QAction:
            a = QtGui.QAction(text, window)
            a.setShortcut(QtGui.QKeySequence(shortcut))
            a.setToolTip(f"{tip} ({a.shortcut().toString()})")
            a.setProperty("permission", permission)
            a.triggered.connect(slot)
            window.addAction(a)
            window.tools_menu.addAction(a)
            return a

        self.act_dashboard = action("Annotator agreement…", DASHBOARD_SHORTCUT, self.open_dashboard,
                                    "How far operators agree: pairwise kappa, trends, disputed samples", "agreement")
        self.act_exercise = action("Calibration exercise…", EXERCISE_SHORTCUT, self.open_exercise,
                                   "Label the gold set and see where and why you differ from it", "review")
        self.act_recheck = action("Blind re-review", RECHECK_SHORTCUT, self.start_recheck,
                                  "Review again a stored frame due for a blind re-review, earlier verdicts hidden",
                                  "review")

    # ------------------------------------------------------------------ blind re-review

    def start_recheck(self, quiet: bool = False, otherwise: Any = None) -> bool:
        """Look for the next frame due for a blind re-review by the station's operator (on the task runner) and
        hold it in the review dock; when none is due call ``otherwise()``, or say so unless ``quiet`` (the review
        queue's **N** asks this first, each time). False when a look is already under way."""
        from engine.review.recheck import RecheckSettings, next_task

        w = self.window
        if self._recheck_pending or w.station.store is None:
            return False
        operator = w.station.operator
        self._recheck_pending = True
        w.tasks.run(next_task, Path(w.data_dir), operator, RecheckSettings.from_config(w.config),
                    on_done=lambda task: self._recheck_found(task, operator, quiet, otherwise),
                    on_error=self._recheck_failed)
        return True

    def _recheck_found(self, task: Any, operator: str, quiet: bool, otherwise: Any) -> None:
        self._recheck_pending = False
        w = self.window
        if task is not None:
            w.station.review.hold(task, task.frame)  # the live view stops drawing while a frame is held
        elif otherwise is not None:
            otherwise()
        elif not quiet:
            w.review.status.setText(f"No stored frame is due for a blind re-review by {operator}.")
        self.last_recheck = task

    def _recheck_failed(self, e: BaseException) -> None:
        self._recheck_pending = False
        self.window.review.show_failed(str(e))

    # ------------------------------------------------------------------ the dashboard

    def open_dashboard(self) -> AgreementDashboard:
        if self.dialog is None:
            dlg = QtWidgets.QDialog(self.window)
            dlg.setObjectName("agreementDialog")
            dlg.setWindowTitle("Annotator agreement")
            self.dashboard = AgreementDashboard()
            self.dashboard.refresh_requested.connect(lambda: self.refresh())
            self.dashboard.csv_requested.connect(self.ask_csv)
            self.dashboard.disputed_selected.connect(self.show_disputed)
            QtWidgets.QVBoxLayout(dlg).addWidget(self.dashboard)
            dlg.resize(1000, 700)
            self.dialog = dlg
        self.dialog.show()
        self.dialog.raise_()
        self.refresh()
        assert self.dashboard is not None
        return self.dashboard

    def refresh(self, csv: Path | None = None) -> ReportWorker | None:
        if self.worker is not None or self.dashboard is None:
            return None
        self.dashboard.show_busy("Computing the agreement report…")
        w = ReportWorker(Path(self.window.data_dir), self.window.config, self.window.tasks, csv, self)
        w.succeeded.connect(self.dashboard.set_report)
        w.failed.connect(lambda m: self.dashboard.show_error(m[0].upper() + m[1:] + ".") if self.dashboard else None)
        w.finished.connect(self._cleanup)
        self.worker = w
        w.start()
        return w

    def _cleanup(self) -> None:
        if self.worker is not None:
            self.worker.deleteLater()
        self.worker = None

    def ask_csv(self) -> None:
        path, _ = files.open_file_name(self.window, "Labels to check (item,rater,label)",
                                                        str(self.window.data_dir), "CSV (*.csv)")
        if path:
            self.refresh(Path(path))

    def show_disputed(self, d: dict[str, Any]) -> None:
        """The stored picture of a disputed sample, read and cut on the task runner, shown when it is ready."""
        if self.dashboard is None:
            return
        caption = f"{d.get('source', '')} frame {d.get('sequence', '')}"
        if not d.get("image_sha256"):
            self.dashboard.show_preview(None, caption="No picture: these ratings came from a CSV.")
            return
        self.window.tasks.run(_disputed_picture, Path(self.window.data_dir), d,
                              on_done=lambda picture: self._show_picture(picture, caption))

    def _show_picture(self, picture: tuple[Any, Any] | None, caption: str) -> None:
        if self.dashboard is None:
            return
        if picture is None:
            self.dashboard.show_preview(None, caption="The picture of this frame is no longer stored.")
            return
        self.dashboard.show_preview(picture[0], picture[1], caption)

    # ------------------------------------------------------------------ the calibration exercise

    def open_exercise(self) -> CalibrationExerciseDialog | None:
        from engine.datasets.agreement.gold import load_gold_set

        folder = (self.window.config.get("agreement", {}).get("gold_set") or "").strip()
        try:
            gold = load_gold_set(Path(folder) if folder else None)
            items = []
            for it in gold.items:
                img = cv2.imread(str(gold.image_path(it)), cv2.IMREAD_COLOR)
                if img is None:
                    raise ValueError(f"the gold picture {it.image} cannot be read")
                items.append(ExerciseItem(it.id, cv2.cvtColor(img, cv2.COLOR_BGR2RGB), it.box))
        except ValueError as e:
            QtWidgets.QMessageBox.warning(self.window, "Calibration exercise", str(e))
            return None
        operator = self.window.station.operator
        dlg = CalibrationExerciseDialog(items, gold.choices, operator, self.window)
        dlg.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.completed.connect(lambda op, answers, g=gold, d=dlg: self._score(g, op, answers, d))
        dlg.destroyed.connect(lambda *_: setattr(self, "exercise", None))
        self.exercise = dlg
        dlg.show()
        return dlg

    def _score(self, gold: Any, operator: str, answers: dict[str, str], dlg: CalibrationExerciseDialog) -> None:
        from engine.datasets.agreement.gold import CalibrationExercise, save_calibration

        ex = CalibrationExercise(gold, operator)
        for item_id, label in answers.items():
            ex.answer(item_id, label)
        result = ex.result()
        self.last_result = result
        try:
            self.last_saved = save_calibration(Path(self.window.data_dir), result)
        except OSError as e:
            QtWidgets.QMessageBox.warning(dlg, "Calibration exercise", f"The result could not be kept: {e}")
        dlg.show_result(result)


def _disputed_picture(data_dir: Path, d: dict[str, Any]) -> tuple[Any, Any] | None:
    """The neighbourhood of a disputed detection in its stored picture (RGB) and the box in it; None when gone."""
    sha = d["image_sha256"]
    image = cv2.imread(str(data_dir / "images" / sha[:2] / f"{sha}.png"), cv2.IMREAD_COLOR)
    if image is None:
        return None
    box = tuple(d["box"]) if d.get("box") else None
    if box is not None:  # the neighbourhood of the detection, where the dispute is, not the whole frame
        x0, y0, x1, y1 = box
        h, w = image.shape[:2]
        half = max(80.0, 1.5 * max(x1 - x0, y1 - y0))
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        l, t = int(max(0, cx - half)), int(max(0, cy - half))
        r, b = int(min(w, cx + half)), int(min(h, cy + half))
        image = image[t:b, l:r]
        box = (x0 - l, y0 - t, x1 - l, y1 - t)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), box


def install(window: Any) -> AgreementTools:
    """Add "Annotator agreement…", "Calibration exercise…" and "Blind re-review" to the window's Tools menu."""
    window.agreement_tools = AgreementTools(window)
    return window.agreement_tools
