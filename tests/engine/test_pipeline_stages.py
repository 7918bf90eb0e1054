"""The pipeline's stages on their own threads: order from a source that is not live, counted drops from a live one,
the statistics stride, and the thread plan."""

from __future__ import annotations

import copy
import io
import json
import threading
import time

import numpy as np
import pytest

from engine.core.config import default_config
from engine.core.frame import Box
from engine.core.protocols import BasicStats, Detections
from engine.runtime import threads
from engine.runtime.handoff import Handoff, Item
from engine.runtime.pipeline import STAGES, Pipeline, PipelineConfig, State, prepare_view
from engine.runtime.records import JsonlWriter
from engine.runtime.station import ModelChoice, Station
from engine.sources import open_source

SMALL = "width=160&height=128"


class BrightestSpot:
    """A deterministic detector: one box around the brightest pixel of the frame, scored by its level."""

    name = "brightest-spot"
    device = "cpu"
    classes = ("spot",)

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.calls = 0

    def detect(self, frames):
        out = []
        for f in frames:
            self.calls += 1
            if self.delay_s:
                time.sleep(self.delay_s)  # a slow model: the camera runs on meanwhile
            luma = f.image.mean(axis=2)
            y, x = np.unravel_index(int(np.argmax(luma)), luma.shape)
            box = Box(float(x), float(y), float(x) + 4, float(y) + 4, 0, "spot", float(luma[y, x]) / 255.0)
            out.append(Detections((box,), np.array([luma.mean()], np.float32), 0.0))
        return out


def _records(pipelined: bool, frames: int = 30, stride: int = 1) -> list[dict]:
    buf = io.StringIO()
    writer = JsonlWriter(buf)
    pipe = Pipeline(open_source(f"sim://?seed=4&{SMALL}"), detector=BrightestSpot(), measurers=[BasicStats()],
                    config=PipelineConfig(max_frames=frames, pipelined=pipelined, stats_stride=stride),
                    sinks=[writer.frame])
    stats = pipe.run()
    assert stats.processed == frames and pipe.state == State.ENDED and stats.dropped == 0
    out = []
    for line in buf.getvalue().splitlines():
        r = json.loads(line)
        r.pop("latency_ms")
        out.append(r)
    return out


def test_a_source_that_is_not_live_has_every_frame_processed_in_order_as_one_stage_after_another_does():
    piped = _records(pipelined=True)
    assert [r["sequence"] for r in piped] == list(range(30))
    assert piped == _records(pipelined=False)  # the same records, frame for frame


class SlowDetector(BrightestSpot):
    pass


def test_a_slow_stage_on_a_live_source_drops_frames_counted_where_they_were_dropped():
    src = open_source(f"sim://?{SMALL}&fps=200", realtime=True)
    detector = SlowDetector(delay_s=0.03)
    seqs = []
    pipe = Pipeline(src, detector=detector, measurers=[BasicStats()], config=PipelineConfig(max_frames=12),
                    sinks=[lambda r: seqs.append(r.frame.sequence)])
    pipe.run()
    st = pipe.stats
    assert st.processed == 12 and len(seqs) == 12
    assert seqs == sorted(seqs)  # the newest wins, never an older frame after a newer one
    # Capture keeps up with the camera; the frames the detector was too slow for are its drops.
    assert st.drops["inference"] > 0
    assert sum(st.drops[s] for s in STAGES) == st.dropped
    # Every frame of the camera up to the last processed one (the first read was its frame 0) is processed or a
    # counted drop, including frames replaced before the first one came out.
    assert seqs[-1] + 1 == len(seqs) + st.dropped
    assert pipe.latest()[1].dropped_total == st.dropped
    summary = st.to_dict()
    assert set(summary["dropped_by_stage"]) == set(STAGES) and summary["stages"] == "pipelined"
    assert {"frames", "dropped", "source_failures", "events", "wall_s", "fps"} <= set(summary)


def test_the_handoff_from_a_live_source_keeps_the_newest_and_carries_the_drops_of_those_it_replaced():
    stop = threading.Event()
    h = Handoff("inference", newest_wins=True)
    for i in range(4):
        h.put(Item(i), stop)
    item = h.get(stop)
    assert item.payload == 3 and item.drops["inference"] == 3 and len(h) == 0
    queue = Handoff("inference", newest_wins=False, capacity=3)
    for i in range(3):
        queue.put(Item(i), stop)
    queue.close()
    assert [queue.get(stop).payload for _ in range(3)] == [0, 1, 2] and queue.get(stop) is None


def test_statistics_on_a_stride_measure_every_nth_frame_and_the_others_carry_the_last_values():
    recs = _records(pipelined=True, frames=10, stride=3)
    measured = [r["sequence"] for r in recs if r.get("measured", True)]
    assert measured == [0, 3, 6, 9]
    for r in recs:
        last = max(m for m in measured if m <= r["sequence"])
        assert r["measurements"] == recs[last]["measurements"]


def test_the_stride_is_a_setting_with_a_range_and_the_drift_batches_count_measured_frames(data_dir):
    from engine.core.config import ConfigError, check_ranges

    bad = copy.deepcopy(default_config())
    bad["pipeline"]["stats_stride"] = -1
    with pytest.raises(ConfigError, match="stats_stride"):
        check_ranges(bad, "test")
    cfg = copy.deepcopy(default_config())
    cfg["pipeline"]["stats_stride"] = 2
    st = Station(cfg, data_dir, "sim://?seed=0&realtime=0", ModelChoice("none"), realtime=False, feedback=False,
                 keep_trends=False, strict=True,
                 pipeline_config=PipelineConfig(max_frames=40, stats_stride=cfg["pipeline"]["stats_stride"]))
    try:
        pipe = st.open_source("sim://?seed=0&realtime=0")
        assert pipe.join(timeout=120)
        assert pipe.stats.processed == 40 and pipe.stats.measured == 20
        batch = cfg["drift"]["batch_frames"]
        assert st.monitor.frames == 20 and st.monitor.batches == 20 // batch  # batches of measured frames
    finally:
        st.close()


class BrokenDetector(BrightestSpot):
    def detect(self, frames):
        raise ZeroDivisionError("division by zero")


def test_a_failing_detector_on_its_own_thread_is_reported_and_stops_the_line():
    events = []
    pipe = Pipeline(open_source(f"sim://?{SMALL}"), detector=BrokenDetector(), event_sinks=[events.append])
    pipe.run()
    assert pipe.state == State.FAILED and "ZeroDivisionError" in pipe.error
    assert [e.kind for e in events].count("failed") == 1


def test_by_default_the_stride_measures_every_frame_of_a_file_and_fewer_of_a_live_camera_on_few_cores():
    assert default_config()["pipeline"]["stats_stride"] == 0
    assert threads.auto_stats_stride(live=False, cores=2) == 1
    assert [threads.auto_stats_stride(live=True, cores=n) for n in (1, 2, 3, 4, 16)] == [3, 3, 2, 1, 1]
    pipe = Pipeline(open_source(f"sim://?{SMALL}"), config=PipelineConfig(max_frames=2, stats_stride=0))
    pipe.run()
    assert pipe.stride == 1


def test_the_thread_plan_never_asks_for_more_cores_than_there_are():
    two = threads.plan(pipelined=True, cores=2)
    assert (two.inference, two.opencv) == (1, 1)
    assert threads.plan(pipelined=False, cores=2).inference == 2
    for n in (1, 2, 3, 4, 8, 16):
        p = threads.plan(pipelined=True, cores=n)
        assert p.inference >= 1 and p.opencv >= 1 and p.inference + p.opencv <= max(2, n)
    assert "inference threads 1" in two.describe()


def test_the_display_picture_is_rgb_and_shrunk_to_fit_never_enlarged():
    src = open_source("sim://?seed=0&width=320&height=256")
    src.open()
    frame = src.read()
    small = prepare_view(frame, (100, 100))
    assert small.shape == (80, 100, 3) and small.flags["C_CONTIGUOUS"]
    same = prepare_view(frame, (1000, 1000))
    assert same.shape == (256, 320, 3)
    assert np.array_equal(same[..., 0], frame.image[..., 2])  # RGB from BGR


@pytest.mark.parametrize("pipelined", [True, False])
def test_a_display_is_told_of_each_new_frame_for_it_so_it_need_not_poll(pipelined):
    told = []
    pipe = Pipeline(open_source(f"sim://?seed=4&{SMALL}"), detector=BrightestSpot(), measurers=[BasicStats()],
                    config=PipelineConfig(max_frames=20, pipelined=pipelined))
    pipe.view_size = (80, 64)

    def wake():  # what a display does: note the counter, draw later on its own thread
        told.append(pipe.newest()[0])

    pipe.on_newest = wake
    pipe.run()
    assert len(told) == 20  # once per frame, whether it comes early from inference or after statistics
    assert told == sorted(told) and told[-1] == pipe.newest()[0]


def test_a_display_that_fails_when_told_is_forgotten_and_the_line_runs_on():
    def gone():
        raise RuntimeError("Internal C++ object already deleted")

    pipe = Pipeline(open_source(f"sim://?seed=4&{SMALL}"), detector=BrightestSpot(), measurers=[BasicStats()],
                    config=PipelineConfig(max_frames=10))
    pipe.on_newest = gone
    stats = pipe.run()
    assert stats.processed == 10 and pipe.state == State.ENDED and pipe.on_newest is None


class PriorityProbe:
    """A measurer that notes the OS priority (nice) of the thread it runs on."""

    name = "probe"

    def __init__(self) -> None:
        self.nice: set[int] = set()

    def measure(self, frame, detections):
        import os

        self.nice.add(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return BasicStats().measure(frame, detections)


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="per-thread priority is Linux's")
def test_on_a_live_line_the_statistics_thread_runs_below_the_others_and_only_it():
    import os

    me = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    probe = PriorityProbe()
    pipe = Pipeline(open_source(f"sim://?{SMALL}&fps=200", realtime=True), detector=BrightestSpot(),
                    measurers=[probe], config=PipelineConfig(max_frames=5, statistics_nice=5))
    pipe.run()
    if me >= 19:
        pytest.skip("this process already runs at the lowest priority")
    assert probe.nice == {min(19, me + 5)}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == me  # the caller's thread is untouched
    probe = PriorityProbe()  # a file (not live) is measured at the usual priority: nothing waits on the screen
    Pipeline(open_source(f"sim://?{SMALL}"), detector=BrightestSpot(), measurers=[probe],
             config=PipelineConfig(max_frames=3, statistics_nice=5)).run()
    assert probe.nice == {me}
