"""The "Recalibrate after lens change…" action (Ctrl+Shift+K) in the Tools menu: the wizard and its worker.

While the wizard runs it takes the camera over: the window's line stops (a camera cannot be opened twice)
and the wizard opens the same source on a worker thread of its own, where frames are read, measured and
run through the model; results reach the wizard through the window's task runner (the worker never calls
into Qt), so the window never waits.
On the simulated line the wizard's source starts at the slot the line had reached and is asked to show
the checkerboard or the golden parts (``SimSource.request``); on a camera the technician puts the target
or the golden parts in view. When the wizard closes, the line starts again (the simulated line where the
wizard left it). After a commit the new station reference becomes the station's (``station.json``, read when
the line starts), the event is drawn on the trend charts, and a data collection campaign, if one was
opened, is handed to the station's review router.
"""

from __future__ import annotations

import contextlib
import getpass
import queue
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import cv2
from PySide6 import QtCore, QtGui

from engine.calibration.recalibration import REASONS, SHOWS, TITLES, Recalibration, RecalibrationError
from engine.calibration import recalibration_commit
from engine.calibration.recalibration_run import load_references, request_show, simulated_nominal_profile
from engine.calibration.station_files import active_campaign
from app.gui.host import StationWindow
from app.gui.tasks import Relay
from widgets.recalibration_wizard import RecalibrationWizard

SHORTCUT = "Ctrl+Shift+K"
INSTRUCTIONS = {
    "geometry": "Hold the calibration target ({pattern}) in front of the camera, in different places and tilts, "
                "until the grid is green. The lens is solved once enough views cover the field of view.",
    "focus": "Turn the focus ring slowly through the sharpest point: the yellow bar is the focus now, the white "
             "line the peak, the green band what the reference asks. Stop in the band, then accept.",
    "exposure": "Adjust exposure (or aperture) and white balance until brightness and colour are in band; the "
                "corrections to make are shown. Then accept.",
    "golden": "Pass the golden parts through the field of view. The model must find every known defect on them "
              "and raise nothing on the good ones.",
    "domain": "Let the line run with production parts: fresh frames are compared with the images the model was "
              "trained on.",
}
LIVE_STEPS_HZ = 30.0  # preview, focus and exposure read at most this often


def _with_query(uri: str, **params: Any) -> str:
    """``uri`` with query parameters set (``sim://?a=1`` has no host, which urlunsplit would drop with the ``//``)."""
    base, _, query = uri.partition("?")
    q = dict(parse_qsl(query, keep_blank_values=True))
    q.update({k: str(v) for k, v in params.items()})
    return f"{base}?{urlencode(q)}"


class RecalibrationController(QtCore.QObject):
    """Runs one recalibration on a worker thread; the wizard's :class:`widgets.recalibration_wizard.Controller`."""

    updated = QtCore.Signal(str, object, object, str, bool, str)
    step_finished = QtCore.Signal(str, object)
    committed = QtCore.Signal(object)
    failed = QtCore.Signal(str)

    def __init__(self, uri: str, data_dir: Path, config: dict[str, Any], runner: Relay, detector: Any = None,
                 detector_loader: Any = None, parent: QtCore.QObject | None = None, auth: Any = None) -> None:
        super().__init__(parent)
        self.auth = auth
        self.uri = uri
        self.data_dir = Path(data_dir)
        self.config = config
        self._detector = detector
        self._detector_loader = detector_loader
        self.session: Recalibration | None = None
        self.source: Any = None
        self.result: Any = None
        self._lock = threading.Lock()
        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self._ready = threading.Event()
        self.error: str | None = None
        self._relay = runner  # the worker's signals are emitted on the GUI thread, by the window's runner
        self._thread = threading.Thread(target=self._run, name="recalibration-worker", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ from the GUI thread

    def set_reason(self, reason: str, who: str, note: str) -> str | None:
        if not self._ready.is_set():  # never wait on the GUI thread
            return "The camera and the model are still being prepared; try again in a moment."
        if self.session is None:
            return self.error or "The recalibration could not start."
        try:
            with self._lock:
                self.session.set_reason(reason, who, note)
        except RecalibrationError as e:
            return str(e)
        return None

    def start_step(self, step: str | None) -> None:
        self._commands.put(("step", step))

    def accept_step(self, step: str) -> None:
        self._commands.put(("accept", step))

    def stop(self) -> None:
        self._commands.put(("step", None))

    def override(self, step: str, reason: str, who: str) -> str | None:
        if self.session is None:
            return "The recalibration has not started."
        try:
            with self._lock:
                self.session.override(step, reason, who)
        except RecalibrationError as e:
            return str(e)
        return None

    def states(self) -> list[dict[str, Any]]:
        if self.session is None:
            return []
        with self._lock:
            return [s.to_dict() for name, s in self.session.steps.items() if name != "reason"]

    def blocking(self) -> list[str]:
        if self.session is None:
            return ["recalibration not started"]
        with self._lock:
            return [TITLES[b] for b in self.session.blocking()]

    def commit(self, keep_reference: bool) -> None:
        auth = self.auth
        if auth is not None and not auth.sign("recalibrated", "recalibration", obj=self.uri,
                                              new={"keep_reference": keep_reference},
                                              label="Commit the recalibration"):
            self.failed.emit("not committed: the recalibration needs your PIN as its signature")
            return
        self._commands.put(("commit", keep_reference))

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop the worker and release the camera."""
        self._commands.put(("quit", None))
        self._thread.join(timeout)
        self._relay.drain()

    # ------------------------------------------------------------------ the worker thread

    def _prepare(self) -> None:
        from engine.sources import SourceError, open_source

        try:
            self.source = open_source(self.uri)
            self.source.open()
        except SourceError as e:
            self.error = f"The camera cannot be opened: {e}"
            self._relay.post(self.failed.emit, self.error)
            return
        detector = self._detector
        if detector is None and self._detector_loader is not None:
            try:
                detector = self._detector_loader()
            except Exception as e:  # noqa: BLE001 - a model that cannot load fails the golden step, it says why
                self._relay.post(self.failed.emit,
                                 f"The model cannot be loaded ({e}); the golden parts cannot be checked.")

        active, training, problems = load_references(self.config, self.data_dir)
        for p in problems:
            self._relay.post(self.failed.emit, p)
        first = self._read()
        w, h = (first.width, first.height) if first is not None else (0, 0)
        try:
            self.session = Recalibration(self.data_dir, self.config, detector, active, training,
                                         simulated_nominal_profile(self.source, w, h) if first else None,
                                         self.source.describe())
        except (RecalibrationError, ValueError) as e:
            self.error = str(e)
            self._relay.post(self.failed.emit, self.error)
            return

    def _read(self) -> Any:
        from engine.sources.base import SourceEnded, SourceError

        for _ in range(50):
            try:
                return self.source.read()
            except SourceEnded:
                return None
            except SourceError:
                time.sleep(0.05)
        return None

    def _run(self) -> None:
        try:
            self._prepare()
        finally:
            self._ready.set()
        step: str | None = None
        live = True
        last_emit = 0.0
        try:
            while True:
                try:
                    cmd, arg = self._commands.get(timeout=0.0 if (live and self.source is not None) else 0.2)
                except queue.Empty:
                    cmd = None
                if cmd == "quit":
                    return
                if cmd == "step":
                    if step is not None and self.source is not None:
                        request_show(self.source, None)
                    step, live = arg, True
                    if step is not None and self.session is not None:
                        self._reset(step)
                        request_show(self.source, SHOWS[step])
                    continue
                if cmd == "accept" and step == arg:
                    self._finish(step)
                    step = None
                    continue
                if cmd == "commit":
                    self._commit(bool(arg))
                    continue
                if self.source is None or self.session is None:
                    live = False
                    continue
                t0 = time.monotonic()
                frame = self._read()
                if frame is None:
                    live = False
                    self._relay.post(self.failed.emit, "The camera delivers no frames.")
                    continue
                if step is None:
                    rgb = cv2.cvtColor(frame.as_order("BGR"), cv2.COLOR_BGR2RGB)
                    if time.monotonic() - last_emit > 1 / 15:
                        self._relay.post(self.updated.emit, "", rgb, {}, "", False, "running")
                        last_emit = time.monotonic()
                else:
                    with self._lock:
                        u = self.session.feed(step, frame)
                    if time.monotonic() - last_emit > 1 / 20 or u.ready:
                        self._relay.post(self.updated.emit, step, cv2.cvtColor(u.preview, cv2.COLOR_BGR2RGB),
                                         dict(u.values), u.message, u.ready, u.status)
                        last_emit = time.monotonic()
                    if u.ready and step in ("geometry", "golden", "domain"):
                        self._finish(step)
                        step = None
                        continue
                if step in (None, "focus", "exposure"):
                    pause = 1 / LIVE_STEPS_HZ - (time.monotonic() - t0)
                    if pause > 0:
                        time.sleep(pause)
        finally:
            if self.source is not None:
                with contextlib.suppress(Exception):  # closing a camera that already failed
                    request_show(self.source, None)
                    self.source.close()

    def _reset(self, step: str) -> None:
        with self._lock:
            self.session.reset(step)

    def _finish(self, step: str) -> None:
        request_show(self.source, None)
        with self._lock:
            st = self.session.finish(step)
            state = st.to_dict()
        self._relay.post(self.step_finished.emit, step, state)

    def _commit(self, keep: bool) -> None:
        if self.session is None:
            self._relay.post(self.failed.emit, self.error or "The recalibration has not started.")
            return
        try:
            with self._lock:
                r = recalibration_commit.commit(self.session, keep_reference=keep)
        except (RecalibrationError, OSError, RuntimeError) as e:
            self._relay.post(self.failed.emit, str(e))
            return
        self.result = r
        self._relay.post(self.committed.emit, {
            "report": str(r.report_path), "profile": str(r.profile_path),
            "reference": str(r.reference_path) if r.reference_path else None, "reference_id": r.reference_id,
            "campaign": str(r.campaign_path) if r.campaign_path else None, "event_time": r.event_time})

    @property
    def slot(self) -> int | None:
        return getattr(self.source, "slot", None)


def wizard_uri(window: StationWindow) -> str:
    """The source the wizard opens: the station's; the simulated line from where it is now, unpaced."""
    station = window.station
    uri = station.uri
    if uri.startswith("sim://"):
        src = station.pipeline.source if station.pipeline is not None else None
        slot = getattr(src, "slot", None)
        params: dict[str, Any] = {"realtime": 0}
        if slot is not None:
            params["start"] = slot
        return _with_query(uri, **params)
    return uri


def open_wizard(window: StationWindow) -> RecalibrationWizard:
    """Stop the line, open the wizard on the station's source, and start the line again when it closes."""
    station = window.station
    was_running = station.running
    uri = wizard_uri(window)
    pipeline_detector = getattr(station.pipeline, "detector", None) if station.pipeline is not None else None
    detector = pipeline_detector if hasattr(pipeline_detector, "detect") else None
    loader = None
    if detector is None and station.model.path != "none":
        path, conf = station.model.path, station.model.confidence

        def loader() -> Any:
            from engine.inference import load_detector

            return load_detector(path, confidence=conf)
    window.stop()
    ctl = RecalibrationController(uri, window.data_dir, window.config, window.tasks, detector, loader,
                                  window, auth=window.auth)  # type: ignore[arg-type]
    steps = []
    pattern = window.config.get("calibration", {})
    for name in ("geometry", "focus", "exposure", "golden", "domain"):
        text = INSTRUCTIONS[name].format(pattern=f"{pattern.get('pattern', '9x6')} inner corners, "
                                                 f"{pattern.get('square_mm', 8.0):g} mm squares")
        mandatory = name in set(pattern.get("mandatory", ["geometry", "focus", "golden"]))
        steps.append((name, TITLES[name], text, mandatory))

    def on_committed(result: dict[str, Any]) -> None:
        window.report("recalibrated", f"recalibrated: report {result['report']}")
        campaign = active_campaign(window.data_dir)
        if campaign is not None:
            station.router.campaign = campaign
        if result.get("reference") is None:  # a new reference brings its events with its history
            station.mark(result["event_time"], "recalibration")

    ctl.committed.connect(on_committed)  # before the wizard's own slot: the window is up to date first
    signed_in = station.session
    who = (signed_in.name or signed_in.badge) if signed_in is not None else getpass.getuser()
    wiz = RecalibrationWizard(ctl, REASONS, steps, who=who, parent=window)  # type: ignore[arg-type]
    wiz.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose, False)

    def on_closed() -> None:
        slot = ctl.slot
        ctl.shutdown()
        if window.isVisible() and (was_running or ctl.result is not None):
            resume = station.uri
            if resume.startswith("sim://") and slot is not None:
                resume = _with_query(resume, start=slot)
            window.open_source(resume)

    wiz.finished.connect(lambda *_: on_closed())
    window.recalibration_wizard = wiz
    window.recalibration_controller = ctl
    wiz.open()
    return wiz


def install(window: Any) -> QtGui.QAction:
    """Add "Recalibrate after lens change…" to the window's Tools menu; hand a running campaign to the router."""
    action = QtGui.QAction("Recalibrate after lens change…", window)
    action.setObjectName("recalibrateAction")
    action.setShortcut(QtGui.QKeySequence(SHORTCUT))
    action.setToolTip(f"Prove the station still sees what it saw before a lens change ({SHORTCUT})")
    action.setProperty("permission", "recalibrate")
    action.triggered.connect(lambda: open_wizard(window))
    window.addAction(action)
    window.tools_menu.addAction(action)
    window.act_recalibrate = action
    window.station.router.campaign = active_campaign(window.data_dir)
    return action
