"""Drawing the newest frame and the line's status at the display's rate (GUI thread).

This is drawing, not a result channel: a timer at the display's maximum rate reads the pipeline's one-slot
mailbox (the newest result) and draws it if it is new, so the window never queues frames behind a slow redraw
(acq4's ``FrameDisplay``). Every other result reaches the GUI thread through the window's task runner.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import cv2
from PySide6 import QtCore

VALUES_EVERY_S = 0.25  # the measurements table is refreshed at most this often


class ShiftTally:
    """The shift's counts: parts seen and parts with a defect found (counted on the pipeline's worker, read on the
    GUI thread), decisions confirmed and rejected (counted on the GUI thread as they are stored)."""

    def __init__(self) -> None:
        self.parts = self.defects = self.confirmed = self.rejected = 0

    def count_frame(self, result: Any) -> None:
        self.parts += 1
        if result.detections is not None and len(result.detections.boxes):
            self.defects += 1


def banner_state(w: Any) -> tuple[str, str]:
    """What the banner says: (kind, text), kind one of live, paused, frozen, reviewing, alarm, stopped."""
    s = w.station
    p, r = s.pipeline, s.review
    alarm = ""
    if p is not None and p.state.value in ("reconnecting", "failed"):
        alarm = "source lost, reconnecting" if p.state.value == "reconnecting" else "the line stopped on an error"
    elif p is not None and p.running and w.source_alarm:
        alarm = w.source_alarm
    red = [m for m, level in w.drift_strip.levels.items() if level == "alarm"]
    if red:
        alarm = (alarm + "; " if alarm else "") + "drift in " + ", ".join(red[:3])
    if r.frame is not None:
        reason = r.frame.queue_reason
        kind, text = ("frozen", f"FROZEN · frame {r.frame.sequence}") if reason == "operator" else \
            ("reviewing", f"REVIEWING frame {r.frame.sequence} ({reason})")
    elif p is None or p.state.value in ("stopped", "idle", "ended"):
        kind, text = "stopped", "STOPPED" if p is None or p.state.value != "ended" else "ENDED: no more frames"
    elif p.state.value == "paused":
        kind, text = "paused", "PAUSED"
    else:
        kind, text = "live", "LIVE"
    if alarm:
        return "alarm", f"ALARM: {alarm}" + ("" if kind in ("live", "stopped") else f"  ·  {text}")
    return kind, text


def drift_levels(monitor: Any) -> dict[str, tuple[str, str]]:
    """Each drift metric's level and a line on it, read from the monitor the way the drift dock reads it."""
    levels = {}
    for k, m in list(monitor.metrics.items()):
        levels[k] = (m.level, f"{k}: {m.value:.4g} (reference {m.reference:.4g}, tolerance {m.low:.4g}..{m.high:.4g})")
    levels["novel_rate"] = (monitor.novelty_level, "share of recent frames unlike the reference")
    return levels


class Waker:
    """Lets a worker thread wake the GUI thread without calling into Qt: the worker writes one byte into a socket
    pair and a socket notifier on the GUI thread reads it (a PySide signal emitted from a Python thread takes Qt's
    locks while it holds the interpreter lock, the pattern behind cross-thread deadlocks). Wake-ups that arrive
    before the GUI thread reads are merged into one."""

    def __init__(self, parent: QtCore.QObject, slot: Any) -> None:
        self._r, self._w = socket.socketpair()
        self._r.setblocking(False)
        self._w.setblocking(False)
        self._slot = slot
        self.notifier = QtCore.QSocketNotifier(self._r.fileno(), QtCore.QSocketNotifier.Type.Read, parent)
        self.notifier.activated.connect(self._read)

    def wake(self) -> None:
        """Any thread: ask the GUI thread to run the slot."""
        try:
            self._w.send(b"\0")
        except OSError:  # full: a wake-up is pending already; closed: the window has gone
            pass

    def _read(self) -> None:
        try:
            while self._r.recv(4096):
                pass
        except OSError:  # nothing more to read
            pass
        self._slot()

    def close(self) -> None:
        if self._r.fileno() < 0:
            return
        self.notifier.setEnabled(False)
        self._r.close()
        self._w.close()


class FrameDisplay(QtCore.QObject):
    def __init__(self, w: Any, max_fps: float) -> None:
        super().__init__(w)
        self.w = w
        self._last_id = -1
        self._ticks = 0
        self._values_at = 0.0
        self.timer = QtCore.QTimer(self)
        self.timer.setObjectName("displayTimer")
        self.timer.setInterval(max(5, int(1000 / max(1.0, max_fps))))
        self.timer.timeout.connect(self.tick)
        # a new frame wakes the display at once (through the waker, onto this thread): the timer alone would add up
        # to one tick of latency to every frame; the timer keeps the labels, the banner and the drift strip current
        self.waker = Waker(self, self._woken)
        self._pipeline: Any = None
        self._min_gap = 1.0 / max(1.0, max_fps)  # [display] max_fps holds for the wake-ups too
        self._drawn_at = 0.0

    def stop(self) -> None:
        """No more ticks and no more wake-ups (the window is closing)."""
        self.timer.stop()
        if self._pipeline is not None:
            self._pipeline.on_newest = None
            self._pipeline = None
        self.waker.close()

    def _woken(self) -> None:
        if self.timer.isActive() and time.monotonic() - self._drawn_at >= 0.9 * self._min_gap:
            self.show_newest()

    def redraw(self) -> None:
        """Draw the current frame again at the next tick (ground truth toggled, back to live)."""
        self._last_id = -1

    def tick(self) -> None:
        w, s = self.w, self.w.station
        p = s.pipeline
        self._ticks += 1
        if self._ticks % 10 == 0 and s.monitor is not None and s.monitor.metrics:
            w.drift_strip.set_levels(drift_levels(s.monitor))
        w.banner.set_state(*banner_state(w))
        t = w.shift
        w.counts.set_counts(t.parts, t.defects, t.confirmed, t.rejected)
        if p is None:
            w.lbl_state.setText("Stopped")
            return
        if p is not self._pipeline:  # a new line (started, or a model or source swapped): it wakes us too
            self._pipeline = p
            p.on_newest = self.waker.wake
        result = self.show_newest()
        if result is not None and result.detector is not None:
            d = result.detector
            w.lbl_model.setText(f"{d['name']} on {d['device']}, {d['inference_ms']:.0f} ms")
        p.view_size = w.live.view_pixels()  # the worker shrinks the next pictures to what is drawn
        st = p.stats
        frame = s.review.frame
        state = p.state.value.capitalize()
        w.lbl_state.setText(state if frame is None else f"Reviewing frame {frame.sequence} (line {state.lower()})")
        w.lbl_fps.setText(f"{st.fps:5.1f} fps")
        w.lbl_latency.setText(f"latency {st.latency_ms:5.1f} ms")
        w.lbl_drops.setText(f"drops {st.dropped}")
        if not p.running:
            w.update_actions()

    def show_newest(self) -> Any:
        """Draw the line's newest frame if it is not on the screen yet; returns the newest result (or None)."""
        w, s = self.w, self.w.station
        p = s.pipeline
        if p is None:
            return None
        latest_id, result = p.newest()  # pipelined: the picture and boxes without waiting for statistics
        if result is not None and latest_id != self._last_id and s.review.frozen is None:
            self._last_id = latest_id
            frame = result.frame
            rgb = result.view  # converted and shrunk to the view's size on the pipeline's worker
            if rgb is None:
                rgb = cv2.cvtColor(frame.image, cv2.COLOR_BGR2RGB) if frame.channel_order == "BGR" else frame.image
            dets = result.detections.boxes if result.detections is not None else ()
            truth = frame.ground_truth.boxes if (w.show_truth and frame.ground_truth is not None) else ()
            w.live.show_frame(rgb, dets, truth, frame_size=(frame.width, frame.height), captured=result.captured,
                              sequence=frame.sequence)
            now = self._drawn_at = time.monotonic()
            if now - self._values_at >= VALUES_EVERY_S:  # a table read by people: a few times a second is enough
                self._values_at = now
                shown = {k: v for k, v in result.measurements.items() if isinstance(v, (int, float, str))}
                w.values.set_values({"sequence": frame.sequence, "detections": len(dets),
                                     "defects (truth)": len(truth) if truth else "—", **shown})
        return result
