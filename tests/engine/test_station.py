"""The station model without a face: the line, the model choice, drift and trends, the review session, acks."""

from __future__ import annotations

import copy
import threading
import time

import pytest

from engine.core.config import default_config
from engine.review.feedback import list_decisions
from engine.runtime.pipeline import State
from engine.core.announce import Announcer
from engine.runtime.station import ModelChoice, Station, builtin_classes, trend_history
from engine.sources import SourceError

SIM = "sim://?seed=0&width=320&height=256&realtime=0"


def wait(cond, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    raise AssertionError("timed out")


@pytest.fixture
def station(data_dir):
    s = Station(default_config(), data_dir, uri=SIM, model=ModelChoice("none"), realtime=False)
    yield s
    s.close()


def test_announcer_calls_every_listener_and_survives_a_failing_one(monkeypatch):
    a = Announcer("test")
    seen = []
    hooked = []
    monkeypatch.setattr("sys.excepthook", lambda *exc: hooked.append(exc[1]))
    a.connect(lambda x: seen.append(("one", x)))
    a.connect(lambda x: 1 / 0)
    a.connect(lambda x: seen.append(("two", x)))
    a.emit(5)
    assert seen == [("one", 5), ("two", 5)] and isinstance(hooked[0], ZeroDivisionError)
    f = a.connect(lambda x: seen.append(("three", x)))
    a.disconnect(f)
    a.emit(6)
    assert ("three", 6) not in seen


def test_the_line_starts_pauses_resumes_stops_and_a_bad_uri_leaves_it_running(station):
    opened, events, stopped = [], [], []
    station.opened.connect(opened.append)
    station.events.connect(lambda ev: events.append((ev.kind, threading.current_thread().name)))
    station.stopped.connect(lambda: stopped.append(True))
    station.open_source(SIM)
    assert opened and "sim" in opened[0]
    wait(lambda: station.latest() is not None and station.pipeline.stats.processed > 3)
    assert ("opened", "pipeline") in events  # source events come on the pipeline's worker
    station.pause()
    wait(lambda: station.state == State.PAUSED)
    station.start()  # resumes
    wait(lambda: station.state == State.RUNNING)
    with pytest.raises(SourceError, match="unknown source type"):
        station.open_source("bogus://nowhere")
    assert station.running and station.uri == SIM
    old = station.pipeline
    station.stop()
    assert station.pipeline is None and stopped and old.join(5)
    assert station.state == State.STOPPED
    station.start()
    wait(lambda: station.running and station.pipeline.stats.processed > 0)


def test_the_built_in_model_loads_on_the_worker_and_its_classes_and_threshold_follow(data_dir):
    s = Station(default_config(), data_dir, uri=SIM, realtime=False)
    try:
        ready = []
        s.model_ready.connect(lambda d: ready.append((d, threading.current_thread().name)))
        s.open_source(SIM)
        wait(lambda: ready, timeout=60)
        det, thread = ready[0]
        assert thread == "pipeline" and s.detector is det
        assert s.classes == tuple(det.classes) == builtin_classes()
        assert s.router.cfg.threshold == pytest.approx(det.confidence)
        s.set_confidence(0.7)
        assert det.confidence == pytest.approx(0.7) and s.model.confidence == 0.7
        ready.clear()
        s.open_source(SIM)  # the loaded model is reused, announced on the calling thread
        assert ready and ready[0][0] is det
        s.set_model("none")
        assert s.model.path == "none" and s.detector is None and s.pipeline.detector is None
    finally:
        s.close()


@pytest.fixture(scope="module")
def reference_file(tmp_path_factory):
    from engine.monitoring.reference import Reference
    from engine.monitoring.stats import cpu_stats
    from engine.sources import open_source

    src = open_source("sim://?seed=100&width=160&height=128")
    src.open()
    ref = Reference.build(((cpu_stats(src.read().image), None) for _ in range(200)), {"source": "test"})
    return ref.save(tmp_path_factory.mktemp("ref") / "ref.npz")


def test_drift_batches_are_announced_and_kept_as_trends(data_dir, reference_file):
    config = copy.deepcopy(default_config())
    config["drift"]["reference"] = str(reference_file)
    s = Station(config, data_dir, uri="sim://?seed=0&width=160&height=128&realtime=0", model=ModelChoice("none"),
                realtime=False)
    monitors, batches, problems = [], [], []
    s.monitor_changed.connect(monitors.append)
    s.batch.connect(batches.append)
    s.problem.connect(problems.append)
    try:
        s.open_source(s.uri)
        assert monitors and monitors[0] is s.monitor is not None and s.trend_store is not None
        wait(lambda: len(batches) >= 3, timeout=30)
        ref = s.monitor.ref.id
        assert s.history_due(ref) and not s.history_due(ref)
    finally:
        s.close()
    rows, _events = trend_history(data_dir, ref)
    assert rows and {"metric", "minute", "mean"} <= set(rows[0])


def test_review_freeze_decide_undo_and_acks_in_the_store(station, data_dir):
    changes, acks = [], []
    station.review.changed.connect(lambda what, detail: changes.append(what))
    station.acked.connect(acks.append)
    station.set_operator("ann")
    station.open_source(SIM)
    wait(lambda: station.latest() is not None)
    review = station.review
    review.toggle_freeze()
    assert review.frame is not None and "frozen" in changes
    assert review.status().startswith(f"Frame {review.frame.sequence} (operator)")
    review.choose_class("dent", drawing=True)
    assert review.draw_class == "dent"
    assert review.decide("missed", new_box=(10, 10, 40, 40), new_class=review.draw_class)
    assert review.decide("unsure")
    assert review.undo()
    wait(lambda: len(acks) == 3)
    for rec in acks:  # the window settles them on its own thread
        review.settle(rec)
    assert changes.count("saved") == 3
    review.toggle_freeze()
    assert review.frame is None and changes[-1] == "live"
    station.close()
    rows = list_decisions(data_dir)
    assert [(r["verdict"], r["operator"]) for r in rows] == [("missed", "ann"), ("unsure", "ann"), ("undo", "ann")]
    assert rows[0]["new_class"] == "dent" and rows[2]["undoes"] == rows[1]["review_id"]


def test_the_signed_in_operator_decides_and_the_gate_is_respected(station, data_dir):
    class Session:
        badge = "200"

    acks = []
    station.acked.connect(acks.append)
    station.set_operator("typed in a box")
    station.sign_in(Session())
    assert station.operator == "200"
    station.open_source(SIM)
    wait(lambda: station.latest() is not None)
    station.permits = lambda permission: False
    station.review.toggle_freeze()
    assert station.review.frame is None  # not allowed to review: F does nothing
    station.permits = lambda permission: True
    station.review.toggle_freeze()
    station.permits = lambda permission: False
    assert not station.review.decide("unsure")
    station.permits = lambda permission: True
    assert station.review.decide("unsure")
    wait(lambda: acks)
    station.close()
    assert [r["operator"] for r in list_decisions(data_dir)] == ["200"]


def test_detections_are_decided_one_after_another(data_dir):
    s = Station(default_config(), data_dir, uri="sim://?seed=2&width=640&height=512&realtime=0", realtime=False)
    try:
        s.open_source(s.uri)

        def two():
            r = s.latest()
            return r is not None and r.detections is not None and len(r.detections.boxes) >= 2

        wait(two, timeout=90)
        review = s.review
        review.toggle_freeze()
        dets = review.frame.detections
        assert len(dets) >= 2 and review.selected == 0
        assert review.decide("confirm")
        assert review.selected == 1 and review.states == {0: "saving"}
        review.select(0)
        other = next(c for c in s.classes if c != dets[0].class_name)
        review.choose_class(other, drawing=False)  # a class key on a detection: reclass
        acks = []
        s.acked.connect(acks.append)
        wait(lambda: len(acks) >= 1)
    finally:
        s.close()
    rows = list_decisions(data_dir)
    assert [r["verdict"] for r in rows] == ["confirm", "reclass"] and rows[1]["new_class"] == other


def test_routed_frames_wait_in_the_queue_and_next_takes_the_oldest_of_equal_value(station):
    station.router.cfg.sample_rate = 1.0  # every frame is an agreement sample
    station.router.cfg.margin = 0.0  # and none a boundary case
    station.router.cfg.quotas = {}  # the whole burst for the sample
    lengths = []
    station.queue_changed.connect(lengths.append)
    station.open_source(SIM)
    wait(lambda: len(station.queue) >= 3)
    oldest = station.queue[0]
    assert station.queue.nbytes < 3 * oldest.result().frame.image.nbytes  # kept compressed
    assert station.review.next_live_queued()
    assert station.review.frozen.frame.sequence == oldest.sequence
    assert station.review.frame.queue_reason == "agreement-sample"
    assert lengths


def test_nothing_is_queued_while_nobody_may_review(station):
    station.router.cfg.sample_rate = 1.0
    station.router.cfg.quotas = {}
    station.permits = lambda permission: permission != "review"  # the window before anyone signs in
    station.open_source(SIM)
    wait(lambda: station.last_pipeline is not None and station.last_pipeline.stats.processed >= 20)
    assert len(station.queue) == 0
    station.permits = lambda permission: True
    wait(lambda: len(station.queue) >= 1)


def test_headless_auto_review_counts_acks(data_dir):
    from engine.review.router import OracleReviewer

    s = Station(default_config(), data_dir, uri="sim://?seed=1&width=320&height=256&realtime=0",
                model=ModelChoice("none"), realtime=False, feedback=False, keep_trends=False, strict=True)
    s.pipeline_config.max_frames = 30
    s.review_automatically(OracleReviewer(1.0, "oracle"))
    s.open_source(s.uri)
    assert s.join(60)
    s.close()
    summary = {**s.summary(), "reviews": s.review_summary()}
    assert summary["frames"] == 30 and summary["state"] == "ended"
    r = summary["reviews"]
    assert r["submitted"] == r["acknowledged"] > 0 and r["failed"] == 0


def test_a_reference_that_cannot_be_used_is_announced_or_refused_when_strict(data_dir, tmp_path):
    from engine.monitoring.reference import ReferenceError

    config = copy.deepcopy(default_config())
    config["drift"]["reference"] = str(tmp_path / "no-such-reference.npz")
    s = Station(config, data_dir, uri=SIM, model=ModelChoice("none"), realtime=False)
    problems = []
    s.problem.connect(problems.append)
    try:
        s.open_source(SIM)  # the window's way: said, and the line runs on statistics only
        assert len(problems) == 1 and problems[0].endswith("; watching without drift measurement")
        assert s.monitor is None and s.running
    finally:
        s.close()
    strict = Station(config, data_dir, uri=SIM, model=ModelChoice("none"), realtime=False, feedback=False,
                     strict=True)  # the headless run's way: a user error
    with pytest.raises(ReferenceError):
        strict.open_source(SIM)
    assert strict.pipeline is None
    strict.close()
