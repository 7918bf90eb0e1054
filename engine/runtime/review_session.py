"""The operator's review session: freeze a frame, select a detection, decide, undo, take the next frame from the
review queue, and settle the feedback store's acknowledgements. No Qt; not thread-safe: one thread drives it (the
window's GUI thread, or the headless run's)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

from engine.core.announce import Announcer
from engine.review.feedback import Ack, Decision, FeedbackError, FrameForReview
from engine.runtime.pipeline import FrameResult


class SessionHost(Protocol):
    """What the review session needs of the station (:class:`engine.runtime.station.Station` is one)."""

    classes: tuple[str, ...]
    queue: Any  # an engine.runtime.review_queue.ReviewQueue: take() -> QueuedFrame | None
    queue_changed: Announcer
    store: Any  # the FeedbackStore, or None where it could not be opened
    permits: Callable[[str], bool]

    @property
    def operator(self) -> str: ...

    def latest(self) -> FrameResult | None: ...

    def submit(self, d: Decision, index: int | None, label: str) -> None: ...

def frame_for_review(result: FrameResult, reason: str) -> FrameForReview:
    """What the feedback store keeps of one pipeline result held for review."""
    f = result.frame
    dets = tuple(result.detections.boxes) if result.detections is not None else ()
    stats = {k: v for k, v in result.measurements.items() if isinstance(v, (int, float, str))}
    det = result.detector or {}
    return FrameForReview(f.image, f.source_id, f.sequence, f.timestamp, dets, det.get("name"), det.get("device"),
                          result.measurements.get("reference_id"), stats,
                          f.ground_truth.to_dict() if f.ground_truth is not None else None, reason)


@dataclass(frozen=True)
class AckRecord:
    """A decision's acknowledgement (``ack``: an :class:`Ack`, or the :class:`FeedbackError` that stopped it)."""

    ack: Ack | FeedbackError
    decision: Decision
    index: int | None
    label: str


# ---------------------------------------------------------------------------------------------- review session


class ReviewSession:
    """Freeze, select, decide, undo, next in queue, acknowledgements: the operator's review, one frame at a time.

    Drive it from one thread. :attr:`changed` announces, on that thread, what changed: ``"frozen"`` (a new frame
    is held), ``"live"`` (back to live), ``"selection"`` (selection or per-detection states), ``"saving"``,
    ``"saved"``, ``"refused"`` (a decision that cannot be made, with a sentence), ``"failed"`` (a decision not
    stored, with a sentence) and ``"draw_class"``, as ``changed(what, detail)``."""

    def __init__(self, station: SessionHost) -> None:
        self.station = station
        self.changed = Announcer("review.changed")
        self.frozen: Any = None  # the FrameResult (or re-review task) under review
        self.frame: FrameForReview | None = None
        self.selected: int | None = None
        self.states: dict[int, str] = {}
        self.relabels: dict[int, str] = {}  # detection index -> the class it was changed to
        self.missed: dict[str, tuple[tuple, str, str]] = {}  # review id -> (box, class, "saving" or "missed")
        self.unsure: dict[str, str] = {}  # review id -> "saving" or "unsure": the frame flagged for an engineer
        self._draw_class: str = station.classes[0]
        # Own decisions, newest last, for undo: (review id, frame, detection index, what it was in words).
        self._done: list[tuple[str, FrameForReview, int | None, str]] = []

    @property
    def draw_class(self) -> str:
        """The class of the next box drawn around a missed defect (one of the running model's classes)."""
        classes = self.station.classes
        return self._draw_class if self._draw_class in classes else classes[0]

    @property
    def reviewing(self) -> bool:
        return self.frame is not None

    def _allowed(self) -> bool:
        return self.station.store is not None and self.station.permits("review")

    def freeze(self, result: FrameResult, reason: str) -> None:
        """Hold ``result`` for review; the line keeps running behind it. Its image is kept before any click."""
        self.hold(result, frame_for_review(result, reason))
        if self.station.store is not None:
            self.station.store.keep_sample(self.frame)

    def hold(self, frozen: Any, frame: FrameForReview) -> None:
        """Hold a frame that is ready for review (a live result, or a stored frame due for a re-review)."""
        self.frozen, self.frame = frozen, frame
        self._clear_marks()
        self.selected = 0 if frame.detections else None
        self.changed.emit("frozen", None)

    def resume_live(self) -> None:
        self.frozen = self.frame = None
        self.selected = None
        self._clear_marks()
        self.changed.emit("live", None)

    def _clear_marks(self) -> None:
        self.states, self.relabels, self.missed, self.unsure = {}, {}, {}, {}

    def toggle_freeze(self) -> None:
        """Freeze the newest result, or go back to live."""
        if self.frozen is not None:
            self.resume_live()
            return
        if not self.station.permits("review"):
            return
        result = self.station.latest()
        if result is not None:
            self.freeze(result, "operator")

    def next_live_queued(self) -> bool:
        """Freeze the most valuable frame the router set aside (decoded now); False when the queue is empty."""
        q = self.station.queue
        item = q.take()
        self.station.queue_changed.emit(len(q))
        if item is None:
            return False
        self.freeze(item.result(), item.reason)
        return True

    def select(self, index: int) -> None:
        if self.frame is not None and 0 <= index < len(self.frame.detections):
            self.selected = index
            self.changed.emit("selection", None)

    def select_next(self) -> None:
        fr = self.frame
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
        self.changed.emit("selection", None)

    def choose_class(self, name: str, drawing: bool) -> None:
        """A class key or button: the class of the next drawn box, or a verdict on the selected detection."""
        if drawing:
            self._draw_class = name
            self.changed.emit("draw_class", name)
        elif self.selected is not None and self.frame is not None:
            det = self.frame.detections[self.selected]
            self.decide("confirm" if det.class_name == name else "reclass", new_class=name)

    def decide(self, verdict: str, new_class: str | None = None, new_box: tuple | None = None) -> bool:
        """One decision on the held frame, sent to the store; :attr:`Station.acked` says when it is durable."""
        fr = self.frame
        if fr is None or not self.station.permits("review"):
            return False
        if self.station.store is None:  # a click is never silently dropped: it says it was not stored
            why = getattr(self.station, "store_error", None) or "the feedback store is not open"
            self.changed.emit("failed", f"frame {fr.sequence}, {verdict}: {why}; decisions cannot be stored")
            return False
        needs_detection = verdict in ("confirm", "reject", "reclass")
        if needs_detection and self.selected is None:
            return False
        index = self.selected if needs_detection else None
        try:
            d = Decision(fr, self.station.operator, verdict, detection=index, new_class=new_class, new_box=new_box)
        except ValueError as e:
            self.changed.emit("refused", str(e))
            return False
        label = describe(verdict, fr.detections[index] if index is not None else None, new_class, fr.sequence)
        if index is not None:
            self.states[index] = "saving"
        elif verdict == "missed" and new_box is not None:
            self.missed[d.review_id] = (tuple(new_box), new_class or self.draw_class, "saving")
        elif verdict == "unsure":
            self.unsure[d.review_id] = "saving"
        self.station.submit(d, index, label)
        # Undo takes back the last decision made, acknowledged yet or not: the writer keeps their order.
        self._done.append((d.review_id, fr, index, label))
        self.changed.emit("saving", label)
        if index is not None:
            self.select_next()
        else:
            self.changed.emit("selection", None)
        return True

    def undo(self) -> bool:
        if not self._done or not self._allowed():
            return False
        review_id, frame, index, label = self._done.pop()
        what = f"Undid: {label}"
        self.station.submit(Decision(frame, self.station.operator, "undo", undoes=review_id), index, what)
        self.changed.emit("saving", what)
        return True

    def settle(self, rec: AckRecord) -> None:
        """Take in an acknowledgement (call on the session's thread)."""
        d, index = rec.decision, rec.index
        same_frame = self.frame is not None and d.frame is self.frame
        if isinstance(rec.ack, Ack):
            if same_frame:
                self._mark(d, index)
            self.changed.emit("saved", (rec.label, rec.ack.latency_ms, same_frame))
        else:
            if same_frame and index is not None and self.states.get(index) == "saving":
                self.states.pop(index)
            if same_frame:
                self.missed.pop(d.review_id, None)
                self.unsure.pop(d.review_id, None)
            self._done = [x for x in self._done if x[0] != d.review_id]
            # Each failed decision says which frame and what it was, so that several in a row are told apart.
            self.changed.emit("failed", f"frame {d.frame.sequence}, {rec.label}: {rec.ack}")
        if same_frame:
            self.changed.emit("selection", None)

    def _mark(self, d: Decision, index: int | None) -> None:
        """Draw an acknowledged decision on the held frame (or take one away, for an undo)."""
        if d.verdict == "undo":
            if index is not None:
                self.states.pop(index, None)
                self.relabels.pop(index, None)
            self.missed.pop(d.undoes or "", None)
            self.unsure.pop(d.undoes or "", None)
            return
        if index is not None:
            self.states[index] = d.verdict
            if d.verdict == "reclass" and d.new_class:
                self.relabels[index] = d.new_class
            else:
                self.relabels.pop(index, None)
        elif d.verdict == "missed" and d.review_id in self.missed:
            box, cls, _ = self.missed[d.review_id]
            self.missed[d.review_id] = (box, cls, "missed")
        elif d.verdict == "unsure" and d.review_id in self.unsure:
            self.unsure[d.review_id] = "unsure"

    def status(self) -> str:
        """One line on the held frame and its selected detection."""
        fr = self.frame
        if fr is None:
            return "Live. Freeze a frame (F) or take one from the queue (N) to review it."
        n = len(fr.detections)
        head = f"Frame {fr.sequence} ({fr.queue_reason}). "
        if self.selected is not None and n:
            b = fr.detections[self.selected]
            score = f" {b.score:.2f}" if b.score is not None else ""
            return head + f"Detection {self.selected + 1} of {n}: {b.class_name}{score}."
        if n:
            return head + f"All {n} detections decided."
        return head + "No detections: draw any defect the model missed (M), or flag it (U)."


VERBS = {"confirm": "confirmed", "reject": "rejected", "reclass": "relabelled"}


def describe(verdict: str, det: Any, new_class: str | None, sequence: int) -> str:
    """A decision in words, as the operator reads it back: ``rejected scratch 0.62``."""
    if det is not None:
        score = f" {det.score:.2f}" if det.score is not None else ""
        what = f"{VERBS.get(verdict, verdict)} {det.class_name}{score}"
        return what + (f" as {new_class}" if verdict == "reclass" and new_class else "")
    if verdict == "missed":
        return f"added missed {new_class or ''}".strip()
    if verdict == "unsure":
        return f"flagged frame {sequence} unsure"
    return f"{verdict} frame {sequence}"
