"""The station model: one source and pipeline, the model, the drift monitor and trends, the feedback store, the
review router and queue, and the operator's review session. No Qt: the window and the headless run are two
faces of it.

The model announces its changes through :class:`Announcer` callbacks. Each announcer says on which thread it
fires; a face that draws (the window) hands every callback that may fire on a worker thread to its own GUI
thread first. The review session (:class:`ReviewSession`) is not thread-safe: drive it from one thread (the
window's GUI thread), including :meth:`ReviewSession.settle` for the acknowledgements that
:attr:`Station.acked` announces on the feedback store's writer thread.
"""

from __future__ import annotations

import getpass
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import resources
from engine.core.announce import Announcer
from engine.monitoring.drift import BatchPoint, DriftMonitor, StatsMeasurer, measurers_for
from engine.monitoring.reference import ReferenceError
from engine.monitoring.trends import TrendStore, read_events, read_trend
from engine.review.feedback import Ack, Decision, FeedbackError, FeedbackStore
from engine.review.router import ReviewRouter, RouterConfig
from engine.runtime.field import FieldWatch
from engine.runtime import threads
from engine.runtime.pipeline import FrameResult, Pipeline, PipelineConfig, SourceEvent, State
from engine.runtime.review_queue import ReviewQueue
from engine.runtime.review_session import AckRecord, ReviewSession, frame_for_review
from engine.sources import open_source

FALLBACK_CLASSES = ("scratch", "dent", "contamination")


@dataclass(frozen=True)
class ModelChoice:
    """Which detector runs: ``path`` None is the built-in model, ``"none"`` no model, else a model file;
    ``confidence`` None is the model's own threshold."""

    path: str | None = None
    confidence: float | None = None

    @property
    def label(self) -> str:
        return self.path or "built-in"



def builtin_classes() -> tuple[str, ...]:
    """The built-in model's classes, from its card (a small JSON file; torch is not imported for it)."""
    try:
        card = json.loads(resources.path("builtin_detector.json").read_text(encoding="utf-8"))
        return tuple(str(c) for c in card["classes"]) or FALLBACK_CLASSES
    except (OSError, ValueError, KeyError, TypeError):
        return FALLBACK_CLASSES


def trend_history(data_dir: Path, reference_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The stored minute aggregates for ``reference_id`` and the station's events (disk: off a GUI thread)."""
    return read_trend(data_dir, reference_id=reference_id), read_events(data_dir)


# ---------------------------------------------------------------------------------------------- the station


@dataclass
class AutoReviewCounts:
    submitted: int = 0
    acknowledged: int = 0
    failed: int = 0
    samples: int = 0
    reasons: Counter = field(default_factory=Counter)  # why decisions failed: sentence -> how many
    latencies: list[float] = field(default_factory=list)
    frames: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class Station:
    """The inspection station without a face.

    Announcements (``station.<name>.connect(fn)``), and the thread each fires on:

    - ``events(SourceEvent)``: the pipeline's source events, on its worker thread; alarms (kind ``"alarm"``) too.
      A suggestion to retrain (kind ``"retrain-suggested"``, :mod:`engine.runtime.field`) too, once.
    - ``problem(str)``: one sentence about something the station works around, on the calling thread.
    - ``frame_done(FrameResult)``: every processed frame, on the pipeline's worker thread (headless sinks).
    - ``batch(BatchPoint)``: a drift batch closed, on the pipeline's worker thread.
    - ``marked(time, kind)``: an event to draw on the trends (model loaded, source opened, recalibration), on the
      pipeline's worker thread or the calling thread.
    - ``model_ready(detector)``: a detector was loaded (pipeline worker) or reused (calling thread).
    - ``queue_changed(int)``: the review queue's length, on the pipeline's worker, the shadow model's thread
      (a disagreement queued with reason ``shadow``, see :meth:`start_shadow`) or the calling thread.
    - ``acked(AckRecord)``: a decision is durable or failed, on the feedback store's writer thread.
    - ``opened(str)``, ``stopped()``, ``monitor_changed(DriftMonitor | None)``: on the calling thread.
    - ``classes_changed(tuple[str, ...])``: the running model's classes differ from the last ones, with
      ``model_ready``.

    ``permits(permission) -> bool`` is the gate a face installs (the window's sign-in); by default everything
    is allowed. ``operator`` is who decides: the signed-in badge (:meth:`sign_in`), else the name typed in
    (:meth:`set_operator`), never read from a widget.
    """

    def __init__(self, config: dict[str, Any], data_dir: Path, uri: str | None = None,
                 model: ModelChoice | None = None, *, realtime: bool = True, feedback: bool = True,
                 keep_trends: bool = True, strict: bool = False, reference: str | None = None,
                 pipeline_config: PipelineConfig | None = None) -> None:
        self.config = config
        self.data_dir = Path(data_dir)
        self.uri = uri or config["source"]["uri"]
        self.model = model or ModelChoice()
        # No model asked for: the registry's champion runs (the built-in model while none is promoted), and the
        # station follows it when it changes; an explicit model (a file, or "none") wins.
        self.follows_champion = self.model.path is None
        self.model_note = ""
        if self.follows_champion:
            self.model = ModelChoice(self.champion_path(strict), self.model.confidence)
        self.realtime, self.keep_trends, self.strict, self.reference = realtime, keep_trends, strict, reference
        pc = config["pipeline"]
        self.pipeline_config = pipeline_config or PipelineConfig(
            read_timeout_s=config["source"]["read_timeout_s"], retry_initial_s=pc["retry_initial_s"],
            retry_max_s=pc["retry_max_s"], frozen_after=pc["frozen_after"], pipelined=pc["pipelined"],
            stats_stride=pc["stats_stride"], statistics_nice=pc.get("statistics_nice", 0))
        self.threads = threads.use(threads.plan(self.pipeline_config.pipelined))
        for name in ("events", "problem", "frame_done", "batch", "marked", "model_ready", "queue_changed", "acked",
                     "opened", "stopped", "monitor_changed", "classes_changed"):
            setattr(self, name, Announcer(name))
        self.pipeline: Pipeline | None = None
        self.last_pipeline: Pipeline | None = None  # the newest line, running or not (the run's summary)
        self._retired: list[Pipeline] = []  # stopped pipelines whose thread has not finished yet
        self.detector: Any = None  # the loaded model, reused across source changes
        self._generation = 0
        self.classes: tuple[str, ...] = builtin_classes()
        self.monitor: DriftMonitor | None = None
        self.trend_store: TrendStore | None = None
        self._history_loaded: set[str] = set()
        review = config.get("review") or {}
        self.router = ReviewRouter(RouterConfig.from_config(review))
        # Frames set aside for review (most valuable first, compressed), offered on the pipeline's worker while
        # someone may review (signed in), so nobody meets a pile of stale frames at sign-in.
        self.queue = ReviewQueue(int(review.get("queue_length", 50)), float(review.get("max_age_s", 900.0)))
        # The unbiased random sample that field accuracy is measured on ([accuracy] sample_share).
        self.router.cfg.sample_rate = float((config.get("accuracy") or {}).get("sample_share", 0.01))
        self._auto: Any = None
        self.auto_counts = AutoReviewCounts()
        self.session: Any = None  # who is signed in (engine.security.auth.Session), None: nobody
        self._typed_operator = getpass.getuser()
        self.permits: Callable[[str], bool] = lambda permission: True
        self.store: FeedbackStore | None = None
        self.store_error: str | None = None
        if feedback:
            self.open_store()
        self.review = ReviewSession(self)
        self.field = FieldWatch(self)  # the label-free estimate, the suggestion to retrain, the shadow model
        self.acked.connect(self.field.on_ack)

    # ------------------------------------------------------------------ who

    @property
    def operator(self) -> str:
        """The operator of every decision: the signed-in badge, else the name typed in."""
        if self.session is not None:
            return str(self.session.badge)
        return self._typed_operator.strip() or "operator"

    def set_operator(self, name: str) -> None:
        """The name typed in for a station without sign-in (ignored while someone is signed in)."""
        self._typed_operator = name

    def sign_in(self, session: Any) -> None:
        self.session = session

    # ------------------------------------------------------------------ stores

    def _storage(self, key: str, default: float) -> float:
        return float((self.config.get("storage") or {}).get(key, default))

    def open_store(self) -> FeedbackStore | None:
        if self.store is None:
            try:
                self.store = FeedbackStore(self.data_dir, busy_timeout_s=self._storage("busy_timeout_s", 10.0))
                self.store_error = None
            except FeedbackError as e:
                if self.strict:
                    raise
                self.store_error = str(e)
        return self.store

    def submit(self, d: Decision, index: int | None, label: str, wait: bool = False) -> None:
        """Hand a decision to the store; ``wait``: the caller is held while the store is behind (back-pressure)."""
        assert self.store is not None
        self.store.submit(d, on_ack=lambda a: self.acked.emit(AckRecord(a, d, index, label)), wait=wait)

    # ------------------------------------------------------------------ the model

    def champion_path(self, strict: bool = True) -> str | None:
        """The registry's champion (None: the built-in model). A damaged registry raises ``RegistryError`` when
        ``strict``, else the built-in model runs and :attr:`model_note` says why."""
        from engine.inference.registry import RegistryError, champion_path

        try:
            return champion_path(self.data_dir)
        except RegistryError as e:
            if strict:
                raise
            self.model_note = f"{e}; running the built-in model"
            return None

    def load_model(self) -> Any:
        """Load the chosen detector now and run it on one frame, on the calling thread (raises ``ModelError``);
        None for no model."""
        if self.model.path == "none":
            return None
        from engine.inference import load_detector, prove

        threads.use(self.threads, torch_too=True)  # before the model loads: its session takes the count then
        detector = load_detector(self.model.path, confidence=self.model.confidence)
        prove(detector)  # it runs on a frame before the line starts on it
        self._loaded(detector, self._generation)
        return self.detector

    def use_detector(self, detector: Any) -> None:
        """Run ``detector``, already loaded, from the next start of the line on: its classes and its threshold
        become the station's (announced on the calling thread)."""
        self._generation += 1
        self._loaded(detector, self._generation)

    def _loaded(self, detector: Any, generation: int) -> None:
        if generation != self._generation:
            return
        self.detector = detector
        monitor = self.monitor
        if monitor is not None:
            monitor.use_model(detector)  # novelty only against this model's own embedding baseline
        conf = getattr(detector, "confidence", None)
        if conf is not None:
            self.router.cfg.threshold = float(conf)  # "near the threshold" means this model's threshold
        classes = tuple(getattr(detector, "classes", ()) or ())
        if classes and classes != self.classes:
            self.classes = classes  # one reference swapped: readers on other threads see the old or the new
            self.classes_changed.emit(classes)
        self.model_ready.emit(detector)

    def _detector_for_pipeline(self) -> Any:
        if self.model.path == "none":
            return None
        if self.detector is not None:
            return self.detector
        path, conf, generation = self.model.path, self.model.confidence, self._generation

        def load() -> Any:  # on the pipeline's worker: torch never loads on the caller's thread
            from engine.inference import load_detector

            threads.use(self.threads, torch_too=True)
            det = load_detector(path, confidence=conf)
            self._loaded(det, generation)
            return det

        return load

    def prove_model(self, path: str | None) -> tuple[Any, str]:
        """Load the model at ``path`` (None: the built-in one) and run it on one frame (the line's latest, else a
        grey one) without touching the running model: the detector and the line saying its classes and input.
        Raises ``ModelError`` with one sentence; the current model then goes on running. Any thread."""
        from engine.inference import load_detector, prove

        threads.use(self.threads, torch_too=True)
        detector = load_detector(path or None, confidence=self.model.confidence)
        latest = self.latest()
        return detector, prove(detector, latest.frame if latest is not None else None)

    def switch_model(self, path: str | None, detector: Any, restart: bool = True) -> None:
        """Run ``detector`` (proven by :meth:`prove_model` for ``path``) in place of the current model; the line
        restarts on it unless ``restart`` is False."""
        self.model = ModelChoice(path or None, self.model.confidence)
        self.use_detector(detector)
        if restart:
            self.open_source(self.uri)

    def set_model(self, path: str | None, restart: bool = True) -> None:
        """Use another model (None: the built-in one, ``"none"``: none); the line restarts on it unless
        ``restart`` is False (the caller opens the source next)."""
        self.model = ModelChoice(path or None, self.model.confidence)
        self.detector = None
        self._generation += 1
        if restart:
            self.open_source(self.uri)

    def set_confidence(self, value: float) -> None:
        self.model = ModelChoice(self.model.path, float(value))
        detector = self.pipeline.detector if self.pipeline is not None else None
        if detector is not None and hasattr(detector, "confidence"):
            detector.confidence = float(value)  # read by the worker on its next frame

    def start_shadow(self, path: str | None, share: float | None = None) -> Any:
        """Run the model at ``path`` (None: the built-in one) in shadow on ``share`` of the live frames (default
        ``[shadow] share``), on its own thread, from the next frame on. Loads it on the calling thread (raises
        ``ModelError``); the running model is not touched."""
        from engine.inference import load_detector

        detector = load_detector(path or None)
        return self.field.start_shadow(detector, share, name=f"{detector.name} ({path or 'built-in'})")

    def stop_shadow(self) -> dict[str, Any] | None:
        """Stop the shadow model; its last counts, or None when none ran."""
        return self.field.stop_shadow()

    @property
    def model_name(self) -> str:
        return str(getattr(self.detector, "name", "") or "")

    # ------------------------------------------------------------------ the line

    def open_source(self, uri: str) -> Pipeline:
        """Switch the line to ``uri`` and start it. Raises ``SourceError`` for a URI that cannot be used (the
        line being watched is then still watched); a reference that cannot be used is announced on
        :attr:`problem` and the line runs without drift measurement (``strict``: raises ``ReferenceError``)."""
        source = open_source(uri, realtime=self.realtime)
        self.retire()
        self.uri = uri
        on_batch = self._on_batch if self.keep_trends else None
        try:
            measurers = measurers_for(self.config, self.reference, on_batch=on_batch, data_dir=self.data_dir)
        except ReferenceError as e:
            if self.strict:
                raise
            self.problem.emit(f"{e}; watching without drift measurement")
            measurers = [StatsMeasurer()]
        self._attach_monitor(next((m for m in measurers if isinstance(m, DriftMonitor)), None))
        detector = self._detector_for_pipeline()
        self.pipeline = Pipeline(source, detector=detector, measurers=measurers, config=self.pipeline_config,
                                 sinks=[self._on_frame],
                                 event_sinks=[lambda ev, s=source: self._on_event(s, ev)])
        self.last_pipeline = self.pipeline
        self.pipeline.start()
        self.opened.emit(source.describe())
        if hasattr(detector, "detect"):  # a model already loaded, reused
            self.model_ready.emit(detector)
        return self.pipeline

    def start(self) -> None:
        """Resume a paused line, or open the current source again."""
        p = self.pipeline
        if p is not None and p.running:
            p.resume()
        else:
            self.open_source(self.uri)

    def pause(self) -> None:
        if self.pipeline is not None:
            self.pipeline.pause()

    def resume(self) -> None:
        if self.pipeline is not None:
            self.pipeline.resume()

    def stop(self) -> None:
        self.retire()
        self.stopped.emit()

    @property
    def running(self) -> bool:
        return self.pipeline is not None and self.pipeline.running

    @property
    def state(self) -> State:
        return self.pipeline.state if self.pipeline is not None else State.STOPPED

    def latest(self) -> FrameResult | None:
        return self.pipeline.latest()[1] if self.pipeline is not None else None

    def retire(self) -> None:
        """Stop the current pipeline without waiting for its thread (a stuck camera must not freeze the caller)."""
        if self.pipeline is not None:
            self.pipeline.stop()
            self._retired.append(self.pipeline)
            self.pipeline = None
        self._retired = [p for p in self._retired if p.running]

    def join(self, timeout: float | None = None) -> bool:
        return self.pipeline.join(timeout) if self.pipeline is not None else True

    def close(self, timeout: float = 3.0) -> None:
        """Stop the line, wait for its threads, and close the stores (their last acknowledgements go out).

        The feedback store gets ``[storage] drain_timeout_s`` to write what is queued; a decision still unwritten
        then is announced on :attr:`acked` as failed, so every decision ends acknowledged or failed."""
        self.retire()
        for p in self._retired:
            p.join(timeout=timeout)
        self._retired = []
        self.field.stop_shadow()
        if self.trend_store is not None:
            self.trend_store.close()
            self.trend_store = None
        if self.store is not None:
            self.store.close(self._storage("drain_timeout_s", 30.0))
            self.store = None

    # ------------------------------------------------------------------ drift and trends

    def _attach_monitor(self, monitor: DriftMonitor | None) -> None:
        self.monitor = monitor
        if monitor is not None and self.detector is not None:
            monitor.use_model(self.detector)
        if monitor is not None and self.keep_trends:
            ref = monitor.ref
            if self.trend_store is None or self.trend_store.reference_id != ref.id:
                if self.trend_store is not None:
                    self.trend_store.close()
                try:
                    self.trend_store = TrendStore(self.data_dir, ref.id)
                except RuntimeError as e:
                    self.problem.emit(f"{e}; trends are not kept")
                    self.trend_store = None
        self.monitor_changed.emit(monitor)

    def history_due(self, reference_id: str) -> bool:
        """True the first time it is asked for a reference: its stored history is then worth reading."""
        if reference_id in self._history_loaded:
            return False
        self._history_loaded.add(reference_id)
        return True

    def mark(self, when: float, kind: str) -> None:
        """An event worth a line on the trend charts (a recalibration): announced, not stored."""
        self.marked.emit(when, kind)

    def _on_batch(self, point: BatchPoint) -> None:
        """On the pipeline's worker: hand the batch to the trend store's writer (never blocks), announce it."""
        point = self.field.on_batch(point)
        store = self.trend_store
        if store is not None:
            store.add_batch(point)
        self.batch.emit(point)

    # ------------------------------------------------------------------ on the pipeline's worker

    def _on_event(self, source: Any, ev: SourceEvent) -> None:
        p = self.pipeline
        if p is None or p.source is not source:
            return  # a retired line's last words
        self.events.emit(ev)
        if ev.kind in ("model", "opened"):
            t = source.clock.now()  # the source's clock, the one its frames are stamped with
            if self.trend_store is not None:
                self.trend_store.add_event(t, ev.kind, ev.message)
            self.marked.emit(t, ev.kind)

    def _on_frame(self, result: FrameResult) -> None:
        for a in result.alarms:  # the pipeline keeps these from its event sinks; a face hears of every one
            self.events.emit(SourceEvent("alarm", f"{a.name} {a.severity}: {a.message}", time.time(),
                                         result.frame.sequence))
        if self._auto is not None:
            self._auto_review(result)
        elif self.store is not None and self.permits("review"):
            scores = [b.score or 0.0 for b in result.detections.boxes] if result.detections is not None else []
            routed = self.router.route(scores, result.measurements)
            if routed is not None and self.queue.offer(result, *routed):
                self.queue_changed.emit(len(self.queue))
        self.field.on_frame(result)
        self.frame_done.emit(result)

    # ------------------------------------------------------------------ the headless operator

    def review_automatically(self, reviewer: Any) -> None:
        """Review every frame with ``reviewer`` (``review(FrameForReview) -> [Decision]``) on the worker."""
        self.open_store()
        if self._auto is None:
            self.acked.connect(self.count_ack)
        self._auto = reviewer

    def _auto_review(self, result: FrameResult) -> None:
        scores = [b.score or 0.0 for b in result.detections.boxes] if result.detections is not None else []
        reason = self.router.reason(scores, result.measurements)
        fr = frame_for_review(result, reason or "oracle")
        c = self.auto_counts
        c.frames += 1
        decisions = self._auto.review(fr)
        if not decisions:
            if c.frames % 50 == 0 and self.store is not None:  # a bounded sample of frames nobody had to review
                self.store.keep_sample(fr)
                c.samples += 1
            return
        for d in decisions:
            with c.lock:
                c.submitted += 1
            # The worker waits while the store is behind: the line is paced by the disk, no decision is dropped.
            self.submit(d, None, d.verdict, wait=True)

    def count_ack(self, rec: AckRecord) -> None:
        """Count an acknowledgement of the headless operator (any thread)."""
        c = self.auto_counts
        with c.lock:  # the writer thread acknowledges while close() fails what is left, on the closing thread
            if isinstance(rec.ack, Ack):
                c.acknowledged += 1
                c.latencies.append(rec.ack.latency_ms)
            else:
                c.failed += 1
                c.reasons[str(rec.ack)] += 1

    def review_summary(self) -> dict[str, Any]:
        """The headless operator's counts: ``submitted`` is always ``acknowledged + failed`` (a decision with no
        answer when this is asked counts as failed, with that reason), and ``failures`` says why, with counts."""
        c = self.auto_counts
        with c.lock:
            reasons = Counter(c.reasons)
            unanswered = c.submitted - c.acknowledged - c.failed
            if unanswered > 0:
                reasons["no answer from the feedback store when the run ended (not confirmed stored)"] += unanswered
            out: dict[str, Any] = {"submitted": c.submitted, "acknowledged": c.acknowledged,
                                   "failed": c.failed + max(0, unanswered), "samples": c.samples}
        if reasons:
            out["failures"] = dict(reasons.most_common())
        if c.latencies:
            lat = sorted(c.latencies)
            out["ack_ms_median"] = round(lat[len(lat) // 2], 2)
            out["ack_ms_p95"] = round(lat[int(0.95 * (len(lat) - 1))], 2)
        return out

    def summary(self) -> dict[str, Any]:
        """The run's summary record: source, state, the pipeline's counts, and its error if any."""
        p = self.last_pipeline
        out: dict[str, Any] = {"type": "summary"}
        if p is not None:
            out.update(source=p.source.describe(), state=p.state.value, **p.stats.to_dict())
            if p.error:
                out["error"] = p.error
        return out
