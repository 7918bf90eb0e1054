"""The station's main window: live view, source control, status, docks.

The pipeline runs on its own worker thread. A timer on the main thread, at the
display's rate, draws only the newest result and drains the source events: the
window never waits on a camera, and nothing queues behind a slow redraw.
"""

from __future__ import annotations

import getpass
import queue
from collections import deque
from pathlib import Path
from typing import Any

import cv2
from PySide6 import QtCore, QtGui, QtWidgets

from app.gui import agreement as agreement_ui

from app.gui import auth as auth_ui

from app.gui import export as export_ui

from app.gui import readiness as readiness_ui

from app.gui import recalibration as recalibration_ui
from engine.monitoring.drift import DriftMonitor, StatsMeasurer, measurers_for
from engine.review.feedback import Ack, Decision, FeedbackError, FeedbackStore, FrameForReview
from engine.runtime.pipeline import Pipeline, PipelineConfig
from engine.monitoring.reference import ReferenceError
from engine.review.router import ReviewRouter, RouterConfig
from engine.simulation.defects import DEFECT_CLASSES
from engine.simulation.scenarios import SCENARIOS
from engine.sources import SourceError, open_source
from engine.monitoring.stats import SCALARS
from engine.monitoring.trends import TrendStore, read_events, read_trend
from widgets.drift_panel import DriftPanel
from widgets.live_view import LiveView
from widgets.model_panel import ModelControls
from widgets.review_panel import ReviewPanel
from widgets.source_panel import EventLog, SourceChooser, ValuesTable

SIM_PRESETS = [(f"Simulated line — {name}", f"sim://?seed=0&scenario={name}") for name in SCENARIOS]
CAMERA_PRESETS = [("USB camera 0", "cam://0"), ("USB camera 1", "cam://1")]


class MainWindow(QtWidgets.QMainWindow):
    def __init__(self, config: dict[str, Any], data_dir: Path, source: str | None = None,
                 autostart: bool = True, model: str | None = None, confidence: float | None = None,
                 session: Any = None, sign_in: bool = False) -> None:
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
        self._model_path: str | None = model  # None: the built-in model
        self._detector: Any = None  # the loaded model, reused across source changes
        self._confidence = confidence  # None: the model's own threshold
        self.model_controls = ModelControls(confidence=confidence or 0.5)
        self.model_controls.builtin_requested.connect(lambda: self.set_model(None))
        self.model_controls.browse_requested.connect(self._browse_model)
        self.model_controls.confidence_changed.connect(self._set_confidence)

        self.live = LiveView()
        self.setCentralWidget(self.live)
        self.chooser = SourceChooser(SIM_PRESETS + CAMERA_PRESETS, current=self._uri)
        self.chooser.source_chosen.connect(self.open_source)
        self.chooser.browse_requested.connect(self._browse)
        self.events = EventLog()
        self.values = ValuesTable()
        self.drift = DriftPanel(list(SCALARS) + ["grid_drift", "uniformity_drift", "novel_rate"])
        self._init_review()
        self.monitor: DriftMonitor | None = None
        self.trend_store: TrendStore | None = None
        self._batches_seen = 0
        self._history_loaded: set[str] = set()
        # Security (app/gui/auth.py): a signed-in session, or sign in at the lock screen; neither: no gating.
        self._auth_session, self._auth_sign_in, self.auth = session, sign_in, None
        self._make_actions()
        self._make_toolbar()
        self._make_docks()
        self._make_status()

        self.timer = QtCore.QTimer(self)
        self.timer.setObjectName("displayTimer")
        self.timer.setInterval(max(5, int(1000 / max(1.0, config["display"]["max_fps"]))))
        self.timer.timeout.connect(self._tick)
        self._ticks = 0
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
        self.act_model = self._action("Choose model…", "Ctrl+M", self._browse_model, None,
                                      "Run a .pt2 or TorchScript model of your own")
        self.act_conf_down = self._action("Lower confidence", "[", lambda: self.model_controls.step_confidence(-1),
                                          None)
        self.act_conf_up = self._action("Raise confidence", "]", lambda: self.model_controls.step_confidence(1),
                                        None)
        self._make_review_actions()
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
        tb.addWidget(self.model_controls)
        tb.addSeparator()
        tb.addAction(self.act_truth)
        menu = self.menuBar().addMenu("&Station")
        for a in (self.act_start, self.act_pause, self.act_stop, self.act_open, self.act_model):
            menu.addAction(a)
        menu.addSeparator()
        menu.addAction(self.act_quit)
        view = self.menuBar().addMenu("&View")
        view.addAction(self.act_truth)
        view.addAction(self.act_full)
        self._view_menu = view
        # Technicians' and engineers' tools; each feature's app/<feature>_ui.py adds its actions here.
        self.tools_menu = self.menuBar().addMenu("&Tools")
        recalibration_ui.install(self)
        agreement_ui.install(self)
        export_ui.install(self)
        readiness_ui.install(self)
        auth_ui.install(self)

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
        self.dock_drift = self._dock("Drift", "driftDock", self.drift, Right)
        self.dock_review = self._dock("Review", "reviewDock", self.review, QtCore.Qt.DockWidgetArea.LeftDockWidgetArea)
        self.tabifyDockWidget(self.dock_values, self.dock_drift)
        self.dock_drift.raise_()

    def _make_status(self) -> None:
        sb = self.statusBar()
        self.lbl_state = QtWidgets.QLabel()
        self.lbl_source = QtWidgets.QLabel()
        self.lbl_fps = QtWidgets.QLabel()
        self.lbl_latency = QtWidgets.QLabel()
        self.lbl_drops = QtWidgets.QLabel()
        self.lbl_model = QtWidgets.QLabel()
        for name, lbl in (("stateLabel", self.lbl_state), ("modelStatus", self.lbl_model),
                          ("sourceLabel", self.lbl_source),
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
        try:
            measurers = measurers_for(cfg, on_batch=self._on_batch, data_dir=self.data_dir)
        except ReferenceError as e:
            self._report("error", f"{e}; watching without drift measurement")
            measurers = [StatsMeasurer()]
        self._attach_monitor(next((m for m in measurers if isinstance(m, DriftMonitor)), None))
        detector = None if self._model_path == "none" else (self._detector or self._model_factory())
        if detector is None:
            self.model_controls.set_model("No model: watching the data only")
        self.pipeline = Pipeline(source, detector=detector, measurers=measurers,
                                 config=pcfg, sinks=[self._route])
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

    # ------------------------------------------------------------------ review

    def _init_review(self) -> None:
        self.review = ReviewPanel(DEFECT_CLASSES, operator=getpass.getuser())
        self.review.freeze_toggled.connect(self.toggle_freeze)
        self.review.next_queued.connect(self.review_next_queued)
        self.review.confirm.connect(lambda: self.decide("confirm"))
        self.review.reject.connect(lambda: self.decide("reject"))
        self.review.reclass.connect(self._class_chosen)
        self.review.draw_missed.connect(self._draw_missed)
        self.review.unsure.connect(lambda: self.decide("unsure"))
        self.review.undo.connect(self.undo)
        self.review.next_detection.connect(self.select_next)
        self.live.box_clicked.connect(self._box_clicked)
        self.live.box_drawn.connect(self._box_drawn)
        self.frozen: Any = None  # the FrameResult under review
        self.frozen_frame: FrameForReview | None = None
        self.selected: int | None = None
        self.states: dict[int, str] = {}
        self._draw_class = DEFECT_CLASSES[0]
        self._acks: queue.SimpleQueue = queue.SimpleQueue()  # from the store's writer to the main thread
        self._done: list[tuple[str, FrameForReview, int | None]] = []  # own decisions, newest last, for undo
        self.review_queue: deque = deque(maxlen=500)  # appended on the pipeline's worker
        self.router = ReviewRouter(RouterConfig())
        self.store: FeedbackStore | None = None
        try:
            self.store = FeedbackStore(self.data_dir)
        except FeedbackError as e:
            self.review.show_failed(f"{e}; decisions cannot be stored")

    def _make_review_actions(self) -> None:
        self.act_freeze = self._action("Freeze or resume", "F", self.toggle_freeze, None)
        self.act_queue = self._action("Next in review queue", "N", self.review_next_queued, None)
        self.act_confirm = self._action("Confirm detection", "C", lambda: self.decide("confirm"), None)
        self.act_reject = self._action("Reject detection", "X", lambda: self.decide("reject"), None)
        self.act_unsure = self._action("Unsure frame", "U", lambda: self.decide("unsure"), None)
        self.act_missed = self._action("Draw missed defect", "M", self.review.missed_button.toggle, None)
        self.act_undo = self._action("Undo last decision", "Ctrl+Z", self.undo, None)
        self.act_next_det = self._action("Next detection", "Tab", self.select_next, None)
        self.act_classes = [self._action(f"Class {name}", str(i + 1), lambda *_, n=name: self._class_chosen(n), None)
                            for i, name in enumerate(DEFECT_CLASSES)]

    def _route(self, result: Any) -> None:
        """On the pipeline's worker: set frames worth a human look aside, with the reason."""
        if self.store is None:
            return
        scores = [b.score or 0.0 for b in result.detections.boxes] if result.detections is not None else []
        why = self.router.reason(scores, result.measurements)
        if why is not None:
            self.review_queue.append((result, why))

    def toggle_freeze(self) -> None:
        if self.frozen is not None:
            self.resume_live()
        elif self.pipeline is not None:
            _, result = self.pipeline.latest()
            if result is not None:
                self.freeze(result, "operator")
        self.review.set_reviewing(self.frozen is not None, bool(self.frozen_frame and self.frozen_frame.detections))

    def review_next_queued(self) -> None:
        """N: a stored frame due for a blind re-review by this operator comes first, then the live queue."""
        tools = getattr(self, "agreement_tools", None)
        if tools is not None and tools.start_recheck(quiet=True) is not None:
            return
        if self.review_queue:
            result, why = self.review_queue.popleft()
            self.freeze(result, why)

    def freeze(self, result: Any, reason: str) -> None:
        """Hold ``result`` for review; the line keeps running behind it."""
        f = result.frame
        dets = tuple(result.detections.boxes) if result.detections is not None else ()
        stats = {k: v for k, v in result.measurements.items() if isinstance(v, (int, float, str))}
        self.frozen = result
        self.frozen_frame = FrameForReview(
            f.image, f.source_id, f.sequence, f.timestamp, dets, (result.detector or {}).get("name"),
            (result.detector or {}).get("device"), result.measurements.get("reference_id"), stats,
            f.ground_truth.to_dict() if f.ground_truth is not None else None, reason)
        if self.store is not None:
            self.store.keep_sample(self.frozen_frame)  # the image is durable before the first click
        self.states = {}
        self.selected = 0 if dets else None
        rgb = cv2.cvtColor(f.image, cv2.COLOR_BGR2RGB) if f.channel_order == "BGR" else f.image
        truth = f.ground_truth.boxes if (self.show_truth and f.ground_truth is not None) else ()
        self.live.show_frame(rgb, dets, truth, self.selected, self.states)
        self.live.show_message("")
        self.review.set_reviewing(True, bool(dets))
        self._review_status()

    def resume_live(self) -> None:
        self.frozen = self.frozen_frame = None
        self.selected = None
        self.states = {}
        self.live.set_draw_mode(False)
        self.review.set_reviewing(False)
        self.review.status.setText("Live. Freeze a frame (F) or take one from the queue (N) to review it.")
        self._last_id = -1

    def _review_status(self) -> None:
        fr = self.frozen_frame
        if fr is None:
            return
        n = len(fr.detections)
        head = f"Frame {fr.sequence} ({fr.queue_reason}). "
        if self.selected is not None and n:
            b = fr.detections[self.selected]
            score = f" {b.score:.2f}" if b.score is not None else ""
            head += f"Detection {self.selected + 1} of {n}: {b.class_name}{score}."
        elif n:
            head += f"All {n} detections decided."
        else:
            head += "No detections: draw any defect the model missed (M), or flag it (U)."
        self.review.status.setText(head)

    def select_next(self) -> None:
        fr = self.frozen_frame
        if fr is None or not fr.detections:
            return
        n = len(fr.detections)
        start = -1 if self.selected is None else self.selected
        for k in range(1, n + 1):
            i = (start + k) % n
            if i not in self.states:
                self.selected = i
                break
        else:
            self.selected = None
        self.live.restyle(self.selected, self.states)
        self.review.set_reviewing(True, self.selected is not None)
        self._review_status()

    def _box_clicked(self, index: int) -> None:
        if self.frozen_frame is not None and not self.live.draw_mode:
            self.selected = index
            self.live.restyle(self.selected, self.states)
            self.review.set_reviewing(True, True)
            self._review_status()

    def _class_chosen(self, name: str) -> None:
        if self.live.draw_mode:
            self._draw_class = name
            self.review.status.setText(f"Drag a box around the missed {name}.")
        elif self.selected is not None:
            det = self.frozen_frame.detections[self.selected] if self.frozen_frame else None
            self.decide("confirm" if det is not None and det.class_name == name else "reclass", new_class=name)

    def _draw_missed(self, on: bool) -> None:
        if self.frozen_frame is None:
            with QtCore.QSignalBlocker(self.review.missed_button):
                self.review.missed_button.setChecked(False)
            return
        self.live.set_draw_mode(on)
        if on:
            self.review.status.setText(f"Drag a box around the missed defect ({self._draw_class}; 1-3 to change).")
        else:
            self._review_status()

    def _box_drawn(self, x0: float, y0: float, x1: float, y1: float) -> None:
        self.decide("missed", new_box=(x0, y0, x1, y1), new_class=self._draw_class)
        self.review.missed_button.setChecked(False)

    def decide(self, verdict: str, new_class: str | None = None, new_box: tuple | None = None) -> None:
        """One operator decision on the frozen frame, sent to the store; "saved" shows once it is durable."""
        fr = self.frozen_frame
        if fr is None or self.store is None or (self.auth is not None and not self.auth.allows("review")):
            return
        needs_detection = verdict in ("confirm", "reject", "reclass")
        if needs_detection and self.selected is None:
            return
        index = self.selected if needs_detection else None
        operator = self.review.operator.text().strip() or "operator"
        try:
            d = Decision(fr, operator, verdict, detection=index, new_class=new_class, new_box=new_box)
        except ValueError as e:
            self.review.show_failed(str(e))
            return
        label = f"{verdict} {new_class or (fr.detections[index].class_name if index is not None else '')}".strip()
        if index is not None:
            self.states[index] = "saving"
        self.store.submit(d, on_ack=lambda a, d=d, i=index, lab=label: self._acks.put((a, d, i, lab)))
        # Undo takes back the last decision made, acknowledged yet or not: the writer keeps their order.
        self._done.append((d.review_id, fr, index))
        self.review.show_saving(label)
        if index is not None:
            self.select_next()
        else:
            self.live.restyle(self.selected, self.states)

    def undo(self) -> None:
        if not self._done or self.store is None or (self.auth is not None and not self.auth.allows("review")):
            return
        review_id, frame, index = self._done.pop()
        operator = self.review.operator.text().strip() or "operator"
        d = Decision(frame, operator, "undo", undoes=review_id)
        self.store.submit(d, on_ack=lambda a, d=d, i=index: self._acks.put((a, d, i, "undo")))
        self.review.show_saving("undo")

    def _drain_acks(self) -> None:
        while True:
            try:
                ack, d, index, label = self._acks.get_nowait()
            except queue.Empty:
                return
            same_frame = self.frozen_frame is not None and d.frame is self.frozen_frame
            if isinstance(ack, Ack):
                if d.verdict == "undo":
                    if same_frame and index is not None:
                        self.states.pop(index, None)
                else:
                    if same_frame and index is not None:
                        self.states[index] = d.verdict
                self.review.show_saved(label, ack.latency_ms)
            else:
                if same_frame and index is not None and self.states.get(index) == "saving":
                    self.states.pop(index)
                self._done = [x for x in self._done if x[0] != d.review_id]
                self.review.show_failed(str(ack))
                self._report("error", f"decision not saved: {ack}")
            if same_frame:
                self.live.restyle(self.selected, self.states)
                self.review.set_reviewing(True, self.selected is not None)
                self._review_status()

    # ------------------------------------------------------------------ drift

    def _on_batch(self, point: Any) -> None:
        """On the pipeline's worker: hand the batch to the trend store's writer (never blocks)."""
        store = self.trend_store
        if store is not None:
            store.add_batch(point)

    def _attach_monitor(self, monitor: DriftMonitor | None) -> None:
        self.monitor = monitor
        self._batches_seen = 0
        if monitor is None:
            self.drift.summary.setText("No reference active: statistics only, no drift alarms "
                                       "(set [drift] reference in the config).")
            return
        ref = monitor.ref
        if self.trend_store is None or self.trend_store.reference_id != ref.id:
            if self.trend_store is not None:
                self.trend_store.close()
            try:
                self.trend_store = TrendStore(self.data_dir, ref.id)
            except RuntimeError as e:
                self._report("error", f"{e}; trends are not kept")
                self.trend_store = None
        self.drift.summary.setText(f"Reference {ref.id[:12]} ({ref.frames} frames, {ref.meta.get('source', '?')}); "
                                   f"batches of {monitor.batch} frames")
        self.drift.set_references({k: (m.reference, m.low, m.high) for k, m in monitor.metrics.items()})
        if ref.id not in self._history_loaded:  # months of minute aggregates, once per reference
            self._history_loaded.add(ref.id)
            rows = read_trend(self.data_dir, reference_id=ref.id)
            for k in self.drift.metrics:
                mine = [r for r in rows if r["metric"] == k]
                self.drift.append(k, [r["minute"] for r in mine], [r["mean"] for r in mine])
            for ev in read_events(self.data_dir):
                self.drift.add_event(ev["time"], ev["kind"])
            self.drift.redraw()

    def _update_drift(self) -> None:
        mon = self.monitor
        if mon is None:
            return
        self._batches_seen, points = mon.new_points(self._batches_seen)
        if not points:
            return
        for k in self.drift.metrics:
            ts = [p.time for p in points if k in p.means]
            self.drift.append(k, ts, [p.means[k] for p in points if k in p.means])
        for p in points:
            for a in p.alarms:
                if a.severity in ("warning", "alarm") and a.name in p.means:
                    self.drift.mark_alarm(a.name, p.time, p.means[a.name], a.severity)
        levels, etas = {}, {}
        for k, m in mon.metrics.items():
            tip = (f"{k}: {m.value:.4g} (reference {m.reference:.4g}, tolerance {m.low:.4g}..{m.high:.4g})")
            levels[k] = (m.level, tip)
            if m.time_to_tolerance_s is not None and m.level != "ok":
                etas[k] = f"limit in {m.time_to_tolerance_s / 3600:.1f} h"
        levels["novel_rate"] = (mon.novelty_level, "share of recent frames unlike the reference")
        self.drift.set_levels(levels, etas)
        self.drift.set_histograms(mon.window_histogram(), mon.ref.hist[0] / max(1, mon.ref.hist[0].sum()))
        self.drift.redraw()

    def _model_factory(self):
        path, conf = self._model_path, self._confidence

        def load():
            from engine.inference import load_detector  # torch loads on the worker, not here

            return load_detector(path, confidence=conf)

        self.model_controls.set_model("Model: loading…")
        return load

    def set_model(self, path: str | None) -> None:
        """Use another model: the built-in one (``None``) or a file; the line restarts on it."""
        if self.auth is not None and not self.auth.sign("approved", "model_changed", obj="detector model",
                                                        old=self._model_path or "built-in", new=path or "built-in"):
            return
        self._model_path = path or None
        self._detector = None
        self.open_source(self._uri)

    def _browse_model(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Model file", "", "Models (*.pt2 *.torchscript *.pt *.ts);;All files (*)")
        if path:
            self.set_model(path)

    def _set_confidence(self, value: float) -> None:
        self._confidence = float(value)
        detector = self.pipeline.detector if self.pipeline is not None else None
        if detector is not None and hasattr(detector, "confidence"):
            detector.confidence = float(value)  # read by the worker on its next frame

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
        self._drain_acks()
        self._ticks += 1
        if self._ticks % 15 == 0:  # trends twice a second at the default display rate
            self._update_drift()
        p = self.pipeline
        self._retired = [r for r in self._retired if r.running]
        if p is None:
            self.lbl_state.setText("Stopped")
            return
        for ev in p.drain_events():
            self._report(ev.kind, ev.message, ev.wall_time)
            if ev.kind in ("model", "opened") and self.trend_store is not None:
                t = p.source.clock.now()  # the source's clock, the one its frames are stamped with
                self.trend_store.add_event(t, ev.kind, ev.message)
                self.drift.add_event(t, ev.kind)
            if ev.kind == "model-error":
                self.model_controls.set_model("No model (see events)")
            if ev.kind in ("stalled", "frozen", "unavailable", "error"):
                self.live.show_message(f"Source {ev.kind}: reconnecting…")
            elif ev.kind == "recovered":
                self.live.show_message("")
            elif ev.kind == "ended":
                self.live.show_message("The source has no more frames")
            elif ev.kind == "failed":
                self.live.show_message(ev.message)
        detector = p.detector
        if detector is not None and hasattr(detector, "device") and detector is not self._detector:
            self._detector = detector
            conf = getattr(detector, "confidence", None)
            if conf is not None:
                self.router.cfg.threshold = float(conf)  # "near the threshold" means this model's threshold
                with QtCore.QSignalBlocker(self.model_controls.confidence):
                    self.model_controls.confidence.setValue(float(conf))
            self.model_controls.set_model(f"{detector.name} · {detector.device}")
        self.review.set_queue(len(self.review_queue))
        latest_id, result = p.latest()
        if result is not None and latest_id != self._last_id and self.frozen is None:
            self._last_id = latest_id
            frame = result.frame
            rgb = cv2.cvtColor(frame.image, cv2.COLOR_BGR2RGB) if frame.channel_order == "BGR" else frame.image
            dets = result.detections.boxes if result.detections is not None else ()
            truth = frame.ground_truth.boxes if (self.show_truth and frame.ground_truth is not None) else ()
            self.live.show_frame(rgb, dets, truth)
            shown = {k: v for k, v in result.measurements.items() if isinstance(v, (int, float, str))}
            self.values.set_values({"sequence": frame.sequence, "detections": len(dets),
                                    "defects (truth)": len(truth) if truth else "—", **shown})
        if result is not None and result.detector is not None:
            d = result.detector
            self.lbl_model.setText(f"{d['name']} on {d['device']}, {d['inference_ms']:.0f} ms")
        st = p.stats
        self.lbl_state.setText(p.state.value.capitalize())
        self.lbl_fps.setText(f"{st.fps:5.1f} fps")
        self.lbl_latency.setText(f"latency {st.latency_ms:5.1f} ms")
        self.lbl_drops.setText(f"drops {st.dropped}")
        if not p.running:
            self._update_actions()

    def _report(self, kind: str, message: str, when: float | None = None) -> None:
        self.events.add(kind, message, when)
        if kind in ("error", "unavailable", "failed", "model-error"):
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
        if self.trend_store is not None:
            self.trend_store.close()
            self.trend_store = None
        if self.store is not None:
            self.store.close()
            self._drain_acks()
        super().closeEvent(event)
