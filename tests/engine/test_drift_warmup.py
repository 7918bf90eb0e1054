"""Drift on the nominal line: a warm-up before anything warns, distances that drift only upward, no time to a
limit beyond the horizon, and a nominal line read by a slow consumer that raises nothing for minutes."""

import copy
import math

import pytest

from engine.core.config import default_config
from engine.monitoring.charts import ControlChart
from engine.monitoring.drift import ETA_HORIZON_S, DriftMonitor, MetricState
from engine.monitoring.reference import Reference
from engine.monitoring.stats import cpu_stats
from engine.sources import open_source

STATION = "sim://?seed=0&scenario=nominal&width=160&height=128&realtime=0"  # the default line, small


@pytest.fixture(scope="module")
def station_reference():
    src = open_source(STATION)
    src.open()
    return Reference.build(((cpu_stats(src.read().image), None) for _ in range(400)), {"source": STATION})


def monitor(ref, **kw):
    d = default_config()["drift"]
    return DriftMonitor(ref, d["relative_tolerance"], d["absolute_tolerance"], arl0_batches=d["arl0_batches"],
                        window=d["window_frames"], batch=d["batch_frames"], **kw)


def test_the_configured_warm_up_is_in_range_and_reaches_the_monitor():
    from engine.core.config import ranges
    from engine.monitoring.drift import measurers_for

    cfg = copy.deepcopy(default_config())
    assert cfg["drift"]["warmup_batches"] in ranges()["settings"]["drift.warmup_batches"]
    cfg["drift"]["warmup_batches"] = 7
    assert measurers_for(cfg)[0].warmup_batches == 7


def test_nothing_warns_during_the_warm_up_and_a_real_shift_is_caught_after_it(station_reference):
    mon = monitor(station_reference, warmup_batches=15)
    src = open_source("sim://?seed=0&scenario=lens-change&width=160&height=128&realtime=0&start=300")
    src.open()  # the lens was changed before the line started
    alarms, warming = [], []
    for i in range(400):
        m = mon.measure(src.read(), None)
        warming.append(mon.warming_up)
        alarms += [(i, a.name, a.severity) for a in m.alarms]
    assert warming[:149] == [True] * 149 and not any(warming[150:])
    assert all(i >= 150 for i, _, _ in alarms) and mon.batches == 40
    assert ("focus", "alarm") in {(name, sev) for _, name, sev in alarms}  # caught once it is charted


def test_distances_drift_only_upward():
    chart = ControlChart(1.0, 0.1, 1e6, upper_only=True)
    assert not any(chart.update(0.2) for _ in range(200))  # far closer to the reference than usual: no drift
    assert any(chart.update(1.6) for _ in range(50))
    both = ControlChart(1.0, 0.1, 1e6)
    assert any(both.update(0.2) for _ in range(50))


def test_no_time_to_the_limit_beyond_the_horizon():
    def eta(slope_per_s: float) -> float | None:
        m = MetricState("focus", 1.0, 0.85, 1.15, value=1.0)
        for k in range(10):
            m.history.append((100.0 * k, 1.0 + slope_per_s * 100.0 * k))
        return DriftMonitor._eta(m)

    assert eta(0.15 / 3600) == pytest.approx(3600, rel=0.01)  # an hour away: said
    assert eta(0.15 / (48 * 3600)) is None  # two days away at this trend: steady
    assert eta(0.0) is None and ETA_HORIZON_S == 24 * 3600


def test_the_nominal_line_raises_no_warning_for_minutes_when_frames_are_dropped(station_reference):
    """The window's line: a paced camera and a consumer that takes every fifth frame (the others are dropped),
    so a batch spans five times the belt of a reference batch. Three minutes of line time, later than the
    reference's stretch, with the configured warm-up. (Distances charted both ways warned here within a minute.)"""
    mon = monitor(station_reference, warmup_batches=default_config()["drift"]["warmup_batches"])
    src = open_source(STATION + "&start=2000")
    src.open()
    raised = []
    frames = 3 * 60 * 30 // 5
    for _ in range(frames):
        raised += [(a.name, a.severity) for a in mon.measure(src.read(), None).alarms]
        src.skip(4)
    assert raised == [] and mon.overall_level == "ok"
    assert not math.isnan(mon.metrics["grid_drift"].value)
