"""``inspection-station agreement``: from a CSV of labels and from the store, as JSON and as text."""

from __future__ import annotations

import csv
import json
import math
import warnings

import krippendorff
import numpy as np
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa

from app.cli import main
from engine.review.feedback import Decision, FeedbackStore, FrameForReview
from engine.core.frame import Box


def _write(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["item", "rater", "label"])
        w.writerows(rows)


def _close(a, b):
    return (a is None and (b is None or math.isnan(b))) or math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6)


def test_csv_report_equals_the_reference_packages(tmp_path, capsys):
    rng = np.random.default_rng(11)
    items, raters = 120, ["r1", "r2", "r3"]
    truth = rng.integers(0, 3, items)
    labels = np.where(rng.random((items, 3)) < [0.9, 0.75, 0.6], truth[:, None], rng.integers(0, 3, (items, 3)))
    rows = [(f"it{i}", raters[j], f"class{labels[i, j]}") for i in range(items) for j in range(3)]
    p = tmp_path / "labels.csv"
    _write(p, rows)
    assert main(["agreement", "--csv", str(p), "--json", "--data-dir", str(tmp_path / "d")]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["source"] == f"csv:{p}" and rep["raters"] == raters and rep["overall"]["items"] == items
    pair = {(x["a"], x["b"]): x["kappa"] for x in rep["pairwise"]}
    assert _close(pair[("r1", "r2")], cohen_kappa_score(labels[:, 0], labels[:, 1]))
    assert _close(pair[("r2", "r3")], cohen_kappa_score(labels[:, 1], labels[:, 2]))
    table = np.stack([np.bincount(r, minlength=3) for r in labels])
    assert _close(rep["overall"]["fleiss"], fleiss_kappa(table))
    assert _close(rep["overall"]["alpha"], krippendorff.alpha(reliability_data=labels.T.astype(float),
                                                              level_of_measurement="nominal"))


def test_csv_with_missing_ratings_and_all_one_label(tmp_path, capsys):
    p = tmp_path / "labels.csv"
    # missing ratings: alpha uses every item with two or more; Fleiss is not defined for two raters
    _write(p, [("a", "x", "dent"), ("a", "y", "dent"), ("b", "x", "none"), ("b", "z", "dent"),
               ("c", "y", "none"), ("c", "z", "none"), ("d", "x", "dent")])
    assert main(["agreement", "--csv", str(p), "--json", "--data-dir", str(tmp_path / "d")]) == 0
    rep = json.loads(capsys.readouterr().out)
    data = np.array([[1, 0, np.nan, 1], [1, np.nan, 0, np.nan], [np.nan, 1, 0, np.nan]], float)  # dent=1 none=0
    assert _close(rep["overall"]["alpha"], krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))
    assert rep["overall"]["fleiss"] is None and rep["overall"]["items"] == 3
    # everyone always says the same one label: kappa and alpha undefined (null), agreement 100 %
    _write(p, [(i, r, "none") for i in "abc" for r in "xy"])
    assert main(["agreement", "--csv", str(p), "--json", "--data-dir", str(tmp_path / "d")]) == 0
    rep = json.loads(capsys.readouterr().out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert math.isnan(cohen_kappa_score(["none"] * 3, ["none"] * 3))
    assert rep["pairwise"][0]["kappa"] is None and rep["overall"]["alpha"] is None
    assert rep["overall"]["percent_agreement"] == 1.0 and rep["disputed"] == []
    assert main(["agreement", "--csv", str(p), "--data-dir", str(tmp_path / "d")]) == 0
    text = capsys.readouterr().out
    assert "Krippendorff's alpha  n/a" in text and "3 items rated by two or more" in text


def test_csv_errors_are_one_sentence(tmp_path, capsys):
    assert main(["agreement", "--csv", str(tmp_path / "nope.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err
    bad = tmp_path / "bad.csv"
    bad.write_text("item,label\n1,dent\n", encoding="utf-8")
    assert main(["agreement", "--csv", str(bad)]) == 2
    assert "item, rater and label" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["agreement", "gold-build", "--out", str(blocker)]) == 2
    err = capsys.readouterr().err
    assert "gold set could not be built" in err and "Traceback" not in err


def test_store_report_as_json_and_text(tmp_path, capsys):
    data = tmp_path / "data"
    store = FeedbackStore(data)
    img = np.zeros((32, 32, 3), np.uint8)
    futs = []
    for seq in range(30):
        fr = FrameForReview(img + seq, "sim:line", seq, 100.0 + seq,
                            (Box(1, 1, 9, 9, 0, "scratch", 0.5), Box(10, 10, 20, 20, 1, "dent", 0.95)))
        for op in ("ann", "bob"):
            wrong = op == "bob" and seq % 3 == 0
            futs.append(store.submit(Decision(fr, op, "reject" if wrong else "confirm", detection=0)))
            futs.append(store.submit(Decision(fr, op, "confirm", detection=1)))
    for f in futs:
        f.result(30)
    store.close()
    assert main(["agreement", "--json", "--data-dir", str(data)]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["source"] == "store" and rep["overall"]["items"] == 60 and rep["raters"] == ["ann", "bob"]
    assert rep["per_band"]["boundary"]["items"] == 30 and rep["per_band"]["easy"]["items"] == 30
    assert rep["per_band"]["easy"]["percent_agreement"] == 1.0
    assert rep["per_band"]["boundary"]["percent_agreement"] == round(20 / 30, 6)
    assert rep["disputed_total"] == 10 and rep["disputed"][0]["labels"] == {"ann": "scratch", "bob": "none"}
    assert rep["pairwise"][0]["n"] == 60 and rep["pairwise"][0]["agreement"] == round(50 / 60, 6)
    assert main(["agreement", "--json", "--since", "2999-01-01", "--data-dir", str(data)]) == 0
    assert json.loads(capsys.readouterr().out)["overall"]["items"] == 0
    assert main(["agreement", "--data-dir", str(data)]) == 0
    text = capsys.readouterr().out
    assert "60 items rated by two or more" in text and "Most disputed (10 of 10)" in text
    assert "frame 0 of sim:line score 0.50  ann: scratch, bob: none" in text
