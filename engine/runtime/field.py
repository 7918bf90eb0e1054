"""The station's field-accuracy and shadow parts: the label-free precision estimate of what is shown, the
suggestion to retrain, and the challenger model run in shadow with its disagreements sent for review.

:class:`FieldWatch` is owned by :class:`~engine.runtime.station.Station`; it is fed on the pipeline's worker
(every frame and drift batch), on the shadow's thread (each compared frame) and on the feedback store's writer
(acknowledged decisions), and keeps its shared state under one lock.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections import Counter
from typing import Any

from engine.inference.confidence import CalibrationError, ExpectedPrecision, load_calibration
from engine.review.accuracy import SHADOW_REASON, corrected_frames, judge, operator_truth, retrain_suggestion
from engine.runtime.pipeline import FrameResult, SourceEvent
from engine.runtime.review_session import frame_for_review
from engine.runtime.shadow import ShadowRunner

SUGGESTION_EVENT = "retrain-suggested"
ESTIMATE_METRIC = "expected_precision"
RECALL_METRIC = "expected_recall"
F1_METRIC = "expected_f1"


def _key(fr: Any) -> tuple:
    return (fr.source, fr.sequence, fr.timestamp)


class FieldWatch:
    def __init__(self, station: Any) -> None:
        self.station = station
        acc = station.config.get("accuracy") or {}
        self.floor = float(acc.get("floor", 0.8))
        self.min_corrected = int(acc.get("min_corrected_frames", 20))
        self.window = int(acc.get("window_frames", 300))
        self.share = float((station.config.get("shadow") or {}).get("share", 0.1))
        self.estimate: ExpectedPrecision | None = None
        self.calibration_note = ""  # why there is no estimate
        self._calibrated_for: str | None = None
        self.suggestion: str | None = None
        self.shadow: ShadowRunner | None = None
        self._lock = threading.Lock()
        self._corrected: set[tuple] = set()
        self._corrected_stored: int | None = None
        self._shadow_frames: dict[tuple, tuple[tuple, tuple, list]] = {}  # key -> champion, challenger, decisions
        self._judged: dict[tuple, str] = {}

    # ------------------------------------------------------------------ the label-free estimate (pipeline worker)

    def on_frame(self, result: FrameResult) -> None:
        name = str((result.detector or {}).get("name") or "")
        if name and name != self._calibrated_for:
            self._calibrated_for = name
            self._use_calibration(name)
        if self.estimate is not None and result.detections is not None:
            self.estimate.add([b.score if b.score is not None else 1.0 for b in result.detections.boxes],
                              getattr(result.detections, "candidates", None))
        shadow = self.shadow
        if shadow is not None:
            shadow.offer(result)

    def _use_calibration(self, model: str) -> None:
        self.estimate = None
        try:
            cal = load_calibration(self.station.data_dir)
        except CalibrationError as e:
            self.calibration_note = str(e)
            return
        if cal is None:
            self.calibration_note = "no calibration: run `inspection-station accuracy calibrate`"
        elif cal.model != model:
            self.calibration_note = f"the calibration was made for {cal.model}, not {model}"
        else:
            self.calibration_note = ""
            self.estimate = ExpectedPrecision(cal, self.window)

    @property
    def expected_precision(self) -> float | None:
        e = self.estimate
        return e.value if e is not None else None

    @property
    def expected_recall(self) -> float | None:
        e = self.estimate
        return e.recall if e is not None else None

    @property
    def expected_f1(self) -> float | None:
        e = self.estimate
        return e.f1 if e is not None else None

    def on_batch(self, point: Any) -> Any:
        """The batch with the estimate among its means (kept per minute by the trend store); the suggestion to
        retrain is checked here."""
        value = self.expected_precision
        self._check_suggestion(point.time, point.sequence)
        if value is None:
            return point
        extra = {k: v for k, v in ((RECALL_METRIC, self.expected_recall), (F1_METRIC, self.expected_f1))
                 if v is not None}
        return dataclasses.replace(point, means={**point.means, ESTIMATE_METRIC: value, **extra})

    def _check_suggestion(self, when: float, sequence: int) -> None:
        st = self.station
        monitor = st.monitor
        alarm = monitor is not None and monitor.overall_level == "alarm"
        if self._corrected_stored is None:
            try:
                self._corrected_stored = corrected_frames(st.data_dir)
            except Exception:  # noqa: BLE001 - an unreadable store counts none; the store says why elsewhere
                self._corrected_stored = 0
        with self._lock:
            corrected = self._corrected_stored + len(self._corrected)
        f1 = self.expected_f1
        if f1 is not None:  # the estimate that sees recall too, where the detector gives its candidates
            text = retrain_suggestion(f1, self.floor, alarm, corrected, self.min_corrected, "expected F1")
        else:
            text = retrain_suggestion(self.expected_precision, self.floor, alarm, corrected, self.min_corrected)
        if text and not self.suggestion:
            st.events.emit(SourceEvent(SUGGESTION_EVENT, text, time.time(), sequence))
            if st.trend_store is not None:
                st.trend_store.add_event(when, SUGGESTION_EVENT, text)
        self.suggestion = text

    # ------------------------------------------------------------------ decisions (feedback store's writer)

    def on_ack(self, rec: Any) -> None:
        from engine.review.feedback import Ack

        if not isinstance(rec.ack, Ack):
            return
        d = rec.decision
        with self._lock:
            if d.verdict in ("reject", "reclass", "missed"):
                self._corrected.add(_key(d.frame))
            if d.frame.queue_reason != SHADOW_REASON:
                return
            entry = self._shadow_frames.get(_key(d.frame))
            if entry is None:
                return
            champion, challenger, decisions = entry
            decisions.append(d)
            truth = operator_truth(champion, decisions)
            if truth is None:
                return
            self._judged[_key(d.frame)] = judge(champion, challenger, truth)
            shadow = self.shadow
        if shadow is not None:
            for outcome, n in self.shadow_judged().items():
                shadow.set_judged(outcome, n)

    def shadow_judged(self) -> dict[str, int]:
        """Who was right on the shadow frames the operators decided in full: champion, challenger, both, neither."""
        with self._lock:
            out = dict.fromkeys(("both", "champion", "challenger", "neither"), 0)
            out.update(Counter(self._judged.values()))
            return out

    # ------------------------------------------------------------------ the shadow

    def start_shadow(self, detector: Any, share: float | None = None, name: str = "") -> ShadowRunner:
        self.stop_shadow()
        with self._lock:
            self._shadow_frames.clear()
            self._judged.clear()
        self.shadow = ShadowRunner(detector, self.share if share is None else share, self._on_shadow, name=name)
        return self.shadow

    def stop_shadow(self) -> dict[str, Any] | None:
        shadow, self.shadow = self.shadow, None
        if shadow is None:
            return None
        shadow.stop()
        return shadow.snapshot()

    def _on_shadow(self, result: FrameResult, boxes: tuple, cmp: Any) -> None:
        """On the shadow's thread: a disagreeing frame goes for review with reason ``shadow``, the challenger's
        boxes kept in its statistics."""
        if not cmp.disagrees:
            return
        st = self.station
        shadow = self.shadow
        measurements = {**result.measurements, "shadow_boxes": json.dumps([b.to_dict() for b in boxes]),
                        "shadow_model": shadow.name if shadow is not None else "", "shadow_kinds": ",".join(cmp.kinds)}
        held = dataclasses.replace(result, measurements=measurements)
        fr = frame_for_review(held, SHADOW_REASON)
        with self._lock:
            if len(self._shadow_frames) > 5000:
                self._shadow_frames.pop(next(iter(self._shadow_frames)))
            self._shadow_frames[_key(fr)] = (tuple(fr.detections), boxes, [])
        if st._auto is not None:
            for d in st._auto.review(fr):
                with st.auto_counts.lock:
                    st.auto_counts.submitted += 1
                st.submit(d, None, d.verdict, wait=True)  # paced by the store, like the line
        elif st.store is not None:
            # Paced like every other reason ([review.quotas] shadow), so a busy challenger cannot flood the queue.
            if st.router.admit(SHADOW_REASON) and st.queue.offer(held, SHADOW_REASON,
                                                                 st.router.VALUES.get(SHADOW_REASON, 1.0)):
                st.queue_changed.emit(len(st.queue))


def field_report(data_dir: Any, config: dict[str, Any], since: float | None = None) -> dict[str, Any]:
    """Every stored figure of field accuracy (disk: off a GUI thread): the sampled precision and recall with their
    intervals, per class, shift and hour; the label-free estimate kept per minute with the drift trends; who was
    right on the shadow frames kept with the challenger's boxes; corrected frames; the latest retrain suggestion."""
    from engine.monitoring.trends import read_events, read_trend
    from engine.review.accuracy import field_accuracy, shadow_outcomes

    acc = config.get("accuracy") or {}
    out = field_accuracy(data_dir, since, acc.get("shift_starts_h") or (6, 14, 22))
    for metric in (ESTIMATE_METRIC, RECALL_METRIC, F1_METRIC):
        trend = read_trend(data_dir, metric, since)
        out[metric] = ({"value": round(float(trend[-1]["mean"]), 4), "minute": trend[-1]["minute"],
                        "trend": [{"minute": r["minute"], "value": round(float(r["mean"]), 4)}
                                  for r in trend[-240:]]} if trend else None)
    out["shadow"] = shadow_outcomes(data_dir, since)
    out["corrected_frames"] = corrected_frames(data_dir)
    events = [e for e in read_events(data_dir, since) if e["kind"] == SUGGESTION_EVENT]
    out["suggestion"] = events[-1]["detail"] if events else None
    return out
