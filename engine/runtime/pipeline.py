"""The pipeline: source -> detector -> measurers -> results, in one worker thread, no Qt.

Nothing queues. A live source keeps only its newest frame, so a slow pipeline
misses frames; the gaps in the source's sequence numbers are counted as drops.
Results go to a one-slot mailbox that a display polls at its own rate, and to
sinks (a JSONL writer, a store) called on the worker thread for every frame.

When the source fails (cannot open, stalls, errors, repeats one image) the
pipeline reports it, closes it, waits with exponential backoff on the source's
clock, reopens and carries on.
"""

from __future__ import annotations

import enum
import threading
import time
import zlib
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from engine.core.frame import Frame
from engine.core.protocols import Alarm, Detections, Detector, Measurer
from engine.sources.base import FrameSource, SourceEnded, SourceError, SourceStalled
from engine.sources.opencv import FrameError


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
        if f.ground_truth is not None:
            rec["ground_truth"] = f.ground_truth.to_dict()
        return rec


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

    def to_dict(self) -> dict[str, Any]:
        wall = (self.ended or time.monotonic()) - self.started if self.started else 0.0
        return {"frames": self.processed, "dropped": self.dropped, "source_failures": self.failures,
                "events": dict(self.events), "wall_s": round(wall, 3),
                "fps": round(self.processed / wall, 2) if wall > 0 else 0.0}


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
        self.stats = PipelineStats()
        self.state = State.IDLE
        self.error: str | None = None
        self._stop = threading.Event()
        self._resume = threading.Event()
        self._resume.set()
        self._lock = threading.Lock()
        self._latest: FrameResult | None = None
        self._latest_id = 0
        self._events: deque[SourceEvent] = deque(maxlen=200)
        self._thread: threading.Thread | None = None
        self._times: deque[float] = deque(maxlen=60)

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

    def drain_events(self) -> list[SourceEvent]:
        with self._lock:
            out = list(self._events)
            self._events.clear()
        return out

    # ------------------------------------------------------------------ the loop

    def run(self) -> PipelineStats:
        """Process frames until stopped, the source ends, or ``max_frames`` are done."""
        cfg = self.config
        src = self.source
        self.stats = PipelineStats(started=time.monotonic())
        opened = False
        failures = 0
        down_since: float | None = None
        last_seq: int | None = None
        last_print: int | None = None
        same = 0
        ever_opened = False
        down_wall: float | None = None
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
            while not self._stop.is_set():
                if not self._resume.is_set():
                    self.state = State.PAUSED
                    self._resume.wait()
                    self.state = State.RUNNING
                    last_seq = None  # frames missed while paused are not drops
                    continue
                if cfg.max_frames is not None and self.stats.processed >= cfg.max_frames:
                    self.state = State.ENDED
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
                    self.state = State.ENDED
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
                    self.state = State.RUNNING
                if last_seq is not None and src.live and frame.sequence > last_seq + 1:
                    self.stats.dropped += frame.sequence - last_seq - 1
                last_seq = frame.sequence
                self._process(frame, t_in)
        except Exception as e:  # a bug in a detector or measurer: say it and stop, never die silently
            self.error = f"{type(e).__name__}: {e}"
            self._event("failed", f"processing failed: {self.error}")
            self.state = State.FAILED
        finally:
            self._close()
            self.stats.ended = time.monotonic()
            if self.state in (State.RUNNING, State.PAUSED, State.RECONNECTING):
                self.state = State.STOPPED
        return self.stats

    def _process(self, frame: Frame, t_in: float) -> None:
        detections = None
        det_info = None
        if self.detector is not None:
            detections = self.detector.detect([frame])[0]
            det_info = {"name": self.detector.name, "device": self.detector.device,
                        "inference_ms": round(detections.inference_ms, 2)}
        values: dict[str, Any] = {}
        alarms: list[Alarm] = []
        for m in self.measurers:
            out = m.measure(frame, detections)
            values.update(out.values)
            alarms.extend(out.alarms)
        for a in alarms:  # a display that shows only the newest frame still hears of every alarm
            self._event("alarm", f"{a.name} {a.severity}: {a.message}", frame.sequence, to_sinks=False)
        now = time.monotonic()
        result = FrameResult(frame, detections, values, alarms, (now - t_in) * 1000.0, self.stats.dropped, det_info)
        self._times.append(now)
        st = self.stats
        st.processed += 1
        st.latency_ms = result.latency_ms if st.processed == 1 else 0.9 * st.latency_ms + 0.1 * result.latency_ms
        if len(self._times) >= 2 and self._times[-1] > self._times[0]:
            st.fps = (len(self._times) - 1) / (self._times[-1] - self._times[0])
        with self._lock:
            self._latest = result
            self._latest_id += 1
        for sink in self.sinks:
            sink(result)

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
        self.state = State.RECONNECTING
        clock.sleep(delay, self._stop)
        return failures, down_since

    def _event(self, kind: str, message: str, sequence: int | None = None, to_sinks: bool = True) -> None:
        ev = SourceEvent(kind, message, time.time(), sequence)
        self.stats.events[kind] += 1
        with self._lock:
            self._events.append(ev)
        if to_sinks:
            for sink in self.event_sinks:
                sink(ev)
