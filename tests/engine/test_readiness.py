"""Data readiness against real data: a reference built on the nominal simulated line, and production runs of the
new variant and of the nominal line stored by the headless station with an automatic reviewer."""

from __future__ import annotations

import copy
import json
import re
import shutil
import threading

import cv2
import numpy as np
from markupsafe import escape
import pytest

from app.cli import main
from engine.monitoring.charts import psi
from engine.core.config import default_config
from engine.storage.db import read
from engine.review.feedback import FeedbackStore, FrameForReview
from engine.core.frame import Box
from engine.core.timeparse import parse_time
from engine.datasets.readiness import (
    ReadinessCancelled,
    ReadinessError,
    _psi_bins,
    _sim_reference_truth,
    assess,
    load_reference,
    statistic_shift,
)
from engine.datasets.readiness_report import build_report, render_html
from engine.review.router import OracleReviewer

SIZE = "width=320&height=256"
SHIFT = "Production differs from the training data"


def _run(data, uri, ref, frames, *model):
    assert main(["--data-dir", str(data), "run", "--headless", "--source", uri, "--frames", str(frames),
                 "--reference", str(ref), "--auto-review", "oracle:0.95,operator=a", *model]) == 0


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    """A nominal reference (past the empty belt at the start), the new variant from slot 150 (it appears at slot
    144, 12 simulated hours of 5 min frames, and is half the parts at slot 288), and a nominal run without a
    model (statistics only: its frames and the operator's boxes, quicker)."""
    base = tmp_path_factory.mktemp("readiness")
    ref = base / "ref.npz"
    assert main(["--data-dir", str(base / "refdata"), "reference", "build", "--source",
                 f"sim://?seed=100&scenario=nominal&{SIZE}&start=60", "--frames", "300", "--out", str(ref)]) == 0
    _run(base / "variant", f"sim://?seed=3&scenario=new-variant&{SIZE}&start=150", ref, 150)
    _run(base / "nominal", f"sim://?seed=3&scenario=nominal&{SIZE}&start=60", ref, 200, "--model", "none")
    return {"ref": ref, "variant": base / "variant", "nominal": base / "nominal", "base": base}


def test_a_new_variant_is_not_ready_against_a_nominal_reference(line):
    r = assess(load_reference(str(line["ref"])), line["variant"], config=default_config())
    assert not r.ready and r.verdict == "not ready"
    shift = [x for x in r.reasons if x.startswith(SHIFT + ": the PSI")]
    assert len(shift) == 1
    psi_of = {s.name: s.psi for s in r.statistics}
    # The blue plates move the colour balance far beyond its tolerance; the reason names the worst statistics.
    for name in ("cct_k", "gain_b"):
        assert psi_of[name] > 0.25
        assert name in shift[0]
    assert any(x.startswith(SHIFT) and "unlike any reference frame" in x for x in r.reasons)
    assert r.production["novelty"]["novel_share"] > 0.05
    assert "Annotator agreement cannot be measured: only one operator (a) has reviewed these frames, so the " \
           "labels' reliability is unknown." in r.reasons
    # Every reason is one sentence.
    assert all(x.endswith(".") and x[0].isupper() and x.count(". ") == 0 for x in r.reasons)
    # Coverage knows the simulator's product mix and the novelty against this reference.
    bands = {(c["dimension"], c["band"]): c for c in r.coverage}
    assert bands[("simulated product mix", "new variant on the line")]["feedback_frames"] > 0
    assert bands[("product", "novel (novelty above 1)")]["frames"] > 0
    assert abs(sum(c["share"] for c in r.coverage if c["dimension"] == "product") - 1.0) < 1e-3


def test_a_nominal_run_has_no_shift_and_is_ready_once_agreement_is_waived(line):
    ref = load_reference(str(line["ref"]))
    r = assess(ref, line["nominal"], config=default_config())
    assert not any(x.startswith(SHIFT) for x in r.reasons)
    assert all(s.psi is not None and s.psi <= 0.25 for s in r.statistics)
    # No model, so no detection for operators to agree on: agreement is the one reason left.
    assert r.reasons == ["Annotator agreement cannot be measured: no operator has confirmed or rejected a detection "
                         "in these frames, so the labels' reliability is unknown."]
    assert r.agreement is not None and r.agreement["raters"] == []  # no detections, nothing to agree on
    assert any("novelty is not assessed" in n for n in r.notes)  # no model, no embeddings: said, not guessed
    cfg = default_config()
    cfg["agreement"]["readiness_require_agreement"] = False
    r2 = assess(ref, line["nominal"], config=cfg)
    assert r2.ready and r2.reasons == [] and r2.verdict == "ready"
    # Stricter rules bring their own reasons, naming the figures.
    cfg["agreement"].update(readiness_min_examples_per_class=100000, readiness_min_feedback_frames=100000)
    r3 = assess(ref, line["nominal"], config=cfg)
    labelled = r3.classes["production"]
    assert f"The class dent has {labelled['dent']} labelled examples in production feedback; at least 100000 " \
           "are needed." in r3.reasons
    assert f"Only {r3.production['feedback_frames']} production frames carry operator feedback; at least 100000 " \
           "are needed." in r3.reasons


def test_a_second_operator_who_disagrees_makes_agreement_a_reason(line, tmp_path):
    data = tmp_path / "two"
    shutil.copytree(line["variant"], data)
    rows = read(data, "SELECT * FROM frames ORDER BY id LIMIT 40")
    store = FeedbackStore(data)
    b = OracleReviewer(accuracy=0.5, operator="b", seed=1)
    futures = []
    for row in rows:
        img = cv2.imread(str(data / "images" / row["image_sha256"][:2] / f"{row['image_sha256']}.png"))
        dets = tuple(Box(*d["box"], d["class_id"], d["class_name"], d.get("score")) for d in json.loads(row["detections"]))
        fr = FrameForReview(img, row["source"], row["sequence"], row["timestamp"], dets, row["model"], None,
                            row["reference_id"], json.loads(row["stats"]), json.loads(row["ground_truth"]))
        futures += [store.submit(d) for d in b.review(fr)]
    for f in futures:
        f.result(30)
    store.close()
    r = assess(load_reference(str(line["ref"])), data, config=default_config())
    kappa = r.agreement["kappa"]
    assert kappa is not None and kappa < 0.6
    assert f"Annotator agreement is kappa {kappa:.2f}, below 0.6: the labels are not reliable enough to train on." \
        in r.reasons


def test_the_training_class_mix_comes_from_the_reference_frames_on_the_simulated_line(line):
    ref = load_reference(str(line["ref"]))
    counts, examples, how = _sim_reference_truth(ref, max_frames=300, examples=2)
    assert set(counts) == {"scratch", "dent", "contamination"} and all(v > 0 for v in counts.values())
    assert "re-created" in how and len(examples) == 2
    assert cv2.imdecode(np.frombuffer(examples[0]["png"], np.uint8), cv2.IMREAD_COLOR).shape == (256, 320, 3)
    other = copy.copy(ref)
    other.meta = {**ref.meta, "source": "folder:///srv/training"}
    counts, examples, how = _sim_reference_truth(other)
    assert counts is None and examples == [] and "not known" in how


def test_the_report_is_one_self_contained_file_with_plots_and_frames(line, tmp_path):
    out = tmp_path / "report.html"
    r = build_report(str(line["ref"]), line["variant"], out, config=default_config())
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert "Verdict: NOT READY" in text
    for reason in r.reasons:
        assert str(escape(reason)) in text
    assert text.count("<svg") >= 18 + 2  # every statistic, the class mix, the novelty
    assert not re.search(r"(src|href)=['\"]?(https?:|file:|/)", text)  # nothing outside the file
    pngs = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", text)
    assert len(pngs) >= 4
    import base64

    img = cv2.imdecode(np.frombuffer(base64.b64decode(pngs[-1]), np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[1] == 320
    assert "agreement" in text.lower() and "@media print" in text
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no temporary file left


def test_errors_are_one_sentence(line, tmp_path):
    ref = str(line["ref"])
    with pytest.raises(ReadinessError, match="no station database"):
        build_report(ref, tmp_path / "empty", None)
    with pytest.raises(ReadinessError, match="does not exist"):
        build_report(str(tmp_path / "missing.npz"), line["variant"], None)
    with pytest.raises(ReadinessError, match="folder .* does not exist"):
        build_report(ref, line["variant"], tmp_path / "no" / "report.html")
    with pytest.raises(ReadinessError, match="no production frames are stored"):
        build_report(ref, line["variant"], None, since=parse_time("2030-01-01"))
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(ReadinessCancelled):
        build_report(ref, line["variant"], tmp_path / "r.html", cancel=cancel)
    assert not (tmp_path / "r.html").exists()


def test_psi_uses_reference_deciles_and_no_bin_narrower_than_the_tolerance():
    rng = np.random.default_rng(0)
    ref = rng.normal(100.0, 1.0, 5000)
    prod = ref[:2000] + 0.5  # half a standard deviation
    edges = _psi_bins(ref)
    assert len(edges) == 9
    r = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=10)
    p = np.bincount(np.searchsorted(edges, prod, side="right"), minlength=10)
    rs, ps = r / r.sum() + 1e-4, p / p.sum() + 1e-4
    rs, ps = rs / rs.sum(), ps / ps.sum()
    expected = float(np.sum((ps - rs) * np.log(ps / rs)))
    s = statistic_shift("x", ref, prod, min_frames=100)
    assert s.psi == pytest.approx(expected, rel=1e-9) and s.psi > 0.1
    assert s.psi == pytest.approx(psi(r / r.sum(), p / p.sum()))
    # With a tolerance of 6 (six standard deviations) the same half-sigma shift is no change at all...
    assert statistic_shift("x", ref, prod, 100, min_width=6.0).psi < 0.01
    # ...but a shift by the whole tolerance is.
    assert statistic_shift("x", ref, ref[:2000] + 6.0, 100, min_width=6.0).psi > 1.0
    wide = _psi_bins(ref, 6.0)
    assert np.all(np.diff(wide) >= 6.0 - 1e-9)
    # Too few production frames: no PSI, said so.
    assert statistic_shift("x", ref, prod[:10], min_frames=100).psi is None
    # A constant reference (no clipping at all) still notices clipping.
    assert statistic_shift("c", np.zeros(500), np.full(200, 0.02), 100).psi > 1.0
    assert statistic_shift("c", np.zeros(500), np.zeros(200), 100).psi == pytest.approx(0.0, abs=1e-12)


def test_render_html_escapes_what_it_shows(line):
    r = assess(load_reference(str(line["ref"])), line["variant"], config=default_config(), examples=0)
    r.reasons.append("A <script>alert(1)</script> reason.")
    text = render_html(r)
    assert "<script>" not in text and "&lt;script&gt;" in text
    from engine.security.anchor import head

    h = head(line["variant"])  # the report ends with the audit chain's head, one more copy of it
    assert f"entry {h.last_id} of {h.entries}, SHA-256 {h.hash}" in text.split('<footer class="anchor">')[1]
