"""The review dock and the live view wired to the station's review session (GUI thread).

The panel's and the view's intents go to :attr:`engine.runtime.station.Station.review`; what the session
announces is drawn here. Acknowledgements come from the feedback store's writer thread through the window's
task runner, and are settled on the GUI thread, where the session lives.
"""

from __future__ import annotations

from typing import Any

import cv2
from PySide6 import QtCore

from engine.runtime.pipeline import FrameResult
from widgets.live_view import Marks


class ReviewView(QtCore.QObject):
    def __init__(self, w: Any) -> None:
        super().__init__(w)
        self.w = w
        s, panel, live = w.station, w.review, w.live
        r = self.session = s.review
        panel.freeze_toggled.connect(self.toggle_freeze)
        panel.next_queued.connect(self.next_queued)
        panel.confirm.connect(lambda: r.decide("confirm"))
        panel.reject.connect(lambda: r.decide("reject"))
        panel.reclass.connect(self.class_chosen)
        panel.draw_missed.connect(self.draw_missed)
        panel.unsure.connect(lambda: r.decide("unsure"))
        panel.undo.connect(r.undo)
        panel.next_detection.connect(r.select_next)
        panel.operator.textChanged.connect(s.set_operator)
        live.box_clicked.connect(self.box_clicked)
        live.box_drawn.connect(self.box_drawn)
        r.changed.connect(self.changed)  # the session is driven from this (the GUI) thread
        s.acked.connect(w.tasks.deliver(r.settle))  # the store's writer thread -> the GUI thread
        s.queue_changed.connect(w.tasks.deliver(lambda n: panel.set_queue(len(s.queue))))
        if s.store_error:
            panel.show_failed(f"{s.store_error}; decisions cannot be stored")

    # ------------------------------------------------------------------ intents

    def toggle_freeze(self) -> None:
        self.session.toggle_freeze()
        fr = self.session.frame
        self.w.review.set_reviewing(fr is not None, bool(fr and fr.detections))

    def next_queued(self) -> None:
        """N: a stored frame due for a blind re-review by this operator comes first, then the live queue."""
        tools = getattr(self.w, "agreement_tools", None)
        if tools is not None:
            tools.start_recheck(quiet=True, otherwise=self.session.next_live_queued)
        else:
            self.session.next_live_queued()

    def class_chosen(self, name: str) -> None:
        self.session.choose_class(name, drawing=self.w.live.draw_mode)

    def draw_missed(self, on: bool) -> None:
        panel = self.w.review
        if self.session.frame is None:
            with QtCore.QSignalBlocker(panel.missed_button):
                panel.missed_button.setChecked(False)
            return
        self.w.live.set_draw_mode(on)
        if on:
            n = len(self.w.station.classes)
            panel.status.setText(f"Drag a box around the missed defect ({self.session.draw_class}; "
                                 f"1-{n} to change).")
        else:
            panel.status.setText(self.session.status())

    def box_clicked(self, index: int) -> None:
        if self.session.frame is not None and not self.w.live.draw_mode:
            self.session.select(index)

    def box_drawn(self, x0: float, y0: float, x1: float, y1: float) -> None:
        self.session.decide("missed", new_box=(x0, y0, x1, y1), new_class=self.session.draw_class)
        self.w.review.missed_button.setChecked(False)

    # ------------------------------------------------------------------ what the session announces

    def changed(self, what: str, detail: Any) -> None:
        w, r, panel = self.w, self.session, self.w.review
        if what == "frozen":
            self._show_frozen()
        elif what == "live":
            w.live.set_draw_mode(False)
            w.live.restyle(None, {}, Marks())
            panel.set_reviewing(False)
            panel.status.setText(r.status())
            panel.clear_saved()  # the save status belongs to the frame it was about
            w.display.redraw()
        elif what == "selection":
            w.live.restyle(r.selected, r.states, self.marks())
            panel.set_reviewing(True, r.selected is not None)
            panel.status.setText(r.status())
        elif what == "saving":
            panel.show_saving(detail)
        elif what == "saved":
            label, latency_ms, same_frame = detail
            self.count(label)
            if same_frame:
                panel.show_saved(label, latency_ms)
            else:  # the frame was left before its decision was stored: said in the events, not over another frame
                w.report("review", f"saved {label} ({latency_ms:.0f} ms)")
        elif what == "refused":
            panel.show_failed(detail)
        elif what == "failed":
            panel.show_failed(detail)
            w.report("error", f"decision not saved: {detail}")
        elif what == "draw_class":
            panel.status.setText(f"Drag a box around the missed {detail}.")

    def _show_frozen(self) -> None:
        w, r = self.w, self.session
        fr = r.frame
        if w.live.draw_mode:
            w.review.missed_button.setChecked(False)
        if isinstance(r.frozen, FrameResult):
            f = r.frozen.frame
            rgb = cv2.cvtColor(f.image, cv2.COLOR_BGR2RGB) if f.channel_order == "BGR" else f.image
            truth = f.ground_truth.boxes if (w.show_truth and f.ground_truth is not None) else ()
        else:  # a stored frame for a blind re-review: no ground truth, no earlier verdict
            rgb, truth = cv2.cvtColor(fr.image, cv2.COLOR_BGR2RGB), ()
        w.live.show_frame(rgb, fr.detections, truth, r.selected, marks=self.marks())
        w.live.show_message("")
        w.review.clear_saved()
        w.review.set_reviewing(True, bool(fr.detections))
        w.review.status.setText(r.status())

    def marks(self) -> Marks:
        """The held frame's decisions, as the live view draws them."""
        r = self.session
        return Marks(dict(r.states), dict(r.relabels), tuple(r.missed.values()),
                     next(iter(r.unsure.values()), None))

    def count(self, label: str) -> None:
        """The shift's confirmed and rejected counts, from what was stored (an undo takes its decision back)."""
        counts = self.w.shift
        sign = -1 if label.startswith("Undid: ") else 1
        what = label.removeprefix("Undid: ")
        if what.startswith(("confirmed", "relabelled", "added missed")):
            counts.confirmed += sign
        elif what.startswith("rejected"):
            counts.rejected += sign

    def classes_changed(self, classes: tuple[str, ...]) -> None:
        self.w.review.set_classes(classes)
        self.w.review.set_reviewing(self.session.frame is not None,
                                    bool(self.session.frame and self.session.selected is not None))
