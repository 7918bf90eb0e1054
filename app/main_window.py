"""The station's main window: live view, source control, status, docks.

The pipeline runs on its own worker thread. A timer on the main thread, at the
display's rate, draws only the newest result and drains the source events: the
window never waits on a camera, and nothing queues behind a slow redraw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
from PySide6 import QtCore, QtGui, QtWidgets

from engine.interfaces import BasicStats
from engine.pipeline import Pipeline, PipelineConfig
from engine.simulator import SCENARIOS
from engine.sources import SourceError, open_source
from widgets.live_view import LiveView
from widgets.source_panel import EventLog, SourceChooser, ValuesTable

SIM_PRESETS = [(f"Simulated line — {name}", f"sim://?seed=0&scenario={name}") for name in SCENARIOS]
CAMERA_PRESETS = [("USB camera 0", "cam://0"), ("USB camera 1", "cam://1")]


class MainWindow(QtWidgets.QMainWindow):
    def __init__(self, config: dict[str, Any], data_dir: Path, source: str | None = None,
                 autostart: bool = True) -> None:
        super().__init__()
        self.setObjectName("mainWindow")
        self.setWindowTitle("Inspection Station")
        self.config = config
        self.data_dir = data_dir
        self.pipeline: Pipeline | None = None
        self._retired: list[Pipeline] = []  # stopped pipelines whose thread has not finished yet
        self._last_id = -1
        self._uri = source or config["source"]["uri"]
        self.show_truth = bool(config["display"]["show_ground_truth"])

        self.live = LiveView()
        self.setCentralWidget(self.live)
        self.chooser = SourceChooser(SIM_PRESETS + CAMERA_PRESETS, current=self._uri)
        self.chooser.source_chosen.connect(self.open_source)
        self.chooser.browse_requested.connect(self._browse)
        self.events = EventLog()
        self.values = ValuesTable()
        self._make_actions()
        self._make_toolbar()
        self._make_docks()
        self._make_status()

        self.timer = QtCore.QTimer(self)
        self.timer.setObjectName("displayTimer")
        self.timer.setInterval(max(5, int(1000 / max(1.0, config["display"]["max_fps"]))))
        self.timer.timeout.connect(self._tick)
        self.settings = QtCore.QSettings(str(data_dir / "window.ini"), QtCore.QSettings.Format.IniFormat)
        self._restore_layout()
        self.timer.start()
        if autostart:
            self.open_source(self._uri)
        self._update_actions()

    # ------------------------------------------------------------------ construction

    def _action(self, text: str, shortcut: str | QtGui.QKeySequence.StandardKey | None, slot,
                icon: QtWidgets.QStyle.StandardPixmap | None = None, tip: str = "",
                checkable: bool = False) -> QtGui.QAction:
        a = QtGui.QAction(text, self)
        if shortcut is not None:
            a.setShortcut(QtGui.QKeySequence(shortcut))
        if icon is not None:
            a.setIcon(self.style().standardIcon(icon))
        a.setCheckable(checkable)
        a.setToolTip(f"{tip or text} ({a.shortcut().toString()})" if shortcut is not None else (tip or text))
        a.triggered.connect(slot)
        self.addAction(a)
        return a

    def _make_actions(self) -> None:
        SP = QtWidgets.QStyle.StandardPixmap
        self.act_start = self._action("Start", "F5", self.start, SP.SP_MediaPlay, "Start watching the source")
        self.act_pause = self._action("Pause", "Space", self.toggle_pause, SP.SP_MediaPause,
                                      "Pause or resume the live view", checkable=True)
        self.act_stop = self._action("Stop", "Shift+F5", self.stop, SP.SP_MediaStop, "Stop and release the source")
        self.act_open = self._action("Choose source", "Ctrl+O",
                                     lambda: self.chooser.combo.setFocus(), None, "Type or pick a source")
        self.act_truth = self._action("Ground truth", "G", self._toggle_truth, None,
                                      "Show the simulator's true defects as dashed boxes", checkable=True)
        self.act_truth.setChecked(self.show_truth)
        self.act_full = self._action("Full screen", "F11", self._toggle_full_screen, None)
        self.act_quit = self._action("Quit", "Ctrl+Q", self.close, None)

    def _make_toolbar(self) -> None:
        tb = self.addToolBar("Line")
        tb.setObjectName("lineToolbar")
        tb.setIconSize(QtCore.QSize(32, 32))
        tb.setToolButtonStyle(QtCore.Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for a in (self.act_start, self.act_pause, self.act_stop):
            tb.addAction(a)
        tb.addSeparator()
        tb.addWidget(self.chooser)
        tb.addSeparator()
        tb.addAction(self.act_truth)
        menu = self.menuBar().addMenu("&Station")
        for a in (self.act_start, self.act_pause, self.act_stop, self.act_open):
            menu.addAction(a)
        menu.addSeparator()
        menu.addAction(self.act_quit)
        view = self.menuBar().addMenu("&View")
        view.addAction(self.act_truth)
        view.addAction(self.act_full)
        self._view_menu = view

    def _dock(self, title: str, name: str, widget: QtWidgets.QWidget,
              area: QtCore.Qt.DockWidgetArea) -> QtWidgets.QDockWidget:
        d = QtWidgets.QDockWidget(title, self)
        d.setObjectName(name)
        d.setWidget(widget)
        self.addDockWidget(area, d)
        self._view_menu.addAction(d.toggleViewAction())
        return d

    def _make_docks(self) -> None:
        Right = QtCore.Qt.DockWidgetArea.RightDockWidgetArea
        self.dock_values = self._dock("Measurements", "measurementsDock", self.values, Right)
        self.dock_events = self._dock("Source events", "eventsDock", self.events, Right)

    def _make_status(self) -> None:
        sb = self.statusBar()
        self.lbl_state = QtWidgets.QLabel()
        self.lbl_source = QtWidgets.QLabel()
        self.lbl_fps = QtWidgets.QLabel()
        self.lbl_latency = QtWidgets.QLabel()
        self.lbl_drops = QtWidgets.QLabel()
        for name, lbl in (("stateLabel", self.lbl_state), ("sourceLabel", self.lbl_source),
                          ("fpsLabel", self.lbl_fps), ("latencyLabel", self.lbl_latency),
                          ("dropsLabel", self.lbl_drops)):
            lbl.setObjectName(name)
            sb.addPermanentWidget(lbl)
        self.lbl_source.setText(self._uri)

    # ------------------------------------------------------------------ control

    def open_source(self, uri: str) -> bool:
        """Switch to ``uri``. A URI that cannot be used is reported; the window carries on."""
        try:
            source = open_source(uri, realtime=True)
        except SourceError as e:
            self._report("error", str(e))
            return False
        self._retire()
        self._uri = uri
        self.chooser.set_current(uri)
        cfg, pc = self.config, self.config["pipeline"]
        pcfg = PipelineConfig(read_timeout_s=cfg["source"]["read_timeout_s"], retry_initial_s=pc["retry_initial_s"],
                              retry_max_s=pc["retry_max_s"], frozen_after=pc["frozen_after"])
        self.pipeline = Pipeline(source, measurers=[BasicStats()], config=pcfg)
        self.pipeline.start()
        self.act_pause.setChecked(False)
        self.lbl_source.setText(source.describe())
        self.live.show_message("")
        self._update_actions()
        return True

    def start(self) -> None:
        p = self.pipeline
        if p is not None and p.running:
            self.act_pause.setChecked(False)
            p.resume()
            self._update_actions()
            return
        self.open_source(self._uri)

    def toggle_pause(self) -> None:
        """Pause or resume; the action's checked state says which."""
        p = self.pipeline
        if p is None or not p.running:
            self.act_pause.setChecked(False)
            return
        p.pause() if self.act_pause.isChecked() else p.resume()
        self._update_actions()

    def stop(self) -> None:
        self._retire()
        self.live.show_message("Stopped")
        self._update_actions()

    def _retire(self) -> None:
        """Stop the current pipeline without waiting for its thread (a stuck camera must not freeze us)."""
        if self.pipeline is not None:
            self.pipeline.stop()
            self._retired.append(self.pipeline)
            self.pipeline = None
        self._retired = [p for p in self._retired if p.running]

    def _browse(self, kind: str) -> None:
        if kind == "folder":
            path = QtWidgets.QFileDialog.getExistingDirectory(self, "Image folder")
            uri = f"folder://{path}" if path else ""
        else:
            path, _ = QtWidgets.QFileDialog.getOpenFileName(
                self, "Video file", "", "Videos (*.mp4 *.avi *.mkv *.mov *.m4v);;All files (*)")
            uri = f"file://{path}" if path else ""
        if uri:
            self.open_source(uri)
        else:
            self.chooser.set_current(self._uri)

    def _toggle_truth(self) -> None:
        self.show_truth = self.act_truth.isChecked()
        self._last_id = -1  # redraw the current frame with or without the truth

    def _toggle_full_screen(self) -> None:
        self.showNormal() if self.isFullScreen() else self.showFullScreen()

    def _update_actions(self) -> None:
        running = self.pipeline is not None and self.pipeline.running
        self.act_stop.setEnabled(running)
        self.act_pause.setEnabled(running)
        self.act_start.setEnabled(not running or self.act_pause.isChecked())

    # ------------------------------------------------------------------ display

    def _tick(self) -> None:
        p = self.pipeline
        self._retired = [r for r in self._retired if r.running]
        if p is None:
            self.lbl_state.setText("Stopped")
            return
        for ev in p.drain_events():
            self._report(ev.kind, ev.message, ev.wall_time)
            if ev.kind in ("stalled", "frozen", "unavailable", "error"):
                self.live.show_message(f"Source {ev.kind}: reconnecting…")
            elif ev.kind == "recovered":
                self.live.show_message("")
            elif ev.kind == "ended":
                self.live.show_message("The source has no more frames")
            elif ev.kind == "failed":
                self.live.show_message(ev.message)
        latest_id, result = p.latest()
        if result is not None and latest_id != self._last_id:
            self._last_id = latest_id
            frame = result.frame
            rgb = cv2.cvtColor(frame.image, cv2.COLOR_BGR2RGB) if frame.channel_order == "BGR" else frame.image
            dets = result.detections.boxes if result.detections is not None else ()
            truth = frame.ground_truth.boxes if (self.show_truth and frame.ground_truth is not None) else ()
            self.live.show_frame(rgb, dets, truth)
            self.values.set_values({"sequence": frame.sequence, "defects (truth)": len(truth) if truth else "—",
                                    **result.measurements})
        st = p.stats
        self.lbl_state.setText(p.state.value.capitalize())
        self.lbl_fps.setText(f"{st.fps:5.1f} fps")
        self.lbl_latency.setText(f"latency {st.latency_ms:5.1f} ms")
        self.lbl_drops.setText(f"drops {st.dropped}")
        if not p.running:
            self._update_actions()

    def _report(self, kind: str, message: str, when: float | None = None) -> None:
        self.events.add(kind, message, when)
        if kind in ("error", "unavailable", "failed"):
            self.statusBar().showMessage(message, 10000)

    # ------------------------------------------------------------------ layout

    def _restore_layout(self) -> None:
        geometry = self.settings.value("geometry")
        state = self.settings.value("windowState")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1400, 900)
        if state is not None:
            self.restoreState(state)

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 (Qt naming)
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("windowState", self.saveState())
        self.settings.sync()
        self.timer.stop()
        self._retire()
        for p in self._retired:
            p.join(timeout=3.0)
        super().closeEvent(event)
