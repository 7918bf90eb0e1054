"""The review queue paces frames with token buckets, keeps a share of the pace per reason, takes the most valuable
frame first, and keeps frames compressed."""

import copy

import numpy as np
import pytest

from engine.core.config import default_config
from engine.core.frame import Box, Frame
from engine.core.protocols import Detections
from engine.review.router import ReviewRouter, RouterConfig, TokenBucket
from engine.runtime.pipeline import FrameResult
from engine.runtime.review_queue import ReviewQueue
from engine.sources import open_source


class FakeClock:
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def router(**kw) -> tuple[ReviewRouter, FakeClock]:
    clock = FakeClock(1000.0)
    cfg = RouterConfig(threshold=0.5, margin=0.1, sample_rate=0.0, **kw)
    return ReviewRouter(cfg, clock=clock), clock


def test_a_bucket_gives_its_burst_then_one_token_per_interval():
    b = TokenBucket(rate=1 / 30, burst=3, now=0.0)
    assert [b.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert not b.take(29.0)
    assert b.take(30.0) and not b.take(30.0)
    assert [b.take(1000.0) for _ in range(4)] == [True, True, True, False]  # never more than the burst


def test_the_router_paces_rather_than_starves():
    r, clock = router(max_per_hour=120, burst=10, quotas={})
    taken = []
    for second in range(3 * 3600):  # a boundary case every second for three hours
        clock.t = 1000.0 + second
        taken.append(r.reason([0.55], {}) is not None)
    per_hour = [sum(taken[h * 3600:(h + 1) * 3600]) for h in range(3)]
    assert per_hour[0] <= 120 + 10 and per_hour[1] == per_hour[2] == 120  # the pace, hour after hour
    assert all(sum(taken[m * 60:(m + 1) * 60]) >= 1 for m in range(30, 180))  # and never a minute without one
    assert r.capped == len(taken) - sum(taken) and r.capped_by["near-threshold"] == r.capped


def test_boundary_cases_cannot_use_up_the_agreement_sample():
    r, clock = router(max_per_hour=120, burst=10, quotas={"near-threshold": 0.4, "agreement-sample": 0.1})
    r.cfg.sample_rate = 1.0
    reasons = []
    for second in range(3600):
        clock.t = 1000.0 + second
        reasons.append(r.reason([0.55], {}))  # every frame a boundary case
        reasons.append(r.reason([0.99], {}))  # and every other one sampled for agreement
    near, sample = reasons.count("near-threshold"), reasons.count("agreement-sample")
    assert 40 <= near <= 48 + 4  # 40 % of 120 an hour, plus its burst
    assert 10 <= sample <= 12 + 1  # 10 %
    assert r.capped_by["near-threshold"] > 0


def test_a_reason_without_a_quota_has_the_whole_pace():
    r, _ = router(max_per_hour=3600, burst=2, quotas={"novel": 0.5})
    got = [r.route([0.55], {}, now=0.0) for _ in range(3)]
    assert [g[0] if g else None for g in got] == ["near-threshold", "near-threshold", None]


def test_reasons_and_their_values():
    r, _ = router()
    near = r.classify([0.58], {})
    closer = r.classify([0.51], {})
    assert near[0] == closer[0] == "near-threshold" and closer[1] > near[1]
    assert r.classify([0.95], {"novelty": 3.0})[0] == "novel"
    assert r.classify([0.95], {"drift_level": "alarm"})[0] == "drift-alarm"
    assert r.classify([0.95], {"drift_level": "alarm"})[1] > r.classify([0.5], {})[1]
    assert r.classify([0.95], {}) is None


def test_the_review_table_of_the_config_sets_pace_and_quotas():
    cfg = copy.deepcopy(default_config())
    cfg["review"]["max_per_hour"] = 60
    cfg["review"]["quotas"]["agreement-sample"] = 0.25
    rc = RouterConfig.from_config(cfg["review"])
    assert rc.max_per_hour == 60 and rc.burst == cfg["review"]["burst"] and rc.quotas["agreement-sample"] == 0.25
    assert set(rc.quotas) >= set(ReviewRouter.REASONS)


# ------------------------------------------------------------------------------------------------ the queue


@pytest.fixture(scope="module")
def frame_image():
    src = open_source("sim://?seed=3&scenario=nominal")
    src.open()
    return src.read().image


def result(image, seq: int) -> FrameResult:
    frame = Frame(image, "BGR", seq, 100.0 + seq, "sim:test")
    dets = Detections((Box(10, 10, 50, 50, 0, "scratch", 0.55),))
    return FrameResult(frame, dets, {"mean_luma": 70.0}, [], 5.0, 0)


def test_the_most_valuable_frame_comes_first_and_the_least_valuable_goes_when_full(frame_image):
    q = ReviewQueue(maxlen=3, max_age_s=0)
    for seq, value in ((1, 1.0), (2, 4.0), (3, 2.5)):
        assert q.offer(result(frame_image, seq), "x", value)
    assert not q.offer(result(frame_image, 4), "x", 0.5)  # worth less than all: not kept
    assert q.offer(result(frame_image, 5), "x", 3.0)  # pushes out the 1.0
    assert len(q) == 3 and q.dropped == 2
    assert [q.take().sequence for _ in range(3)] == [2, 5, 3]
    assert q.take() is None and not q


def test_equal_values_come_oldest_first(frame_image):
    q = ReviewQueue(maxlen=5, max_age_s=0)
    for seq in (7, 8, 9):
        q.offer(result(frame_image, seq), "agreement-sample", 1.0)
    assert [item.sequence for item in q] == [7, 8, 9]


def test_stale_frames_are_dropped(frame_image):
    clock = FakeClock(0.0)
    q = ReviewQueue(maxlen=5, max_age_s=600, clock=clock)
    q.offer(result(frame_image, 1), "novel", 3.0)
    clock.t = 300.0
    q.offer(result(frame_image, 2), "novel", 3.0)
    clock.t = 700.0
    assert len(q) == 2
    assert q.take().sequence == 2 and q.take() is None  # the first had waited 700 s


def test_a_queued_frame_is_kept_compressed_and_decoded_when_opened(frame_image):
    q = ReviewQueue(maxlen=50)
    r = result(frame_image, 11)
    q.offer(r, "near-threshold", 2.5)
    item = q.peek()
    raw = frame_image.nbytes
    assert item.nbytes < raw / 10 and q.nbytes == item.nbytes
    back = item.result()
    assert back.frame.image.shape == frame_image.shape and back.frame.image.dtype == np.uint8
    assert np.abs(back.frame.image.astype(int) - frame_image.astype(int)).mean() < 2.0
    assert back.frame.sequence == 11 and back.detections == r.detections and back.measurements == r.measurements
    result_, why = item  # the (result, reason) pair of old still unpacks
    assert why == "near-threshold" and result_.frame.sequence == 11
