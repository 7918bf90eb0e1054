import io
import json
import threading
import time

import numpy as np
import pytest

from engine.core.frame import Frame
from engine.core.protocols import BasicStats, Measurement
from engine.runtime.pipeline import Pipeline, PipelineConfig, State
from engine.runtime.records import JsonlWriter
from engine.simulation.scenarios import MIXED_EVENTS
from engine.sources import FrameSource, SourceStalled, open_source

SMALL = "width=160&height=128"


def test_processes_exactly_the_frames_asked_for_and_writes_records():
    buf = io.StringIO()
    writer = JsonlWriter(buf)
    pipe = Pipeline(open_source(f"sim://?seed=2&{SMALL}"), measurers=[BasicStats()],
                    config=PipelineConfig(max_frames=40), sinks=[writer.frame], event_sinks=[writer.event])
    stats = pipe.run()
    assert stats.processed == 40 and pipe.state == State.ENDED
    records = [json.loads(line) for line in buf.getvalue().splitlines()]
    frames = [r for r in records if r["type"] == "frame"]
    assert [r["sequence"] for r in frames] == list(range(40))
    r = frames[0]
    assert {"sequence", "timestamp", "source", "detections", "measurements", "alarms", "ground_truth",
            "latency_ms", "dropped_total", "detector"} <= set(r)
    assert 0 < r["measurements"]["luma"] < 255


def test_mixed_scenario_survives_frozen_and_lost_camera():
    events = []
    pipe = Pipeline(open_source(f"sim://?seed=3&scenario=mixed&{SMALL}"), measurers=[BasicStats()],
                    config=PipelineConfig(max_frames=300), event_sinks=[events.append])
    seqs = []
    pipe.sinks.append(lambda r: seqs.append(r.frame.sequence))
    stats = pipe.run()
    kinds = [e.kind for e in events]
    assert stats.processed == 300
    assert "frozen" in kinds and "stalled" in kinds and "recovered" in kinds
    assert kinds.index("frozen") < kinds.index("stalled") < kinds.index("recovered")
    # Nothing from inside the outage was processed, and processing carried on after it.
    lo, hi = MIXED_EVENTS["dropout"]
    assert not any(lo <= s < hi for s in seqs) and max(seqs) > hi


class FlakySource(FrameSource):
    """A real simulated camera whose link fails for a number of reads, as an unplugged cable does."""

    def __init__(self, fail_reads):
        self.inner = open_source(f"sim://?seed=1&{SMALL}")
        self.fail_reads = set(fail_reads)
        self.reads = 0
        self.opens = 0
        self.uri = "flaky://"

    def open(self):
        self.opens += 1
        self.inner.open()

    def read(self, timeout=2.0):
        self.reads += 1
        if self.reads in self.fail_reads:
            raise SourceStalled("cable pulled")
        return self.inner.read(timeout)

    def close(self):
        self.inner.close()


def test_retries_with_growing_backoff_and_carries_on():
    src = FlakySource(fail_reads={3, 4, 5})
    events = []
    cfg = PipelineConfig(max_frames=10, retry_initial_s=0.01, retry_max_s=0.03)
    t0 = time.monotonic()
    stats = Pipeline(src, config=cfg, event_sinks=[events.append]).run()
    assert stats.processed == 10 and stats.failures == 3
    assert src.opens == 4  # the first open, then one reopen after each failure
    waits = [e.message.rsplit("retrying in ", 1)[1] for e in events if e.kind == "stalled"]
    assert waits == ["0.01 s", "0.02 s", "0.03 s"]  # doubles, capped
    assert [e.kind for e in events].count("recovered") == 1
    assert time.monotonic() - t0 < 10


def test_a_source_that_never_opens_fails_at_once_when_asked():
    pipe = Pipeline(open_source("/no/such/video.mp4"), config=PipelineConfig(fail_on_first_open=True))
    pipe.run()
    assert pipe.state == State.FAILED and "does not exist" in pipe.error


def test_gives_up_after_the_source_has_been_down_too_long():
    src = FlakySource(fail_reads=range(3, 10_000))
    cfg = PipelineConfig(retry_initial_s=0.01, retry_max_s=0.02, give_up_after_s=0.3)
    pipe = Pipeline(src, config=cfg)
    pipe.run()
    assert pipe.state == State.FAILED and "giving up" in pipe.error and pipe.stats.processed == 2


class SlowMeasurer:
    name = "slow"

    def measure(self, frame, detections):
        time.sleep(0.03)
        return Measurement({"slow": 1.0})


def test_a_slow_consumer_drops_live_frames_and_counts_them_instead_of_queueing():
    src = open_source(f"sim://?{SMALL}&fps=200", realtime=True)
    seqs = []
    pipe = Pipeline(src, measurers=[SlowMeasurer()], config=PipelineConfig(max_frames=15),
                    sinks=[lambda r: seqs.append(r.frame.sequence)])
    pipe.run()
    st = pipe.stats
    assert st.processed == 15
    # At least 30 ms per frame at 200 frames/s: about 5 of every 6 camera frames are missed, and counted.
    assert st.dropped >= 15
    _, latest = pipe.latest()
    assert latest.dropped_total == st.dropped
    # Each frame taken is the camera's newest, not one from a backlog: every frame skipped (the first read was the
    # camera's frame 0) is a counted drop.
    assert seqs[-1] + 1 == len(seqs) + st.dropped


def test_pause_resume_and_stop_from_another_thread():
    pipe = Pipeline(open_source(f"sim://?{SMALL}&fps=100", realtime=True))
    seqs = []
    pipe.sinks.append(lambda r: seqs.append(r.frame.sequence))
    pipe.start()
    try:
        deadline = time.monotonic() + 5
        while pipe.stats.processed < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        pipe.pause()
        deadline = time.monotonic() + 5
        while pipe.state != State.PAUSED and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pipe.state == State.PAUSED
        n = pipe.stats.processed
        time.sleep(0.2)
        assert pipe.state == State.PAUSED and pipe.stats.processed == n == len(seqs)
        pipe.resume()
        deadline = time.monotonic() + 5
        while pipe.stats.processed < n + 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pipe.stats.processed >= n + 5
    finally:
        pipe.stop()
        assert pipe.join(timeout=5)
    assert pipe.state == State.STOPPED
    # Frames missed while paused are not drops; every other skipped frame is one, however slow the machine.
    skipped = [b - a - 1 for a, b in zip(seqs, seqs[1:])]
    assert skipped[n - 1] > 0, "the camera ran on while the pipeline was paused"
    # (Frames the camera made before the first one processed, its frame 0 being the first read, are drops too.)
    assert pipe.stats.dropped == seqs[0] + sum(skipped) - skipped[n - 1]


class BlockingSource(FrameSource):
    """A device whose read blocks until the test lets it go (or its timeout passes) and delivers nothing."""

    uri = "blocking://"

    def __init__(self):
        self.reading = threading.Event()  # a read has begun
        self.release = threading.Event()  # the test lets the read return
        self.returned = threading.Event()  # a read has returned

    def open(self):
        pass

    def read(self, timeout=2.0):
        self.reading.set()
        self.release.wait(timeout)
        self.returned.set()
        raise SourceStalled(f"nothing within {timeout} s")

    def close(self):
        pass


def test_stop_returns_at_once_even_while_the_source_blocks():
    src = BlockingSource()
    pipe = Pipeline(src, config=PipelineConfig(read_timeout_s=30))
    pipe.start()
    assert src.reading.wait(10)
    pipe.stop()
    # stop() came back while the read was still blocked: it did not wait for the device, however fast the machine.
    assert not src.returned.is_set()
    src.release.set()
    assert pipe.join(timeout=10)


class BrokenMeasurer:
    name = "broken"

    def measure(self, frame, detections):
        raise ZeroDivisionError("division by zero")


def test_a_failing_measurer_is_reported_not_swallowed():
    events = []
    pipe = Pipeline(open_source(f"sim://?{SMALL}"), measurers=[BrokenMeasurer()], event_sinks=[events.append])
    pipe.run()
    assert pipe.state == State.FAILED and "ZeroDivisionError" in pipe.error
    assert events[-1].kind == "failed"


def test_frame_validation():
    with pytest.raises(ValueError, match="uint8"):
        Frame(np.zeros((4, 4, 3), np.float32), "BGR", 0, 0.0, "x")
    with pytest.raises(ValueError, match="contiguous"):
        Frame(np.zeros((4, 8, 3), np.uint8)[:, ::2], "BGR", 0, 0.0, "x")
    with pytest.raises(ValueError, match="channel order"):
        Frame(np.zeros((4, 4, 3), np.uint8), "RGBA", 0, 0.0, "x")
    f = Frame(np.arange(48, dtype=np.uint8).reshape(4, 4, 3), "BGR", 0, 0.0, "x")
    assert f.as_order("BGR") is f.image
    assert np.array_equal(f.as_order("RGB")[..., 0], f.image[..., 2])


def test_worker_thread_is_named_and_daemonic():
    pipe = Pipeline(open_source(f"sim://?{SMALL}"), config=PipelineConfig(max_frames=3))
    pipe.start()
    assert pipe.join(timeout=10)
    assert pipe._thread.name == "pipeline" and pipe._thread.daemon
    assert all(t.name != "pipeline" for t in threading.enumerate())
