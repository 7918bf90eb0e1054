"""Annotator agreement: the statistics against the reference packages, simulated operators of known accuracy,
the blind re-review scheduler on a real store, the gold set and the calibration exercise."""

from __future__ import annotations

import json
import math
import warnings

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

from engine.datasets.agreement.gold import (
    GOLD_FILE,
    CalibrationExercise,
    latest_calibrations,
    load_gold_set,
    save_calibration,
)
from engine.datasets.agreement.gold_build import DEFAULT_CRITERIA, build_gold_set
from engine.datasets.agreement.ratings import ratings_from_store, read_csv, report_from_store, summary_from_store
from engine.datasets.agreement.report import NONE_LABEL, Rating, report
from engine.datasets.agreement.statistics import cohen_kappa, count_table, fleiss_kappa, krippendorff_alpha
from engine.review.recheck import INTER, INTRA
from engine.review import recheck
from engine.review.feedback import Decision, FeedbackStore, FrameForReview
from engine.core.frame import Box
from engine.review.router import OracleReviewer
from engine.simulation.defects import DEFECT_CLASSES
from engine.simulation.line import LineSimulator

LABELS = ["scratch", "dent", "contamination", "none"]


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _sk(a, b) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(cohen_kappa_score(a, b))


def _sm(table) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            return float(sm_fleiss(np.asarray(table)))


# --------------------------------------------------------------------------- Cohen


@pytest.mark.parametrize("seed", range(12))
def test_cohen_matches_scikit_learn_on_random_data(seed):
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(5, 300)), int(rng.integers(2, 6))
    a = rng.integers(0, k, n)
    b = np.where(rng.random(n) < rng.random(), a, rng.integers(0, k, n))  # correlated to varying degree
    ours = cohen_kappa([LABELS[i % 4] + str(i) for i in a], [LABELS[i % 4] + str(i) for i in b])
    assert _same(ours, _sk(a, b))


@pytest.mark.parametrize("a,b", [
    (["x"] * 6, ["x"] * 6),                          # all one label: undefined (NaN) in both
    (["x", "y", "x", "z"], ["x", "y", "x", "z"]),    # all agree: 1
    (["x"] * 5, ["x", "y", "x", "x", "y"]),          # one rater constant: 0
    (["x", "y"] * 4, ["y", "x"] * 4),                # complete disagreement: -1
    (["x", "y", "y"], ["z", "z", "z"]),              # disjoint labels
    (["x"], ["y"]),                                  # one item, disagreeing
])
def test_cohen_edge_cases_match_scikit_learn(a, b):
    ours = cohen_kappa(a, b)
    assert _same(ours, _sk(a, b)), (ours, _sk(a, b))


def test_cohen_edge_values_are_the_documented_ones():
    assert math.isnan(cohen_kappa(["x"] * 4, ["x"] * 4))
    assert cohen_kappa(["x", "y"], ["x", "y"]) == 1.0
    assert math.isnan(cohen_kappa([], []))


# --------------------------------------------------------------------------- Fleiss


@pytest.mark.parametrize("seed", range(12))
def test_fleiss_matches_statsmodels_on_random_data(seed):
    rng = np.random.default_rng(100 + seed)
    items, k, raters = int(rng.integers(3, 200)), int(rng.integers(2, 6)), int(rng.integers(2, 9))
    truth = rng.integers(0, k, items)
    acc = rng.uniform(0.2, 1.0)
    labels = np.where(rng.random((items, raters)) < acc, truth[:, None], rng.integers(0, k, (items, raters)))
    table = np.stack([np.bincount(row, minlength=k) for row in labels])
    assert _same(fleiss_kappa(table), _sm(table))
    units = [[f"c{v}" for v in row] for row in labels]
    assert _same(fleiss_kappa(count_table(units)), _sm(table))


@pytest.mark.parametrize("table", [
    [[3, 0], [3, 0], [3, 0]],          # all one label: NaN
    [[4], [4], [4]],                   # all one label, one category
    [[3, 0], [0, 3], [3, 0]],          # all agree: 1
    [[2, 1], [1, 2], [3, 0]],          # about zero
    [[1, 1], [1, 1], [1, 1], [1, 1]],  # two raters always split
])
def test_fleiss_edge_cases_match_statsmodels(table):
    assert _same(fleiss_kappa(table), _sm(table))


def test_fleiss_refuses_unequal_rating_counts():
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa([[2, 1], [1, 0]])


# --------------------------------------------------------------------------- Krippendorff


def _kr(data, domain=None) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(krippendorff.alpha(reliability_data=np.asarray(data, float), level_of_measurement="nominal",
                                         value_domain=domain))


def _units(data):
    """raters x items (NaN = missing) -> each item's labels."""
    data = np.asarray(data, float)
    return [[int(v) for v in data[:, j] if not np.isnan(v)] for j in range(data.shape[1])]


@pytest.mark.parametrize("seed", range(12))
def test_alpha_matches_krippendorff_package_with_missing_ratings(seed):
    rng = np.random.default_rng(200 + seed)
    raters, items, k = int(rng.integers(2, 7)), int(rng.integers(5, 150)), int(rng.integers(2, 6))
    truth = rng.integers(0, k, items)
    data = np.where(rng.random((raters, items)) < rng.uniform(0.3, 1), truth, rng.integers(0, k, (raters, items)))
    data = data.astype(float)
    data[rng.random(data.shape) < rng.uniform(0, 0.6)] = np.nan
    if sum(len(u) >= 2 for u in _units(data)) == 0 or len({v for u in _units(data) if len(u) >= 2 for v in u}) < 2:
        pytest.skip("this draw left nothing pairable")
    assert _same(krippendorff_alpha(_units(data)), _kr(data))


def test_alpha_edge_cases():
    nan = np.nan
    # all agree, two values used: 1 in both
    d = [[1, 2, 1, 2], [1, 2, 1, 2]]
    assert _same(krippendorff_alpha(_units(d)), _kr(d)) and krippendorff_alpha(_units(d)) == 1.0
    # missing ratings, rest agreeing
    d = [[1, 2, nan, 1], [1, nan, 2, 1], [nan, 2, 2, 1]]
    assert _same(krippendorff_alpha(_units(d)), _kr(d))
    # systematic disagreement: negative
    d = [[1, 2], [2, 1]]
    assert _same(krippendorff_alpha(_units(d)), _kr(d)) and krippendorff_alpha(_units(d)) < 0
    # all one label: the package refuses a one-value domain; with a wider domain it gives NaN, as we do
    d = [[1, 1, 1], [1, 1, 1]]
    with pytest.raises(ValueError):
        krippendorff.alpha(reliability_data=np.asarray(d, float), level_of_measurement="nominal")
    assert math.isnan(_kr(d, domain=[1, 2])) and math.isnan(krippendorff_alpha(_units(d)))
    # no item with two ratings: the package raises, we say NaN
    d = [[1, nan], [nan, 2]]
    with pytest.raises(ValueError):
        krippendorff.alpha(reliability_data=np.asarray(d, float), level_of_measurement="nominal")
    assert math.isnan(krippendorff_alpha(_units(d)))
    # units with a single rating do not count
    d = [[1, 2, 1, 3], [1, 2, 2, nan]]
    assert _same(krippendorff_alpha(_units(d)), _kr(d))


def test_alpha_equals_fleiss_corrected_for_sample_size_on_complete_data():
    """On complete data alpha and Fleiss' kappa differ only by the small-sample term: a cross-check of both."""
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 3, (400, 4))
    agree = rng.random(400) < 0.6
    labels[agree] = labels[agree][:, :1]  # most items: every rater gives the first rater's label
    units = [list(r) for r in labels]
    a, f = krippendorff_alpha(units), fleiss_kappa(count_table(units))
    n = labels.size  # pairable values
    assert 0.5 < f < 0.8
    assert math.isclose(a, 1 - (n - 1) / n * (1 - f), rel_tol=1e-12)


# --------------------------------------------------------------------------- the report on simulated operators


def _simulate(accuracies: dict[str, object], items: int, seed: int, t0: float = 0.0) -> list[Rating]:
    """Every operator labels every item; ``accuracy`` may be a function of the item's position (0..1)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(items):
        truth = LABELS[int(rng.integers(0, 4))]
        score = float(rng.uniform(0.05, 0.99))
        for name, acc in accuracies.items():
            a = acc(i / items) if callable(acc) else acc
            label = truth if rng.random() < a else rng.choice([x for x in LABELS if x != truth])
            out.append(Rating(f"i{i}", name, str(label), t0 + i, score, truth))
    return out


def test_measured_agreement_follows_known_accuracies():
    acc = {"ada": 0.97, "ben": 0.9, "cyd": 0.8, "dan": 0.7, "eve": 0.55}
    rep = report(_simulate(acc, 800, seed=1))
    ops = rep["operators"]
    order = sorted(acc, key=acc.get, reverse=True)
    gold = [ops[o]["vs_gold"]["kappa"] for o in order]
    cons = [ops[o]["vs_consensus"]["kappa"] for o in order]
    assert gold == sorted(gold, reverse=True) and cons == sorted(cons, reverse=True), (gold, cons)
    # a kappa against gold with four equally likely labels is (a - 1/4) / (3/4)
    for o in order:
        assert abs(ops[o]["vs_gold"]["kappa"] - (acc[o] - 0.25) / 0.75) < 0.06
    pair = {(p["a"], p["b"]): p["kappa"] for p in rep["pairwise"]}
    assert pair[("ada", "ben")] > pair[("dan", "eve")]
    assert rep["overall"]["fleiss_raters"] == 5 and rep["overall"]["fleiss_items"] == 800
    assert 0.3 < rep["overall"]["alpha"] < 0.8
    assert rep["warnings"] == []  # nobody's accuracy changed
    assert not any(ops[o]["drift"]["flagged"] for o in order)


def test_an_operator_whose_accuracy_decays_is_flagged():
    acc = {"ada": 0.95, "ben": 0.92, "cyd": 0.9,
           "dee": lambda x: 0.95 if x < 0.5 else 0.95 - 1.0 * (x - 0.5)}  # 95 % falling to 45 % over the run
    rep = report(_simulate(acc, 600, seed=0))
    ops = rep["operators"]
    assert ops["dee"]["drift"]["flagged"], ops["dee"]["drift"]
    assert len(rep["warnings"]) == 1 and rep["warnings"][0].startswith("dee's agreement")
    trend = [p["agreement"] for p in ops["dee"]["trend"]]
    assert min(trend[:5]) > 0.8 and trend[-1] < 0.65 and len(trend) >= 10
    # over many runs: the decaying operator always, the steady ones (30 chances) rarely
    flagged = {o: 0 for o in acc}
    for seed in range(1, 11):
        rep = report(_simulate(acc, 600, seed=seed))
        for o in acc:
            flagged[o] += rep["operators"][o]["drift"]["flagged"]
    assert flagged["dee"] == 10
    assert flagged["ada"] + flagged["ben"] + flagged["cyd"] <= 2, flagged


def test_intra_rater_consistency_bands_classes_and_disputes():
    r = [
        Rating("a", "x", "scratch", 1, 0.5), Rating("a", "y", "dent", 2, 0.5),
        Rating("b", "x", "none", 3, 0.9), Rating("b", "y", "none", 4, 0.9),
        Rating("c", "x", "dent", 5, 0.1), Rating("c", "y", "dent", 6, 0.1), Rating("c", "z", "none", 7, 0.1),
        Rating("b", "x", "none", 8, 0.9, intra=True), Rating("c", "x", "scratch", 9, 0.1, intra=True),
        Rating("d", "x", "dent", 10, 0.6),  # only one rater: not an agreement item
    ]
    rep = report(r)
    json.dumps(rep, allow_nan=False)  # valid JSON: NaN written as null
    assert rep["overall"]["items"] == 3
    assert rep["intra"] == {"n": 2, "agreement": 0.5, "kappa": rep["intra"]["kappa"]}
    assert rep["operators"]["x"]["intra"]["n"] == 2 and rep["operators"]["y"]["intra"]["n"] == 0
    assert rep["per_band"]["boundary"]["items"] == 1 and rep["per_band"]["easy"]["items"] == 2
    assert rep["per_band"]["boundary"]["percent_agreement"] == 0.0
    assert rep["per_band"]["easy"]["percent_agreement"] == pytest.approx((1 + 1 / 3) / 2)
    assert rep["disputed"][0]["item"] == "a" and rep["disputed"][0]["disagreement"] == 1.0
    assert [d["item"] for d in rep["disputed"]] == ["a", "c"]
    assert set(rep["per_class"]) == {"scratch", "dent", "none"}
    # the same figures from a CSV


def test_csv_round_trip(tmp_path):
    p = tmp_path / "labels.csv"
    p.write_text("item,rater,label,score\n1,ann,scratch,0.5\n1,bob,dent,0.5\n2,ann,none,\n2,bob,none,\n"
                 "3,ann,dent,\n3,bob,,\n", encoding="utf-8")
    rs = read_csv(p)
    assert len(rs) == 5  # the empty label is a missing rating
    rep = report(rs)
    assert rep["overall"]["items"] == 2 and rep["pairwise"][0]["n"] == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("item,who,label\n", encoding="utf-8")
    with pytest.raises(ValueError, match="item, rater and label"):
        read_csv(bad)


# --------------------------------------------------------------------------- the real store


def _frames(n: int, seed: int = 1) -> list[FrameForReview]:
    """Small simulated frames with detections made from the truth: some right, some wrong class, some false."""
    sim = LineSimulator(seed=seed, scenario="nominal", width=320, height=256)
    rng = np.random.default_rng(seed)
    out = []
    slot = 0
    while len(out) < n:
        image, truth = sim.render(slot)
        slot += 3
        dets = []
        for d in truth.defects:
            cid = d.box.class_id if rng.random() < 0.85 else int(rng.integers(0, 3))
            dets.append(Box(d.box.x0, d.box.y0, d.box.x1, d.box.y1, cid, DEFECT_CLASSES[cid],
                            float(rng.uniform(0.3, 1.0))))
        if rng.random() < 0.4:
            x, y = float(rng.uniform(10, 280)), float(rng.uniform(10, 220))
            dets.append(Box(x, y, x + 20, y + 12, 0, "scratch", float(rng.uniform(0.2, 0.6))))
        if dets:
            out.append(FrameForReview(image, "sim://?seed=1&width=320&height=256", slot, 1000.0 + slot,
                                      tuple(dets), "test-model", "cpu", None, {}, truth.to_dict(), "near-threshold"))
    return out


def _submit_all(store: FeedbackStore, decisions: list[Decision]) -> None:
    futs = [store.submit(d) for d in decisions]
    for f in futs:
        f.result(60)


def test_store_ratings_follow_oracle_accuracies_and_undo_is_left_out(data_dir):
    frames = _frames(70)
    store = FeedbackStore(data_dir)
    try:
        reviewers = [OracleReviewer(a, name, seed=k) for k, (name, a) in
                     enumerate([("ann", 0.97), ("bob", 0.85), ("cat", 0.65)])]
        decisions = [d for fr in frames for r in reviewers for d in r.review(fr) if d.verdict != "missed"]
        _submit_all(store, decisions)
        # ann takes one decision back: it must vanish from the ratings
        gone = next(d for d in decisions if d.operator == "ann")
        _submit_all(store, [Decision(gone.frame, "ann", "undo", undoes=gone.review_id)])
    finally:
        store.close()
    ratings = ratings_from_store(data_dir)
    assert len(ratings) == len(decisions) - 1
    assert all(r.gold in (*DEFECT_CLASSES, NONE_LABEL) for r in ratings)
    rep = report_from_store(data_dir)
    ops = rep["operators"]
    k = [ops[n]["vs_gold"]["kappa"] for n in ("ann", "bob", "cat")]
    assert k == sorted(k, reverse=True) and k[0] > 0.85, k
    assert ops["ann"]["vs_consensus"]["agreement"] > ops["cat"]["vs_consensus"]["agreement"]
    d = rep["disputed"][0]
    assert {"frame_id", "detection", "image_sha256", "box", "source", "sequence"} <= set(d)
    s = summary_from_store(data_dir)
    assert s["items"] == rep["overall"]["items"] and s["raters"] == ["ann", "bob", "cat"]
    assert s["kappa_kind"] == "fleiss" and s["kappa"] == rep["overall"]["fleiss"]
    assert summary_from_store(data_dir, since=4e9)["items"] == 0  # nothing decided after 2096


def test_blind_recheck_schedule_on_the_store(data_dir):
    settings = recheck.RecheckSettings(share_other=0.3, share_same=0.2, delay_frames=10)
    shares = [recheck.selection(i, settings) for i in range(1, 4001)]
    assert abs(shares.count(INTER) / 4000 - 0.3) < 0.03 and abs(shares.count(INTRA) / 4000 - 0.2) < 0.03
    frames = _frames(40, seed=3)
    store = FeedbackStore(data_dir)
    try:
        ann = OracleReviewer(0.9, "ann", seed=1)
        _submit_all(store, [d for fr in frames for d in ann.review(fr) if d.verdict != "missed"])
        due_bob = recheck.due(data_dir, "bob", settings)
        due_ann = recheck.due(data_dir, "ann", settings)
        assert due_bob and due_ann
        assert {m for _, m, _ in due_bob} == {INTER} and {m for _, m, _ in due_ann} == {INTRA}
        newest = max(f for f, _, _ in due_bob + due_ann)
        assert newest <= 40 - 10  # the most recent frames are not due yet
        assert all(recheck.selection(f, settings) == INTER for f, _, _ in due_bob)
        task = recheck.next_task(data_dir, "bob", settings)
        assert task is not None and task.frame.queue_reason == INTER and task.original_operators == ("ann",)
        assert task.frame.image.shape == (256, 320, 3) and task.frame.detections  # as first shown
        # bob's blind verdicts are stored as normal decisions on the same frame, and the frame is no longer due
        bob = OracleReviewer(0.9, "bob", seed=2)
        _submit_all(store, [d for d in bob.review(task.frame) if d.verdict != "missed"])
        assert task.frame_id not in [f for f, _, _ in recheck.due(data_dir, "bob", settings)]
        assert task.frame_id not in [f for f, _, _ in recheck.due(data_dir, "cat", settings)]
        intra = recheck.next_task(data_dir, "ann", settings)
        assert intra is not None and intra.frame.queue_reason == INTRA
        _submit_all(store, [d for d in ann.review(intra.frame) if d.verdict != "missed"])
    finally:
        store.close()
    rep = report_from_store(data_dir)
    assert rep["operators"]["bob"]["items"] == len(task.frame.detections)
    assert rep["intra"]["n"] == len(intra.frame.detections)
    assert rep["operators"]["ann"]["intra"]["n"] == len(intra.frame.detections)
    assert recheck.RecheckSettings.from_config({"agreement": {"recheck_share_other": 0.1}}).share_other == 0.1
    with pytest.raises(ValueError):
        recheck.RecheckSettings.from_config({"agreement": {"recheck_share_other": 0.8, "recheck_share_same": 0.5}})


# --------------------------------------------------------------------------- gold set and calibration


def test_built_in_gold_set_and_calibration_exercise(data_dir):
    gold = load_gold_set()
    assert len(gold.items) >= 20 and gold.choices == (*DEFECT_CLASSES, "none")
    assert {i.answer for i in gold.items} == set(gold.choices)
    assert any(i.boundary for i in gold.items) and any(not i.boundary for i in gold.items)
    assert sum(gold.image_path(i).stat().st_size for i in gold.items) < 2 * 2 ** 20
    ex = CalibrationExercise(gold, "newbie")
    wrong = [i for i in gold.items if i.boundary and i.answer != "none"][:3]
    for it in gold.items:
        ex.answer(it.id, "none" if it in wrong else it.answer)
    assert ex.done
    res = ex.result()
    assert res["agreement"] == pytest.approx(1 - 3 / len(gold.items))
    assert [d["item"] for d in res["disagreements"]] == [i.id for i in wrong]
    assert all(d["why"] == gold.criteria[d["answer"]] and d["given"] == "none" for d in res["disagreements"])
    assert res["per_band"]["easy"]["agreement"] == 1.0 and res["per_band"]["boundary"]["agreement"] < 1.0
    with pytest.raises(ValueError):
        ex.answer(gold.items[0].id, "rust")
    path = save_calibration(data_dir, res)
    assert path.exists() and not list(path.parent.glob("*.tmp"))
    assert latest_calibrations(data_dir)["newbie"]["agreement"] == res["agreement"]
    rep = report([Rating("a", "newbie", "dent"), Rating("a", "old", "dent")], None,
                    latest_calibrations(data_dir))
    assert rep["operators"]["newbie"]["calibration"]["disagreements"] == 3


def test_gold_set_build_keeps_edited_criteria_and_checks_answers(tmp_path):
    folder = tmp_path / "gold"
    folder.mkdir()
    (folder / GOLD_FILE).write_text(json.dumps({"criteria": {"scratch": "Scratches from 2 mm."}}))
    gold = build_gold_set(folder, seed=5, per_class=(1, 0), none_items=2)
    assert len(gold.items) == 5 and gold.criteria["scratch"] == "Scratches from 2 mm."
    assert gold.criteria["dent"] == DEFAULT_CRITERIA["dent"]
    data = json.loads((folder / GOLD_FILE).read_text())
    data["items"][0]["answer"] = "rust"
    (folder / GOLD_FILE).write_text(json.dumps(data))
    with pytest.raises(ValueError, match="rust"):
        load_gold_set(folder)
    with pytest.raises(ValueError, match="no gold set"):
        load_gold_set(tmp_path / "empty")
