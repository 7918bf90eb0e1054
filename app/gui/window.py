"""The station's main window: a shell over :class:`engine.runtime.station.Station`.

The window lays out the views, turns the widgets' intents into calls on the station, and shows what the station
announces. It keeps no state of its own but its layout. The station's worker-thread announcements reach the
GUI thread through the window's one task runner (``self.tasks``); the newest frame is drawn by the display
timer (``app.gui.display``). The review wiring is in ``app.gui.review_view``, the drift dock's in
``app.gui.drift_view``, the actions in ``app.gui.actions``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from app.gui import accuracy as accuracy_ui
from app.gui import actions, files
from app.gui import agreement as agreement_ui
from app.gui import auth as auth_ui
from app.gui import export as export_ui
from app.gui import models as models_ui
from app.gui import readiness as readiness_ui
from app.gui import recalibration as recalibration_ui
from app.gui import training as training_ui
from app.gui.display import FrameDisplay, ShiftTally
from app.gui.drift_view import DriftView
from app.gui.review_view import ReviewView
from app.gui.roles import RoleViews
from app.gui.tasks import TaskRunner
from engine.monitoring.stats import SCALARS
from engine.runtime.pipeline import SourceEvent
from engine.runtime.station import ModelChoice, Station
from engine.simulation.scenarios import SCENARIOS
from engine.sources import SourceError
from widgets.drift_panel import DriftPanel
from widgets.drift_strip import DriftStrip
from widgets.live_view import LiveView
from widgets.model_panel import ModelControls
from widgets.review_panel import ReviewPanel
from widgets.source_panel import EventLog, SourceChooser, ValuesTable
from widgets.state_banner import ShiftCounts, StateBanner

SIM_PRESETS = [(f"Simulated line — {name}", f"sim://?seed=0&scenario={name}") for name in SCENARIOS]
CAMERA_PRESETS = [("USB camera 0", "cam://0"), ("USB camera 1", "cam://1")]
ERROR_KINDS = ("error", "unavailable", "failed", "model-error")
NARROW = 1280  # below this width the toolbar's buttons are icons only
WIDGET_SIZE_MAX = 16777215  # Qt's QWIDGETSIZE_MAX: no maximum


class MainWindow(QtWidgets.QMainWindow):
    def __init__(self, config: dict[str, Any], data_dir: Path, source: str | None = None,
                 autostart: bool = True, model: str | None = None, confidence: float | None = None,
                 session: Any = None, sign_in: bool = False) -> None:
        super().__init__()
        self.setObjectName("mainWindow")
        self.setWindowTitle("Inspection Station")
        self.config = config
        self.data_dir = data_dir
        self.tasks = TaskRunner(self)
        self.tasks.on_error = lambda e: self.report("error", str(e))
        self.station = Station(config, data_dir, uri=source, model=ModelChoice(model, confidence))
        self.show_truth = bool(config["display"]["show_ground_truth"])
        self.model_controls = ModelControls(confidence=confidence or 0.5)
        self.model_controls.builtin_requested.connect(lambda: self.set_model(None))
        self.model_controls.browse_requested.connect(self.browse_model)
        self.model_controls.confidence_changed.connect(self.station.set_confidence)

        self.live = LiveView()
        self.banner = StateBanner()
        self.counts = ShiftCounts()
        self.shift = ShiftTally()
        self.drift_strip = DriftStrip(list(SCALARS) + ["grid_drift", "uniformity_drift", "novel_rate"])
        self.setCentralWidget(self._make_centre())
        self.chooser = SourceChooser(SIM_PRESETS + CAMERA_PRESETS, current=self.station.uri)
        self.chooser.source_chosen.connect(self.open_source)
        self.chooser.browse_requested.connect(self._browse)
        self.events = EventLog()
        self.values = ValuesTable()
        self.drift = DriftPanel(list(SCALARS) + ["grid_drift", "uniformity_drift", "novel_rate"])
        self.review = ReviewPanel(self.station.classes, operator=self.station.operator)
        self.display = FrameDisplay(self, config["display"]["max_fps"])
        self.review_view = ReviewView(self)
        self.drift_view = DriftView(self)
        self.auth: Any = None
        self.source_alarm = ""  # what is wrong with the source, for the banner, until it recovers
        self._listen()
        actions.make_actions(self)
        self.settings = QtCore.QSettings(str(data_dir / "window.ini"), QtCore.QSettings.Format.IniFormat)
        self._make_toolbar(session, sign_in)
        self._make_docks()
        accuracy_ui.install(self)
        self._make_status()
        models_ui.install(self)
        self.models.panel.train_requested.connect(lambda: self.training.open())
        if getattr(self, "act_recalibrate", None) is not None:
            self.views.cockpit.addAction(self.act_recalibrate)  # the technician's one click to recalibrate
        self.drift_strip.open_detail.connect(self.views.open_drift)
        self.restore_layout()
        if self.auth is not None:
            self.auth.session_changed.connect(lambda: self.views.for_role(getattr(self.auth.session, "role", None)))
        self.display.timer.start()
        if autostart:
            self.open_source(self.station.uri)
        self.update_actions()

    # ------------------------------------------------------------------ construction

    def _listen(self) -> None:
        """What the station announces, shown here; worker-thread announcements through the task runner."""
        s, deliver = self.station, self.tasks.deliver
        s.events.connect(deliver(self._source_event))
        s.problem.connect(deliver(lambda message: self.report("error", message)))
        s.model_ready.connect(deliver(self._model_ready))
        s.classes_changed.connect(deliver(self._classes_changed))
        s.opened.connect(lambda description: self.lbl_source.setText(description))  # the GUI thread opens
        s.frame_done.connect(self.shift.count_frame)  # on the worker: two integers, read by the display timer

    def _make_centre(self) -> QtWidgets.QWidget:
        """The image with the state banner over it, and the shift's counts and the drift lights under it."""
        centre = QtWidgets.QWidget()
        centre.setObjectName("centre")
        lay = QtWidgets.QVBoxLayout(centre)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.setSpacing(2)
        lay.addWidget(self.banner)
        lay.addWidget(self.live, 1)
        lay.addWidget(self.counts)
        lay.addWidget(self.drift_strip)
        return centre

    def _make_toolbar(self, session: Any, sign_in: bool) -> None:
        tb = self.addToolBar("Line")
        tb.setObjectName("lineToolbar")
        tb.setIconSize(QtCore.QSize(32, 32))
        tb.setToolButtonStyle(QtCore.Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for a in (self.act_start, self.act_pause, self.act_stop):
            tb.addAction(a)
            tb.widgetForAction(a).setMinimumSize(48, 48)  # a finger's target on a touch screen
        tb.addSeparator()
        # Widgets go in as QWidgetActions: when the window is narrow the toolbar's extension button (») shows
        # what no longer fits; the same commands are in the Station and View menus too.
        tb.addWidget(self.chooser)
        tb.addSeparator()
        tb.addWidget(self.model_controls)
        tb.addSeparator()
        tb.addAction(self.act_truth)
        self.toolbar = tb
        menu = self.menuBar().addMenu("&Station")
        for a in (self.act_start, self.act_pause, self.act_stop, self.act_open, self.act_model,
                  self.act_conf_down, self.act_conf_up):
            menu.addAction(a)
        menu.addSeparator()
        menu.addAction(self.act_quit)
        view = self.menuBar().addMenu("&View")
        view.addAction(self.act_truth)
        view.addAction(self.act_full)
        self._view_menu = view
        self.views = RoleViews(self, view)  # before the features: their docks join views with views.assign
        # Technicians' and engineers' tools; each feature's app/gui/<feature>.py adds its actions here.
        self.tools_menu = self.menuBar().addMenu("&Tools")
        recalibration_ui.install(self)
        agreement_ui.install(self)
        export_ui.install(self)
        readiness_ui.install(self)
        training_ui.install(self)
        auth_ui.install(self, session, sign_in)

    def _dock(self, title: str, name: str, widget: QtWidgets.QWidget, area: QtCore.Qt.DockWidgetArea,
              views: tuple[str, ...] = ()) -> QtWidgets.QDockWidget:
        """A dock in View's menu, shown in ``views`` (``app.gui.roles``; e.g. ``("engineer",)``)."""
        d = QtWidgets.QDockWidget(title, self)
        d.setObjectName(name)
        d.setWidget(widget)
        self.addDockWidget(area, d)
        self._view_menu.addAction(d.toggleViewAction())
        self.views.assign(d, *views)
        return d

    def _make_docks(self) -> None:
        Right = QtCore.Qt.DockWidgetArea.RightDockWidgetArea
        self.dock_values = self._dock("Measurements", "measurementsDock", self.values, Right)
        self.dock_events = self._dock("Source events", "eventsDock", self.events, Right)
        self.dock_drift = self._dock("Drift", "driftDock", self.drift, Right)
        self.dock_review = self._dock("Review", "reviewDock", self.review, QtCore.Qt.DockWidgetArea.LeftDockWidgetArea)
        self.tabifyDockWidget(self.dock_values, self.dock_drift)
        self.dock_drift.raise_()

    def _make_status(self) -> None:
        sb = self.statusBar()
        self.lbl_state, self.lbl_source, self.lbl_fps = QtWidgets.QLabel(), QtWidgets.QLabel(), QtWidgets.QLabel()
        self.lbl_latency, self.lbl_drops, self.lbl_model = QtWidgets.QLabel(), QtWidgets.QLabel(), QtWidgets.QLabel()
        for name, lbl in (("stateLabel", self.lbl_state), ("modelStatus", self.lbl_model),
                          ("sourceLabel", self.lbl_source),
                          ("fpsLabel", self.lbl_fps), ("latencyLabel", self.lbl_latency),
                          ("dropsLabel", self.lbl_drops)):
            lbl.setObjectName(name)
            sb.addPermanentWidget(lbl)
        self.lbl_source.setText(self.station.uri)

    # ------------------------------------------------------------------ the line

    def open_source(self, uri: str) -> bool:
        """Switch to ``uri``. A URI that cannot be used is reported; the window carries on."""
        s = self.station
        if s.model.path == "none":
            self.model_controls.set_model("No model: watching the data only")
        elif s.detector is None:
            self.model_controls.set_model("Model: loading…")
        try:
            s.open_source(uri)
        except SourceError as e:
            self.report("error", str(e))
            return False
        self.chooser.set_current(uri)
        self.source_alarm = ""
        self.act_pause.setChecked(False)
        self.live.show_message("")
        self.update_actions()
        return True

    def start(self) -> None:
        if self.station.running:
            self.act_pause.setChecked(False)
            self.station.resume()
            self.update_actions()
        else:
            self.open_source(self.station.uri)

    def toggle_pause(self) -> None:
        """Pause or resume; the action's checked state says which."""
        if not self.station.running:
            self.act_pause.setChecked(False)
            return
        self.station.pause() if self.act_pause.isChecked() else self.station.resume()
        self.update_actions()

    def stop(self) -> None:
        self.station.stop()
        self.live.show_message("Stopped")
        self.update_actions()

    def update_actions(self) -> None:
        actions.update_actions(self)

    # ------------------------------------------------------------------ the model

    def set_model(self, path: str | None) -> None:
        """Use another model: the built-in one (``None``), a file, or ``"none"``. A model is first loaded and run on
        one frame in the background; only one that passes replaces the running model (the line restarts on it).
        One that fails is a sentence in the events and the status bar, and the current model goes on running."""
        if self.auth is not None and not self.auth.sign("approved", "model_changed", obj="detector model",
                                                        old=self.station.model.label, new=path or "built-in"):
            return
        self.station.follows_champion = False  # chosen by hand: the champion's changes no longer swap it
        if path == "none":
            self.station.set_model(path, restart=False)
            self.open_source(self.station.uri)
            return
        self.report("model", f"checking {path or 'the built-in model'}: loading it and running it on one frame")
        self.tasks.run(self.station.prove_model, path, on_done=lambda result: self._model_proven(path, result),
                       on_error=self._model_refused)

    def _model_proven(self, path: str | None, result: tuple[Any, str]) -> None:
        detector, line = result
        self.station.switch_model(path, detector, restart=False)
        self.report("model", f"now running {line}")
        self.open_source(self.station.uri)

    def _model_refused(self, error: BaseException) -> None:
        text = str(error) or type(error).__name__
        self.report("error", f"{text}; the current model goes on running")

    def browse_model(self) -> None:
        path, _ = files.open_file_name(
            self, "Model file", "", "Models (*.onnx *.pt2 *.torchscript *.pt *.ts);;All files (*)")
        if path:
            self.set_model(path)

    def _model_ready(self, detector: Any) -> None:
        if detector is not self.station.detector or not hasattr(detector, "device"):
            return  # a model for a line that has since changed
        conf = getattr(detector, "confidence", None)
        if conf is not None:
            with QtCore.QSignalBlocker(self.model_controls.confidence):
                self.model_controls.confidence.setValue(float(conf))
        self.model_controls.set_model(f"{detector.name} · {detector.device}")

    def _classes_changed(self, classes: tuple[str, ...]) -> None:
        self.review_view.classes_changed(classes)
        actions.make_class_actions(self, classes)
        if self.auth is not None:
            self.auth.apply()

    # ------------------------------------------------------------------ what happens on the line

    def _source_event(self, ev: SourceEvent) -> None:
        self.report(ev.kind, ev.message, ev.wall_time)
        if ev.kind == "model-error":
            self.model_controls.set_model("No model (see events)")
        if ev.kind in ("stalled", "frozen", "unavailable", "error"):
            self.live.show_message(f"Source {ev.kind}: reconnecting…")
            self.source_alarm = f"source {ev.kind}, reconnecting"
        elif ev.kind in ("recovered", "opened"):
            self.live.show_message("")
            self.source_alarm = ""
        elif ev.kind == "ended":
            self.live.show_message("The source has no more frames")
        elif ev.kind == "failed":
            self.live.show_message(ev.message)

    def report(self, kind: str, message: str, when: float | None = None) -> None:
        """One line in the event log; errors also in the status bar for ten seconds."""
        self.events.add(kind, message, when)
        if kind in ERROR_KINDS:
            self.statusBar().showMessage(message, 10000)

    # ------------------------------------------------------------------ view

    def _browse(self, kind: str) -> None:
        if kind == "folder":
            path = files.existing_directory(self, "Image folder")
            uri = f"folder://{path}" if path else ""
        else:
            path, _ = files.open_file_name(
                self, "Video file", "", "Videos (*.mp4 *.avi *.mkv *.mov *.m4v);;All files (*)")
            uri = f"file://{path}" if path else ""
        if uri:
            self.open_source(uri)
        else:
            self.chooser.set_current(self.station.uri)

    def toggle_truth(self) -> None:
        self.show_truth = self.act_truth.isChecked()
        self.display.redraw()  # the current frame again, with or without the truth

    def toggle_full_screen(self) -> None:
        self.showNormal() if self.isFullScreen() else self.showFullScreen()

    def restore_layout(self) -> None:
        """The window's size as it was left, and the view of the signed-in role (else the one last used), with
        that view's docks as they were left."""
        geometry = self.settings.value("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1400, 900)
        session = getattr(self.auth, "session", None)
        if session is not None:
            self.views.for_role(session.role)
        else:
            self.views.use(str(self.settings.value("layout/view", "operator")))

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:
        style = (QtCore.Qt.ToolButtonStyle.ToolButtonIconOnly if event.size().width() < NARROW
                 else QtCore.Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        if self.toolbar.toolButtonStyle() != style:
            self.toolbar.setToolButtonStyle(style)
            # Narrow: the source field gives up its width so that the model and confidence stay in view.
            narrow = style == QtCore.Qt.ToolButtonStyle.ToolButtonIconOnly
            self.chooser.setMaximumWidth(300 if narrow else WIDGET_SIZE_MAX)
            self.model_controls.label.setMaximumWidth(170 if narrow else WIDGET_SIZE_MAX)
        super().resizeEvent(event)

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        if not self.training.may_close():
            event.ignore()
            return
        self.settings.setValue("geometry", self.saveGeometry())
        self.views.save()
        self.settings.sync()
        self.display.stop()
        self.models.timer.stop()  # no more looks at the model registry
        self.training.shutdown()  # a training run stops, writing nothing
        self.station.close()  # the line stops; the stores close, their last acknowledgements posted
        self.tasks.shutdown()  # running jobs end; what they and the stores posted is delivered
        super().closeEvent(event)
