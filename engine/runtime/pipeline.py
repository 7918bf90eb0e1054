"""The pipeline: source -> detector -> measurers -> results, no Qt.

Three stages overlap on the machine's cores, each on its own thread: *capture* (reading the source; the
simulated line renders here), *inference* (the detector) and *statistics* (the measurers, then the results:
the mailbox, the sinks). Between two stages is a hand-off (:mod:`engine.runtime.handoff`). From a live source
(a camera, the paced simulator) the newest frame wins: a slow stage misses frames, and each missed frame is a
drop counted against the stage that was too slow to take it (``source``: the camera moved on before capture
read it). From a source that is not live (a file, the unpaced simulator) the hand-offs are short queues: every
frame is processed, in order. ``PipelineConfig.pipelined = False`` runs the stages one after another on one
thread instead (for comparison). The measurers may run on every ``stats_stride``-th frame only; the frames
between carry the last measured values.

Results go to a one-slot mailbox that a display polls at its own rate, and to sinks (a JSONL writer, a store)
called on the statistics stage for every processed frame. When the display says how large it draws
(``view_size``), the statistics stage also prepares the frame's picture for it (RGB, shrunk to fit), so the
display's thread only uploads it.

When the source fails (cannot open, stalls, errors, repeats one image) the pipeline reports it, closes it,
waits with exponential backoff on the source's clock, reopens and carries on.
"""

from __future__ import annotations

import enum
import threading
import time
import zlib
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import cv2
import numpy as np

from engine.core.frame import Frame
from engine.core.protocols import Alarm, Detections, Detector, Measurer
from engine.runtime import threads
from engine.runtime.handoff import Handoff, Item
from engine.sources.base import FrameSource, SourceEnded, SourceError, SourceStalled
from engine.sources.opencv import FrameError

STAGES = ("source", "inference", "statistics")  # where a frame can be dropped
CPU_STAGES = ("capture", "inference", "statistics")  # the threads whose CPU time is counted


class State(str, enum.Enum):
    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"
    RECONNECTING = "reconnecting"
    ENDED = "ended"  # a finite source ran out, or the frame budget was reached
    STOPPED = "stopped"
    FAILED = "failed"  # a detector or measurer raised: a bug, reported, not retried


@dataclass(frozen=True)
class SourceEvent:
    kind: str  # opened, unavailable, stalled, error, frozen, recovered, frame-error, ended, failed
    message: str
    wall_time: float
    sequence: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"type": "event", "kind": self.kind, "message": self.message, "wall_time": round(self.wall_time, 3),
                "sequence": self.sequence}


@dataclass
class FrameResult:
    frame: Frame
    detections: Detections | None
    measurements: dict[str, Any]
    alarms: list[Alarm]
    latency_ms: float  # from the frame leaving the source to this result
    dropped_total: int
    detector: dict[str, Any] | None = None
    captured: float = 0.0  # time.monotonic() when the frame left the source
    measured: bool = True  # False: the measurements are the last measured frame's (``stats_stride``)
    view: np.ndarray | None = None  # the picture for a display (RGB, shrunk to its ``view_size``), if it asked

    def to_record(self) -> dict[str, Any]:
        f = self.frame
        rec: dict[str, Any] = {
            "type": "frame",
            "sequence": f.sequence,
            "timestamp": round(f.timestamp, 3),
            "source": f.source_id,
            "width": f.width,
            "height": f.height,
            "detector": self.detector,
            "detections": self.detections.to_list() if self.detections is not None else [],
            "measurements": self.measurements,
            "alarms": [a.to_dict() for a in self.alarms],
            "latency_ms": round(self.latency_ms, 2),
            "dropped_total": self.dropped_total,
        }
        if not self.measured:
            rec["measured"] = False
        if f.ground_truth is not None:
            rec["ground_truth"] = f.ground_truth.to_dict()
        return rec


def prepare_view(frame: Frame, max_size: tuple[int, int]) -> np.ndarray:
    """The frame as a contiguous RGB picture shrunk to fit ``max_size`` (width, height); never enlarged."""
    w, h = max_size
    scale = min(w / frame.width, h / frame.height, 1.0)
    img = frame.image
    if scale < 1.0:
        size = (max(1, round(frame.width * scale)), max(1, round(frame.height * scale)))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA if scale <= 0.5 else cv2.INTER_LINEAR)
    if frame.channel_order == "BGR":
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(img)


@dataclass
class PipelineConfig:
    read_timeout_s: float = 2.0
    retry_initial_s: float = 0.25
    retry_max_s: float = 8.0
    frozen_after: int = 8  # identical frames in a row before the source counts as frozen
    max_frames: int | None = None
    # A source that cannot be opened at all on the first try is a user error (a bad path, no such
    # camera): fail at once. Once it has worked, failures are retried.
    fail_on_first_open: bool = False
    # Stop retrying after the source has been down this many wall-clock seconds (None: never).
    give_up_after_s: float | None = None
    pipelined: bool = True  # the stages on their own threads; False: one after another on one thread
    stats_stride: int = 1  # the measurers run on every n-th frame that reaches them; 0: threads.auto_stats_stride
    # pipelined and live: the statistics thread's OS priority is lowered by this much (nice; 0: as the others), so
    # that on a busy machine the frame on its way to the screen goes first; where there is no per-thread nice,
    # nothing changes
    statistics_nice: int = 0  # the station sets [pipeline] statistics_nice (10 by default)
    queue_frames: int = 2  # frames waiting between two stages when the source is not live


@dataclass
class PipelineStats:
    processed: int = 0
    dropped: int = 0
    failures: int = 0
    events: Counter = field(default_factory=Counter)
    fps: float = 0.0
    latency_ms: float = 0.0
    started: float = 0.0
    ended: float = 0.0
    drops: Counter = field(default_factory=Counter)  # stage -> frames dropped there (STAGES)
    cpu_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CPU_STAGES, 0.0))  # thread CPU time
    measured: int = 0  # frames the measurers ran on
    pipelined: bool = True

    def to_dict(self) -> dict[str, Any]:
        wall = (self.ended or time.monotonic()) - self.started if self.started else 0.0
        return {"frames": self.processed, "dropped": self.dropped, "source_failures": self.failures,
                "events": dict(self.events), "wall_s": round(wall, 3),
                "fps": round(self.processed / wall, 2) if wall > 0 else 0.0,
                "dropped_by_stage": {s: self.drops[s] for s in STAGES}, "measured": self.measured,
                "stages": "pipelined" if self.pipelined else "serial",
                "cpu_s": {k: round(v, 3) for k, v in self.cpu_s.items()}}


Sink = Callable[[FrameResult], None]
EventSink = Callable[[SourceEvent], None]


class Pipeline:
    """Runs a source through a detector and measurers. Control methods are thread-safe."""

    def __init__(self, source: FrameSource, detector: Detector | Callable[[], Detector] | None = None,
                 measurers: Sequence[Measurer] = (),
                 config: PipelineConfig | None = None, sinks: Sequence[Sink] = (),
                 event_sinks: Sequence[EventSink] = ()) -> None:
        self.source = source
        self.detector = detector
        self.measurers = list(measurers)
        self.config = config or PipelineConfig()
        self.sinks = list(sinks)
        self.event_sinks = list(event_sinks)
        self.stats = PipelineStats(pipelined=self.config.pipelined)
        self.state = State.IDLE
        self.error: str | None = None
        self.view_size: tuple[int, int] | None = None  # set by a display: results then carry a picture for it
        # set by a display: called on a worker thread each time newest() changes, so the display need not poll
        # for it (it must return at once: post a wake-up to the display's own thread and nothing more)
        self.on_newest: Callable[[], None] | None = None
        self._stop = threading.Event()
        self._resume = threading.Event()
        self._resume.set()
        self._enough = threading.Event()  # max_frames processed (live: frames still in the stages are not)
        self._lock = threading.Lock()
        self._latest: FrameResult | None = None
        self._latest_id = 0
        self._events: deque[SourceEvent] = deque(maxlen=200)
        self._thread: threading.Thread | None = None
        self._times: deque[float] = deque(maxlen=60)
        self._preview: FrameResult | None = None  # the inference stage's newest, for a display
        self._preview_id = 0
        self._inflight = 0  # frames handed to the stages and not yet out (a pause waits for them)
        self._seen = 0  # frames that reached the measurers' stage (the stride counts these)
        self.stride = max(1, self.config.stats_stride)  # decided when the line starts (0: by the source and cores)
        self._last_values: dict[str, Any] = {}

    # ------------------------------------------------------------------ control

    def start(self) -> None:
        """Run in a daemon worker thread. Opening the source happens there too, never on the caller."""
        if self._thread is not None:
            raise RuntimeError("pipeline already started")
        self._thread = threading.Thread(target=self.run, name="pipeline", daemon=True)
        self._thread.start()

    def pause(self) -> None:
        self._resume.clear()

    def resume(self) -> None:
        self._resume.set()

    def stop(self) -> None:
        """Ask the worker to finish; returns at once (a stuck device cannot freeze the caller)."""
        self._stop.set()
        self._resume.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the worker; True if it has finished."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def latest(self) -> tuple[int, FrameResult | None]:
        """The newest result and a counter that changes when a newer one arrives."""
        with self._lock:
            return self._latest_id, self._latest

    def newest(self) -> tuple[int, FrameResult | None]:
        """For a display: the newest frame with its detections and a counter that changes with it. Pipelined and
        with a ``view_size`` set, it comes straight from the inference stage, before statistics: its picture is
        prepared, its measurements are the last measured frame's (``measured`` False), it raises no alarms, and
        the frame itself reaches :meth:`latest` and the sinks a moment later. Otherwise it is :meth:`latest`."""
        with self._lock:
            if self._preview is not None:
                return self._preview_id, self._preview
        return self.latest()

    def drain_events(self) -> list[SourceEvent]:
        with self._lock:
            out = list(self._events)
            self._events.clear()
        return out

    def _set_state(self, state: State) -> None:
        if self.state != State.FAILED:  # a failed stage has the last word
            self.state = state

    # ------------------------------------------------------------------ capture (the worker thread)

    def run(self) -> PipelineStats:
        """Process frames until stopped, the source ends, or ``max_frames`` are done."""
        cfg = self.config
        src = self.source
        self.stats = PipelineStats(started=time.monotonic(), pipelined=cfg.pipelined)
        self.stride = cfg.stats_stride or threads.auto_stats_stride(bool(src.live))
        opened = False
        failures = 0
        down_since: float | None = None
        last_seq: int | None = None
        last_print: int | None = None
        same = 0
        ever_opened = False
        down_wall: float | None = None
        handed = 0
        stages: list[threading.Thread] = []
        first: Handoff | None = None
        cpu0 = time.thread_time()
        self.state = State.RUNNING
        try:
            if self.detector is not None and not isinstance(self.detector, Detector):
                # A factory: the model loads here, on the worker, so a window never waits for it.
                # A model that cannot be used is said in one sentence; the line is still watched without it.
                try:
                    self.detector = self.detector()
                    self._event("model", f"model {self.detector.name} on {self.detector.device}")
                except ValueError as e:
                    self.detector = None
                    self._event("model-error", f"{e}; running without a detector")
            if cfg.pipelined:
                first, stages = self._start_stages(bool(src.live))
                cpu0 = time.thread_time()
            while not self._stop.is_set():
                if not self._resume.is_set():
                    self._wait_idle()
                    self._set_state(State.PAUSED)
                    self._resume.wait()
                    self._set_state(State.RUNNING)
                    last_seq = None  # frames missed while paused are not drops
                    continue
                done = handed if (cfg.pipelined and not src.live) else self.stats.processed
                if self._enough.is_set() or (cfg.max_frames is not None and done >= cfg.max_frames):
                    self._set_state(State.ENDED)
                    break
                if not opened:
                    try:
                        src.open()
                        opened = ever_opened = True
                        self._event("opened", f"opened {src.describe()}")
                    except SourceError as e:
                        if cfg.fail_on_first_open and not ever_opened:
                            self.error = str(e)
                            self._event("unavailable", self.error)
                            self.state = State.FAILED
                            break
                        failures, down_since = self._failed("unavailable", str(e), failures, down_since)
                        continue
                if failures and cfg.give_up_after_s is not None:
                    down_wall = down_wall if down_wall is not None else time.monotonic()
                    if time.monotonic() - down_wall > cfg.give_up_after_s:
                        self.error = (f"{src.describe()} has delivered nothing for {cfg.give_up_after_s:g} s; "
                                      "giving up")
                        self._event("failed", self.error)
                        self.state = State.FAILED
                        break
                try:
                    frame = src.read(cfg.read_timeout_s)
                except SourceEnded as e:
                    self._event("ended", str(e))
                    self._set_state(State.ENDED)
                    break
                except FrameError as e:
                    self._event("frame-error", str(e))
                    continue
                except SourceError as e:
                    kind = "stalled" if isinstance(e, SourceStalled) else "error"
                    opened = self._close()
                    failures, down_since = self._failed(kind, str(e), failures, down_since)
                    continue
                t_in = time.monotonic()
                print_ = zlib.crc32(frame.image[::7, ::7].tobytes())
                same = same + 1 if print_ == last_print else 0
                last_print = print_
                if cfg.frozen_after and same >= cfg.frozen_after and src.detect_frozen:
                    opened = self._close()
                    same = 0
                    last_print = None
                    failures, down_since = self._failed(
                        "frozen", f"{src.describe()} returned the same image {cfg.frozen_after + 1} times in a row",
                        failures, down_since)
                    continue
                if failures:
                    gap = (src.clock.now() - down_since) if down_since is not None else 0.0
                    self._event("recovered", f"frames again after {failures} failed attempts ({gap:.1f} s)",
                                frame.sequence)
                    failures, down_since, down_wall = 0, None, None
                    self._set_state(State.RUNNING)
                missed = 0
                if last_seq is not None and src.live and frame.sequence > last_seq + 1:
                    missed = frame.sequence - last_seq - 1
                last_seq = frame.sequence
                drops = Counter({"source": missed}) if missed else Counter()
                if first is None:
                    cpu = self.stats.cpu_s
                    cpu["capture"] = time.thread_time() - cpu0 - cpu["inference"] - cpu["statistics"]
                    self._process(frame, t_in, drops)
                    continue
                with self._lock:
                    self._inflight += 1
                gone = first.put(Item((frame, t_in), drops), self._stop)
                self._settle(len(gone))
                handed += 1
                self.stats.cpu_s["capture"] = time.thread_time() - cpu0
        except Exception as e:  # a bug in a detector or measurer: say it and stop, never die silently
            self._fail(e)
        finally:
            if first is not None:
                first.close()  # the stages finish the frames they hold (unless stopping), then end
            for t in stages:
                t.join()
            self._close()
            self.stats.ended = time.monotonic()
            if self.state in (State.RUNNING, State.PAUSED, State.RECONNECTING):
                self.state = State.STOPPED
        return self.stats

    def _wait_idle(self) -> None:
        """Wait until the frames already handed to the stages are out (a paused line shows all it took)."""
        while not self._stop.is_set():
            with self._lock:
                if self._inflight <= 0:
                    return
            time.sleep(0.005)

    def _settle(self, n: int) -> None:
        if n:
            with self._lock:
                self._inflight -= n

    def _fail(self, e: BaseException) -> None:
        with self._lock:
            if self.state == State.FAILED:
                return
            self.error = f"{type(e).__name__}: {e}"
            self.state = State.FAILED
        self._event("failed", f"processing failed: {self.error}")
        self._stop.set()  # the other stages end too

    # ------------------------------------------------------------------ the stages

    def _start_stages(self, live: bool) -> tuple[Handoff, list[threading.Thread]]:
        """The inference and statistics threads and the hand-off to the first of them."""
        n = self.config.queue_frames
        to_inference = Handoff("inference", newest_wins=live, capacity=n)
        to_statistics = Handoff("statistics", newest_wins=live, capacity=n)
        threads = [threading.Thread(target=self._inference_stage, args=(to_inference, to_statistics),
                                    name="pipeline-inference", daemon=True),
                   threading.Thread(target=self._statistics_stage, args=(to_statistics, live),
                                    name="pipeline-statistics", daemon=True)]
        for t in threads:
            t.start()
        return to_inference, threads

    def _inference_stage(self, inbox: Handoff, outbox: Handoff) -> None:
        cpu0 = time.thread_time()
        try:
            while True:
                item = inbox.get(self._stop)
                if item is None:
                    break
                frame, t_in = item.payload
                detections, det_info = self._detect(frame)
                item.payload = (frame, t_in, detections, det_info)
                size = self.view_size
                if size is not None:  # a display waits for the picture and the boxes, not for statistics
                    view = prepare_view(frame, size)
                    early = FrameResult(frame, detections, self._last_values, [],
                                        (time.monotonic() - t_in) * 1000.0, self.stats.dropped, det_info,
                                        captured=t_in, measured=False, view=view)
                    with self._lock:
                        self._preview = early
                        self._preview_id += 1
                    self._wake()
                self._settle(len(outbox.put(item, self._stop)))
                self.stats.cpu_s["inference"] = time.thread_time() - cpu0
        except Exception as e:  # noqa: BLE001 - a bug in the detector: said, and the line stops
            self._fail(e)
        finally:
            outbox.close()

    def _statistics_stage(self, inbox: Handoff, live: bool) -> None:
        if live and self.config.statistics_nice > 0:
            threads.lower_priority(self.config.statistics_nice)
        cpu0 = time.thread_time()
        limit = self.config.max_frames
        try:
            while True:
                item = inbox.get(self._stop)
                if item is None:
                    break
                try:
                    if live and self._enough.is_set():
                        continue  # enough frames: the ones still coming are neither processed nor drops
                    frame, t_in, detections, det_info = item.payload
                    self._publish(frame, t_in, detections, det_info, item.drops)
                    if limit is not None and self.stats.processed >= limit:
                        self._enough.set()
                finally:
                    self._settle(1)
                    self.stats.cpu_s["statistics"] = time.thread_time() - cpu0
        except Exception as e:  # noqa: BLE001 - a bug in a measurer or a sink: said, and the line stops
            self._fail(e)

    def _detect(self, frame: Frame) -> tuple[Detections | None, dict[str, Any] | None]:
        detector = self.detector
        if detector is None:
            return None, None
        detections = detector.detect([frame])[0]
        return detections, {"name": detector.name, "device": detector.device,
                            "inference_ms": round(detections.inference_ms, 2)}

    def _process(self, frame: Frame, t_in: float, drops: Counter | None = None) -> None:
        """All the stages one after another, on the calling thread (``pipelined = False``)."""
        c0 = time.thread_time()
        detections, det_info = self._detect(frame)
        c1 = time.thread_time()
        self._publish(frame, t_in, detections, det_info, drops or Counter())
        cpu = self.stats.cpu_s
        cpu["inference"] += c1 - c0
        cpu["statistics"] += time.thread_time() - c1

    def _publish(self, frame: Frame, t_in: float, detections: Detections | None, det_info: dict[str, Any] | None,
                 drops: Counter) -> None:
        """Measure (every ``stats_stride``-th frame), count, hand the result to the mailbox and the sinks."""
        st = self.stats
        measure = self._seen % self.stride == 0
        self._seen += 1
        alarms: list[Alarm] = []
        if measure:
            values: dict[str, Any] = {}
            for m in self.measurers:
                out = m.measure(frame, detections)
                values.update(out.values)
                alarms.extend(out.alarms)
            self._last_values = values
            st.measured += 1
        else:
            values = self._last_values
        for a in alarms:  # a display that shows only the newest frame still hears of every alarm
            self._event("alarm", f"{a.name} {a.severity}: {a.message}", frame.sequence, to_sinks=False)
        with self._lock:
            for stage, n in drops.items():
                st.drops[stage] += n
                st.dropped += n
        size = self.view_size
        view = prepare_view(frame, size) if size is not None and self._preview is None else None
        now = time.monotonic()
        result = FrameResult(frame, detections, values, alarms, (now - t_in) * 1000.0, st.dropped, det_info,
                             captured=t_in, measured=measure, view=view)
        self._times.append(now)
        st.processed += 1
        st.latency_ms = result.latency_ms if st.processed == 1 else 0.9 * st.latency_ms + 0.1 * result.latency_ms
        if len(self._times) >= 2 and self._times[-1] > self._times[0]:
            st.fps = (len(self._times) - 1) / (self._times[-1] - self._times[0])
        with self._lock:
            self._latest = result
            self._latest_id += 1
            previewed = self._preview is not None
        if not previewed:
            self._wake()
        for sink in self.sinks:
            sink(result)

    def _wake(self) -> None:
        wake = self.on_newest
        if wake is not None:
            try:
                wake()
            except Exception:  # a display that went away must not stop the line
                self.on_newest = None

    def _close(self) -> bool:
        try:
            self.source.close()
        except Exception:  # closing a broken device must not take the pipeline down
            pass
        return False

    def _failed(self, kind: str, message: str, failures: int, down_since: float | None) -> tuple[int, float]:
        clock = self.source.clock
        if down_since is None:
            down_since = clock.now()
        failures += 1
        self.stats.failures += 1
        delay = min(self.config.retry_max_s, self.config.retry_initial_s * 2 ** (failures - 1))
        self._event(kind, f"{message}; retrying in {delay:.2g} s")
        self._set_state(State.RECONNECTING)
        clock.sleep(delay, self._stop)
        return failures, down_since

    def _event(self, kind: str, message: str, sequence: int | None = None, to_sinks: bool = True) -> None:
        ev = SourceEvent(kind, message, time.time(), sequence)
        with self._lock:
            self.stats.events[kind] += 1
            self._events.append(ev)
        if to_sinks:
            for sink in self.event_sinks:
                sink(ev)
