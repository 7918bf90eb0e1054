import numpy as np
import pytest

from engine.monitoring.charts import ControlChart, cusum_arl, cusum_limit, ewma_arl, ewma_limit, js, kl, ks, mmd_rbf, psi
from engine.core.config import default_config
from engine.monitoring.drift import DriftMonitor
from engine.monitoring.reference import EmbeddingModel, Reference, ReferenceError
from engine.sources import open_source
from engine.monitoring.stats import cpu_stats


def test_ewma_arl_matches_the_published_tables():
    # Lucas and Saccucci (1990): lambda 0.2, L 2.962 and lambda 0.05, L 2.615 give an in-control ARL of ~500.
    assert ewma_arl(0.2, 2.962) == pytest.approx(500, rel=0.02)
    assert ewma_arl(0.05, 2.615) == pytest.approx(500, rel=0.02)
    assert ewma_arl(0.2, ewma_limit(0.2, 1e5)) == pytest.approx(1e5, rel=0.01)
    assert ewma_arl(0.2, 2.962, shift=1.0) == pytest.approx(10.2, rel=0.1)  # a 1-sigma shift is seen fast


def test_cusum_arl_matches_the_published_table():
    assert cusum_arl(0.5, 5.0) == pytest.approx(465, rel=0.02)  # Montgomery, k = 0.5, h = 5
    assert cusum_arl(0.5, cusum_limit(0.5, 1e6)) == pytest.approx(1e6, rel=0.01)


def test_a_chart_holds_on_noise_and_signals_a_shift():
    rng = np.random.default_rng(0)
    chart = ControlChart(10.0, 2.0, arl0=1e6)
    assert not any(chart.update(v) for v in rng.normal(10, 2, 5000))
    signals = [chart.update(v) for v in rng.normal(13, 2, 40)]  # a 1.5-sigma shift
    assert any(signals)


def test_distances():
    a = np.array([10, 20, 30, 40.0])
    assert psi(a, a) == pytest.approx(0, abs=1e-9) and kl(a, a) == pytest.approx(0, abs=1e-9)
    assert js(a, a) == pytest.approx(0, abs=1e-9)
    b = np.array([40, 30, 20, 10.0])
    assert psi(a, b) > 0.3 and 0 < js(a, b) < 1
    assert js(np.array([1.0, 0]), np.array([0, 1.0])) == pytest.approx(1.0)
    rng = np.random.default_rng(1)
    x, y = rng.normal(0, 1, 500), rng.normal(0.5, 1, 500)
    assert ks(x, x) == 0 and ks(x, y) > 0.1
    assert mmd_rbf(x[:, None], x[:, None], 1.0) == pytest.approx(0, abs=1e-12)
    assert mmd_rbf(x[:, None], y[:, None], 1.0) > mmd_rbf(x[:250, None], x[250:, None], 1.0)


def build_reference(n=300, width=160, height=128, embed=None):
    src = open_source(f"sim://?seed=100&width={width}&height={height}")
    src.open()
    items = []
    for i in range(n):
        f = src.read()
        items.append((cpu_stats(f.image), None if embed is None else embed(i)))
    return Reference.build(items, {"source": src.uri, "width": width, "height": height})


def test_reference_round_trip_and_content_id(tmp_path):
    rng = np.random.default_rng(2)
    ref = build_reference(200, embed=lambda i: rng.normal(0, 1, 32))
    path = ref.save(tmp_path / "ref")
    again = Reference.load(path)
    assert again.id == ref.id and len(ref.id) == 64
    assert np.array_equal(again.scalars["focus"], ref.scalars["focus"])
    assert again.cell_medians.shape == (200, 8, 8) and np.array_equal(again.cell_medians, ref.cell_medians)
    assert again.embedding is not None and again.embedding.components.shape == (16, 32)
    # Altering the content is detected; so is a file that is not a reference.
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["scalar.focus"] = arrays["scalar.focus"] * 1.01
    np.savez(tmp_path / "altered.npz", **arrays)
    with pytest.raises(ReferenceError, match="altered"):
        Reference.load(tmp_path / "altered.npz")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(ReferenceError, match="not a reference"):
        Reference.load(tmp_path / "junk.npz")
    with pytest.raises(ReferenceError, match="at least 50"):
        build_reference(20)


def test_novelty_flags_embeddings_unlike_the_reference():
    rng = np.random.default_rng(4)
    basis = rng.normal(0, 1, (8, 64))
    ref_emb = rng.normal(0, 1, (500, 8)) @ basis + rng.normal(0, 0.05, (500, 64))
    model = EmbeddingModel.fit(ref_emb)
    same = [model.novelty(e) for e in rng.normal(0, 1, (200, 8)) @ basis + rng.normal(0, 0.05, (200, 64))]
    other = [model.novelty(e) for e in rng.normal(0, 1, (200, 64))]
    assert np.mean(np.array(same) > 1) < 0.02
    assert np.mean(np.array(other) > 1) > 0.95


def run_monitor(ref, uri, n):
    d = default_config()["drift"]
    mon = DriftMonitor(ref, d["relative_tolerance"], d["absolute_tolerance"])
    src = open_source(uri)
    src.open()
    first = {}
    for _ in range(n):
        f = src.read()
        for a in mon.measure(f, None).alarms:
            first.setdefault((a.name, a.severity), f.sequence)
    return mon, first


@pytest.fixture(scope="module")
def small_reference():
    return build_reference(600, 320, 256)


def test_a_steady_line_raises_nothing(small_reference):
    mon, first = run_monitor(small_reference, "sim://?seed=5&width=320&height=256", 1500)
    assert first == {} and mon.overall_level == "ok"


def test_a_lens_change_sets_off_the_focus_alarm_within_50_frames(small_reference):
    mon, first = run_monitor(small_reference, "sim://?seed=5&scenario=lens-change&width=320&height=256&start=200",
                             100)
    assert mon.metrics["grid_drift"].reference > 0
    assert 240 <= first[("focus", "alarm")] < 290
    assert 240 <= first[("grid_drift", "warning")] < 300  # the illumination pattern moved with the optics
    # The light over the rails and bare belt (static cells) changed for good: an alarm within 50 frames.
    assert mon.metrics["uniformity_drift"].reference < 0.03
    assert 240 <= first[("uniformity_drift", "alarm")] < 290
    assert all(seq >= 240 for (name, sev), seq in first.items())


def test_lighting_ageing_warns_before_it_alarms(small_reference):
    mon, first = run_monitor(small_reference, "sim://?seed=5&scenario=lighting-aging&width=320&height=256", 700)
    assert first[("mean_luma", "warning")] < first[("mean_luma", "alarm")]
    status = mon.status()["mean_luma"]
    assert status["level"] == "alarm" and status["value"] < status["low"]


def test_the_drift_monitor_and_the_recalibration_report_the_same_luma_psi(tmp_path):
    from engine.calibration.recalibration import Recalibration
    from engine.monitoring.charts import LUMA_PSI_BINS, luma_psi

    ref = build_reference(60)
    seen = []

    def stats(image):
        seen.append(cpu_stats(image))
        return seen[-1]

    d = default_config()["drift"]
    mon = DriftMonitor(ref, d["relative_tolerance"], d["absolute_tolerance"], batch=4, stats_fn=stats)
    src = open_source("sim://?seed=7&scenario=lighting-aging&width=160&height=128&start=50000")
    src.open()
    for _ in range(40):  # ten batches, all inside the monitor's window
        mon.measure(src.read(), None)
    session = Recalibration(tmp_path, default_config(), reference=ref)
    session.domain_stats = list(seen)
    verdict = session._domain_verdict()
    assert verdict["luma_psi"] == pytest.approx(mon.scores["psi_luma"], rel=1e-12)
    expected = luma_psi(ref.hist[0], np.sum([s.hist[0] for s in seen], axis=0))
    assert mon.scores["psi_luma"] == pytest.approx(expected, rel=1e-12) and expected > 0
    # One formula: counts or shares, the same number; sixteen merged bins.
    shares = ref.hist[0] / ref.hist[0].sum()
    assert luma_psi(shares, np.sum([s.hist[0] for s in seen], axis=0)) == pytest.approx(expected, rel=1e-9)
    merged = ref.hist[0].reshape(LUMA_PSI_BINS, -1).sum(1)
    assert luma_psi(ref.hist[0], ref.hist[0]) == pytest.approx(0, abs=1e-12)
    assert psi(merged, np.sum([s.hist[0] for s in seen], axis=0).reshape(LUMA_PSI_BINS, -1).sum(1)) == \
        pytest.approx(expected, rel=1e-12)


def test_novelty_only_against_the_running_models_own_embedding_baseline():
    from types import SimpleNamespace

    from engine.core.frame import Frame
    from engine.core.protocols import Detections
    from engine.monitoring.reference import Reference
    from engine.monitoring.stats import cpu_stats

    rng = np.random.default_rng(1)
    images = [rng.integers(90, 140, (48, 64, 3), dtype=np.uint8) for _ in range(160)]
    embs = rng.normal(0, 1, (160, 16))
    ref = Reference.build(((cpu_stats(im), e) for im, e in zip(images, embs)),
                          {"width": 64, "height": 48, "detector": "a.pt2 11111111", "detector_sha256": "1" * 64})
    d = default_config()["drift"]
    frame = Frame(images[0], "BGR", 0, 0.0, "test")
    same_size = Detections((), embs[0].astype(np.float32))

    mon = DriftMonitor(ref, d["relative_tolerance"], d["absolute_tolerance"])
    mon.use_model(SimpleNamespace(name="b.onnx 22222222", sha256="2" * 64))  # same size of embedding, another model
    first, second = mon.measure(frame, same_size), mon.measure(frame, same_size)
    assert "novelty" not in first.values and "novelty" not in second.values and not second.alarms
    assert [a.name for a in first.alarms] == ["novelty"] and "from a.pt2 11111111" in first.alarms[0].message

    mon = DriftMonitor(ref, d["relative_tolerance"], d["absolute_tolerance"])
    mon.use_model(SimpleNamespace(name="a.pt2 11111111", sha256="1" * 64))
    assert "novelty" in mon.measure(frame, same_size).values
    m = mon.measure(frame, Detections((), np.zeros(48, np.float32)))  # another model's embedding, unannounced
    assert "novelty" not in m.values and "48" in m.alarms[0].message and "16" in m.alarms[0].message
