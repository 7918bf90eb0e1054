"""Drawing the newest frame and the line's status at the display's rate (GUI thread).

This is drawing, not a result channel: a timer at the display's maximum rate reads the pipeline's one-slot
mailbox (the newest result) and draws it if it is new, so the window never queues frames behind a slow redraw
(acq4's ``FrameDisplay``). Every other result reaches the GUI thread through the window's task runner.
"""

from __future__ import annotations

import time
from typing import Any

import cv2
from PySide6 import QtCore

VALUES_EVERY_S = 0.25  # the measurements table is refreshed at most this often


class FrameDisplay(QtCore.QObject):
    def __init__(self, w: Any, max_fps: float) -> None:
        super().__init__(w)
        self.w = w
        self._last_id = -1
        self._values_at = 0.0
        self.timer = QtCore.QTimer(self)
        self.timer.setObjectName("displayTimer")
        self.timer.setInterval(max(5, int(1000 / max(1.0, max_fps))))
        self.timer.timeout.connect(self.tick)

    def redraw(self) -> None:
        """Draw the current frame again at the next tick (ground truth toggled, back to live)."""
        self._last_id = -1

    def tick(self) -> None:
        w, s = self.w, self.w.station
        p = s.pipeline
        if p is None:
            w.lbl_state.setText("Stopped")
            return
        latest_id, result = p.newest()  # pipelined: the picture and boxes without waiting for statistics
        if result is not None and latest_id != self._last_id and s.review.frozen is None:
            self._last_id = latest_id
            frame = result.frame
            rgb = result.view  # converted and shrunk to the view's size on the pipeline's worker
            if rgb is None:
                rgb = cv2.cvtColor(frame.image, cv2.COLOR_BGR2RGB) if frame.channel_order == "BGR" else frame.image
            dets = result.detections.boxes if result.detections is not None else ()
            truth = frame.ground_truth.boxes if (w.show_truth and frame.ground_truth is not None) else ()
            w.live.show_frame(rgb, dets, truth, frame_size=(frame.width, frame.height), captured=result.captured)
            now = time.monotonic()
            if now - self._values_at >= VALUES_EVERY_S:  # a table read by people: a few times a second is enough
                self._values_at = now
                shown = {k: v for k, v in result.measurements.items() if isinstance(v, (int, float, str))}
                w.values.set_values({"sequence": frame.sequence, "detections": len(dets),
                                     "defects (truth)": len(truth) if truth else "—", **shown})
        if result is not None and result.detector is not None:
            d = result.detector
            w.lbl_model.setText(f"{d['name']} on {d['device']}, {d['inference_ms']:.0f} ms")
        p.view_size = w.live.view_pixels()  # the worker shrinks the next pictures to what is drawn
        st = p.stats
        w.lbl_state.setText(p.state.value.capitalize())
        w.lbl_fps.setText(f"{st.fps:5.1f} fps")
        w.lbl_latency.setText(f"latency {st.latency_ms:5.1f} ms")
        w.lbl_drops.setText(f"drops {st.dropped}")
        if not p.running:
            w.update_actions()
