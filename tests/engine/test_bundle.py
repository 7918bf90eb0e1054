"""Feedback bundles: built from a real auto-reviewed headless run and from decisions stored one by one, then
read back with pycocotools and supervision, checked, tampered with, interrupted and merged."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from app.cli import main
from engine.datasets.bundle import (
    BundleError,
    Cancelled,
    ExportOptions,
    agreement_summary,
    export_bundle,
    merge_bundles,
    preview,
    verify,
)
from engine.core.timeparse import parse_time
from engine.storage.db import read
from engine.monitoring.drift import BatchPoint
from engine.review.feedback import Decision, FeedbackStore, FrameForReview
from engine.core.frame import Box
from engine.monitoring.trends import TrendStore

SMALL_SIM = "sim://?seed=1&scenario=nominal&width=320&height=256"
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@pytest.fixture(scope="module")
def auto_store(tmp_path_factory):
    """A store filled by a headless run whose simulated operator errs one time in five."""
    data = tmp_path_factory.mktemp("auto") / "data"
    rc = main(["--data-dir", str(data), "run", "--headless", "--source", SMALL_SIM, "--frames", "150",
               "--auto-review", "oracle:0.8,operator=ann"])
    assert rc == 0
    return data


def _coco_gt_expected(data: Path, shas: set[str]) -> int:
    """Boxes the corrected truth should hold, counted from the decisions table on its own."""
    rows = read(data, "SELECT f.image_sha256 AS sha, d.verdict FROM decisions d JOIN frames f ON f.id = d.frame_id")
    return sum(1 for r in rows if r["sha"] in shas and r["verdict"] in ("confirm", "reclass", "missed"))


def test_an_auto_reviewed_bundle_loads_in_pycocotools_and_supervision(auto_store, tmp_path):
    import supervision as sv
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    res = export_bundle(auto_store, tmp_path / "bundle", ExportOptions(), "station-a")
    b = res.path
    assert (b / "manifest.json").is_file() and (b / "SHA256SUMS").is_file()
    gt = COCO(str(b / "annotations/instances.json"))
    dt = gt.loadRes(str(b / "annotations/predictions.json"))
    ev = COCOeval(gt, dt, "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    ap50 = ev.stats[1]
    # The operator rejected many of the model's boxes: the old model cannot score perfectly on its own errors.
    assert 0.0 < ap50 < 1.0
    shas = {Path(i["file_name"]).stem for i in gt.dataset["images"]}
    assert len(shas) == len(gt.dataset["images"]) == res.counts["images"]
    assert len(gt.dataset["annotations"]) == _coco_gt_expected(auto_store, shas)
    n_rejects = read(auto_store, "SELECT count(*) AS n FROM decisions WHERE verdict = 'reject'")[0]["n"]
    n_missed = read(auto_store, "SELECT count(*) AS n FROM decisions WHERE verdict = 'missed'")[0]["n"]
    assert n_rejects > 0 and n_missed > 0
    assert len(dt.dataset["annotations"]) == res.counts["predictions"] > len(gt.dataset["annotations"]) - n_missed
    for a in gt.dataset["annotations"]:
        assert a["iscrowd"] == 0 and a["area"] == pytest.approx(a["bbox"][2] * a["bbox"][3], rel=1e-3)
    for i in gt.dataset["images"]:
        assert (i["width"], i["height"]) == (320, 256)
        assert (b / "images" / i["file_name"]).is_file()

    coco_ds = sv.DetectionDataset.from_coco(images_directory_path=str(b / "images"),
                                            annotations_path=str(b / "annotations/instances.json"))
    yolo_ds = sv.DetectionDataset.from_yolo(images_directory_path=str(b / "images"),
                                            annotations_directory_path=str(b / "labels"),
                                            data_yaml_path=str(b / "data.yaml"))
    assert len(coco_ds) == len(yolo_ds) == res.counts["images"]
    assert coco_ds.classes == yolo_ds.classes == ["scratch", "dent", "contamination"]
    by_name_coco = {Path(p).name: d for p, _, d in coco_ds}
    by_name_yolo = {Path(p).name: d for p, _, d in yolo_ds}
    assert by_name_coco.keys() == by_name_yolo.keys()
    for name, d in by_name_coco.items():
        y = by_name_yolo[name]
        assert len(d) == len(y)
        assert sorted(d.class_id.tolist()) == sorted(y.class_id.tolist())
        if len(d):
            assert np.allclose(np.sort(d.xyxy, axis=0), np.sort(y.xyxy, axis=0), atol=0.05)
    empty = [p for p in (b / "labels").iterdir() if p.stat().st_size == 0]
    assert len(empty) == res.counts["defect_free_images"] == sum(1 for d in by_name_coco.values() if len(d) == 0)
    assert len(list((b / "labels").iterdir())) == res.counts["images"]

    m = json.loads((b / "manifest.json").read_text())
    assert m["format_version"] == 1 and m["station_id"] == "station-a" and m["application_version"]
    assert m["models"][0]["sha256"] == json.loads(Path("resources/builtin_detector.json").read_text())["sha256"]
    assert m["counts"]["by_kind"]["fp"] > 0 and m["counts"]["by_kind"]["fn"] > 0
    assert m["agreement"]["operators"] == ["ann"]
    decisions = (b / "decisions.csv").read_text().splitlines()
    assert len(decisions) - 1 == m["counts"]["decisions"] == read(
        auto_store, "SELECT count(*) AS n FROM decisions")[0]["n"]
    assert verify(b).ok


def test_exporting_only_some_kinds_and_classes(auto_store, tmp_path):
    fn = preview(auto_store, ExportOptions(kinds=("fn",), replay_share=0.0))
    missed = ("(verdict = 'missed' OR (verdict = 'reclass' AND new_class != old_class))")
    frames_with_missed = read(auto_store, f"SELECT count(DISTINCT frame_id) AS n FROM decisions WHERE {missed}")
    assert fn["chosen"] == frames_with_missed[0]["n"] > 0 and fn["replay"] == 0
    res = export_bundle(auto_store, tmp_path / "dents", ExportOptions(kinds=("fn",), classes=("dent",),
                                                                      replay_share=0.0), "s")
    gt = json.loads((res.path / "annotations/instances.json").read_text())
    assert [c["name"] for c in gt["categories"]] == ["dent"]
    assert "0: \"dent\"" in (res.path / "data.yaml").read_text()
    dent_missed = read(auto_store, f"SELECT count(DISTINCT frame_id) AS n FROM decisions WHERE {missed}"
                                   " AND new_class = 'dent'")[0]["n"]
    assert len(gt["images"]) == dent_missed


def _frame(seq: int, dets: tuple[Box, ...], t: float, model: str = "builtin tiny-centernet-defects 8c6ad59c",
           value: int = 0) -> FrameForReview:
    img = np.full((64, 80, 3), (seq * 7 + value) % 256, np.uint8)
    img[seq % 64, seq % 80] = 255 - (seq % 200)
    return FrameForReview(img, "sim:line", seq, t, dets, model, "cpu", "ref" + "0" * 61, {})


def _hand_store(data: Path) -> dict[str, FrameForReview]:
    """Frames whose decisions exercise every rule of the corrected truth."""
    s = FeedbackStore(data)
    a = _frame(1, (Box(2, 2, 10, 10, 0, "scratch", 0.9), Box(20, 20, 30, 30, 1, "dent", 0.6),
                   Box(40, 5, 50, 15, 2, "contamination", 0.7)), T0 + 10)
    b = _frame(2, (Box(5, 5, 15, 15, 1, "dent", 0.8), Box(30, 30, 40, 40, 0, "scratch", 0.45)), T0 + 20)
    c = _frame(3, (Box(10, 10, 20, 20, 2, "contamination", 0.95),), T0 + 30)
    c2 = _frame(4, (Box(12, 10, 22, 20, 2, "contamination", 0.95),), T0 + 35)
    d = _frame(5, (), T0 + 40)
    e = _frame(6, (), T0 + 50)
    f = _frame(7, (Box(1, 1, 9, 9, 0, "scratch", 0.8),), T0 + 3600 * 24, model="user-model 1234abcd")
    for dec in (Decision(a, "ann", "confirm", detection=0), Decision(a, "ann", "reject", detection=1),
                Decision(a, "ann", "reclass", detection=2, new_class="dent"),
                Decision(a, "ann", "missed", new_class="scratch", new_box=(60, 40, 70, 50)),
                Decision(c, "ann", "confirm", detection=0), Decision(c, "bob", "confirm", detection=0),
                Decision(c2, "ann", "confirm", detection=0), Decision(c2, "bob", "reject", detection=0),
                Decision(f, "ann", "confirm", detection=0)):
        s.submit(dec).result(10)
    rejected = Decision(b, "ann", "reject", detection=0)
    s.submit(rejected).result(10)
    s.submit(Decision(b, "ann", "undo", undoes=rejected.review_id)).result(10)
    s.submit(Decision(b, "ann", "unsure")).result(10)
    s.keep_sample(d).result(10)
    s.submit(Decision(e, "ann", "unsure")).result(10)
    assert s.record_qc([{"source": "sim:line", "sequence": 6, "class": "dent", "box": None}]).result(10) == [None]
    s.close()
    ts = TrendStore(data, "ref" + "0" * 61)
    ts.add_event(T0 + 15, "lens", "lens changed at the line")
    for k in range(3):
        ts.add_batch(BatchPoint(time=T0 + 60 * k + 5, sequence=k, means={"mean_luma": 100.0 + k},
                                levels={"mean_luma": "ok"}, scores={}))
    ts.close()
    return {"a": a, "b": b, "c": c, "c2": c2, "d": d, "e": e, "f": f}


@pytest.fixture
def hand_store(data_dir):
    return data_dir, _hand_store(data_dir)


def _gt(bundle: Path) -> tuple[dict, dict]:
    gt = json.loads((bundle / "annotations/instances.json").read_text())
    by_seq: dict[int, list] = {i["sequence"]: [] for i in gt["images"]}
    seq_of = {i["id"]: i["sequence"] for i in gt["images"]}
    for a in gt["annotations"]:
        by_seq[seq_of[a["image_id"]]].append(a)
    return gt, by_seq


def test_the_corrected_truth_follows_the_decisions(hand_store, tmp_path):
    data, _ = hand_store
    res = export_bundle(data, tmp_path / "b", ExportOptions(until=T0 + 3600, replay_share=1.0), "st")
    gt, by_seq = _gt(res.path)
    cats = {c["id"]: c["name"] for c in gt["categories"]}

    def boxes(seq):
        return sorted((cats[a["category_id"]], a["bbox"], a["status"]) for a in by_seq[seq])

    # a: scratch confirmed, dent rejected (gone), contamination corrected to dent, a missed scratch added.
    assert boxes(1) == sorted([("scratch", [2.0, 2.0, 8.0, 8.0], "confirmed"),
                               ("dent", [40.0, 5.0, 10.0, 10.0], "corrected"),
                               ("scratch", [60.0, 40.0, 10.0, 10.0], "missed")])
    # b: the reject was undone, so both boxes stand (the second never decided: kept as predicted).
    assert boxes(2) == sorted([("dent", [5.0, 5.0, 10.0, 10.0], "undecided"),
                               ("scratch", [30.0, 30.0, 10.0, 10.0], "undecided")])
    kinds = {i["sequence"]: i["kinds"] for i in gt["images"]}
    assert kinds[1] == ["fn", "fp"] and kinds[2] == ["unsure"] and kinds[3] == ["confirmed"]
    assert kinds[4] == ["fp"]  # bob rejected what ann confirmed: the later decision wins
    assert boxes(4) == []
    # d was only ever a sample: it joins as replay with the model's (no) boxes; f lies outside the period;
    # e has a missed defect without a box, so it cannot be drawn and is left out.
    assert kinds[5] == ["replay"] and 6 not in kinds and 7 not in kinds
    c = res.counts
    assert c["left_out"] == {"missed_defect_without_box": 1}
    assert c["by_kind"] == {"fp": 2, "fn": 1, "confirmed": 1, "unsure": 1, "replay": 1}
    assert c["undecided_detections_kept"] == 2
    with open(res.path / "decisions.csv", newline="") as fh:
        recs = list(csv.DictReader(fh))
    assert len(recs) == 13  # a 4, b 3, c 2, c2 2, and e (left out) 2; f lies outside the period
    undo = [r for r in recs if r["verdict"] == "undo"]
    assert len(undo) == 1 and undo[0]["effective"] == "False"
    undone = [r for r in recs if r["review_id"] == undo[0]["undoes"]]
    assert undone and undone[0]["effective"] == "False" and undone[0]["verdict"] == "reject"
    qc = [r for r in recs if r["origin"] == "qc"]
    assert qc and qc[0]["in_bundle"] == "False" and qc[0]["sequence"] == "6"
    m = json.loads((res.path / "manifest.json").read_text())
    ag = m["agreement"]
    assert ag["frames_decided_by_several_operators"] == 3  # c and c2 (ann, bob), e (ann, qc)
    assert (ag["detections_compared"], ag["operator_pairs"], ag["agreeing_pairs"]) == (2, 2, 1)
    assert ag["agreement"] == 0.5
    assert m["references"][0]["id"] == m["references"][0]["sha256"] == "ref" + "0" * 61
    events = (res.path / "events.csv").read_text()
    assert "lens changed at the line" in events
    minutes = (res.path / "drift/minutes.csv").read_text().splitlines()
    assert len(minutes) == 1 + 3  # a header and the three minutes of the period
    summary = json.loads((res.path / "drift/summary.json").read_text())
    assert summary["metrics"]["mean_luma"]["mean"] == pytest.approx(101.0)
    assert summary["metrics"]["mean_luma"]["minutes"] == 3


def test_model_changes_become_events_and_the_period_filters_frames(hand_store, tmp_path):
    data, _ = hand_store
    res = export_bundle(data, tmp_path / "all", ExportOptions(), "st")
    events = (res.path / "events.csv").read_text()
    assert "frames from model user-model 1234abcd" in events
    m = json.loads((res.path / "manifest.json").read_text())
    names = {e["name"]: e for e in m["models"]}
    assert names["user-model 1234abcd"]["sha256"] is None and names["user-model 1234abcd"]["sha256_prefix"] == "1234abcd"
    late = preview(data, ExportOptions(since=parse_time("2026-01-01T12:00Z")))
    assert late["chosen"] == 1
    assert parse_time("2026-01-01") == T0 and parse_time("2026-01-01T01:00:00+01:00") == T0
    with pytest.raises(ValueError):
        parse_time("last tuesday")


def test_agreement_summary_counts_pairs_on_the_same_detection():
    rows = [{"frame": 1, "operator": o, "verdict": v, "detection": 0, "new_class": nc, "effective": eff}
            for o, v, nc, eff in (("ann", "reclass", "dent", True), ("bob", "reclass", "dent", True),
                                  ("cy", "reclass", "scratch", True), ("dee", "confirm", None, False))]
    s = agreement_summary(rows)
    assert (s["detections_compared"], s["operator_pairs"], s["agreeing_pairs"]) == (1, 3, 1)
    assert s["frames_decided_by_several_operators"] == 1


def test_agreement_summary_carries_the_chance_corrected_figures():
    import krippendorff

    votes = {"ann": ["confirm", "reject", "confirm", "confirm", "reject", "confirm"],
             "bob": ["confirm", "reject", "reject", "confirm", "reject", "confirm"]}
    rows = [{"frame": k, "operator": o, "verdict": v, "detection": 0, "new_class": None, "effective": True}
            for o, vs in votes.items() for k, v in enumerate(vs)]
    s = agreement_summary(rows)
    codes = {"confirm": 0, "reject": 1}
    expected = krippendorff.alpha([[codes[v] for v in vs] for vs in votes.values()],
                                  level_of_measurement="nominal")
    assert s["alpha"] == pytest.approx(expected)
    assert s["kappa"] is not None and 0 < s["kappa"] < 1


def test_verify_catches_a_changed_a_missing_and_an_extra_file(hand_store, tmp_path):
    data, _ = hand_store
    good = export_bundle(data, tmp_path / "good", ExportOptions(), "st").path
    assert verify(good).ok
    changed, missing, extra = (tmp_path / n for n in ("changed", "missing", "extra"))
    for p in (changed, missing, extra):
        shutil.copytree(good, p)
    img = min((changed / "images").iterdir())
    data_bytes = bytearray(img.read_bytes())
    data_bytes[-20] ^= 1
    img.write_bytes(bytes(data_bytes))
    label = min((missing / "labels").iterdir())
    label.unlink()
    (extra / "images" / "stray.png").write_bytes(b"not part of it")
    assert verify(changed).problems == [f"changed: images/{img.name}"]
    assert verify(missing).problems == [f"missing: labels/{label.name}"]
    assert verify(extra).problems == ["extra: images/stray.png"]
    assert verify(good).ok  # the copies share nothing with the original


def test_a_zip_bundle_verifies_and_a_changed_member_is_caught(hand_store, tmp_path):
    data, _ = hand_store
    res = export_bundle(data, tmp_path / "b", ExportOptions(zip=True), "st")
    assert res.path.name == "b.zip" and verify(res.path).ok
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(res.path) as zi, zipfile.ZipFile(bad, "w") as zo:
        for info in zi.infolist():
            body = zi.read(info)
            if info.filename == "decisions.csv":
                body = body.replace(b"ann", b"eve")
            zo.writestr(info, body)
    assert verify(bad).problems == ["changed: decisions.csv"]


def test_empty_selection_and_existing_target_are_one_sentence_each(hand_store, tmp_path):
    data, _ = hand_store
    with pytest.raises(BundleError, match="nothing to export"):
        export_bundle(data, tmp_path / "none", ExportOptions(since=parse_time("2027-01-01")), "st")
    assert not (tmp_path / "none").exists()
    (tmp_path / "taken").mkdir()
    with pytest.raises(BundleError, match="already exists"):
        export_bundle(data, tmp_path / "taken", ExportOptions(), "st")
    with pytest.raises(BundleError, match="unknown kind"):
        ExportOptions(kinds=("fp", "wrong"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "taken"]


def test_a_cancelled_export_leaves_nothing_behind(hand_store, tmp_path):
    data, _ = hand_store
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 1

    with pytest.raises(Cancelled):
        export_bundle(data, tmp_path / "b", ExportOptions(), "st", cancel=cancel)
    assert calls["n"] > 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no bundle, no temporary


KILLED = """
import os, signal, sys
from pathlib import Path
from engine.datasets.bundle import ExportOptions, export_bundle
def progress(done, total, stage):
    if stage == "labels":
        os.kill(os.getpid(), signal.SIGKILL)
export_bundle(Path(sys.argv[1]), Path(sys.argv[2]), ExportOptions(), "st", progress=progress)
"""


def test_an_export_killed_midway_never_looks_finished(hand_store, tmp_path):
    data, _ = hand_store
    out = tmp_path / "out" / "bundle"
    r = subprocess.run([sys.executable, "-c", KILLED, str(data), str(out)], cwd=Path(__file__).resolve().parents[2],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == -9, r.stderr
    assert not out.exists()
    leftovers = list(out.parent.iterdir())
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".bundle.partial-")
    assert (leftovers[0] / "images").is_dir() and not (leftovers[0] / "SHA256SUMS").exists()
    with pytest.raises(BundleError, match="not a feedback bundle"):
        verify(leftovers[0])
    export_bundle(data, out, ExportOptions(), "st")  # the next export clears the remains
    assert [p.name for p in out.parent.iterdir()] == ["bundle"] and verify(out).ok


def test_merge_keeps_each_image_once(hand_store, auto_store, tmp_path):
    data, _ = hand_store
    a = export_bundle(data, tmp_path / "a", ExportOptions(kinds=("fp",), replay_share=0), "st-a").path
    b = export_bundle(data, tmp_path / "b", ExportOptions(kinds=("fp", "unsure"), replay_share=0), "st-b").path
    c = export_bundle(auto_store, tmp_path / "c.zip", ExportOptions(kinds=("fn",), zip=True), "st-c").path
    shas = [{p.stem for p in (x / "images").iterdir()} for x in (a, b)]
    with zipfile.ZipFile(c) as z:
        shas.append({Path(n).stem for n in z.namelist() if n.startswith("images/")})
    res = merge_bundles([a, b, c], tmp_path / "merged", "hq")
    m = res.path
    assert verify(m).ok
    merged = {p.stem for p in (m / "images").iterdir()}
    assert merged == shas[0] | shas[1] | shas[2]
    assert res.counts["duplicate_images"] == len(shas[0] & shas[1]) > 0
    from pycocotools.coco import COCO

    gt = COCO(str(m / "annotations/instances.json"))
    assert len(gt.dataset["images"]) == len(merged)
    assert {i["station"] for i in gt.dataset["images"]} == {"st-a", "st-b", "st-c"}
    man = json.loads((m / "manifest.json").read_text())
    assert man["stations"] == ["st-a", "st-b", "st-c"] and len(man["merged_from"]) == 3
    dec = (m / "decisions.csv").read_text().splitlines()
    assert dec[0].startswith("station,review_id") and any(r.startswith("st-c,") for r in dec[1:])
    assert len(list((m / "labels").iterdir())) == len(merged)
    with pytest.raises(BundleError, match="already exists"):
        merge_bundles([a, b], m, "hq")
    (a / "events.csv").write_text("tampered\n")
    with pytest.raises(BundleError, match="does not verify"):
        merge_bundles([a, b], tmp_path / "m2", "hq")
    assert not (tmp_path / "m2").exists()
    assert not any(p.name.startswith(".m2") for p in tmp_path.iterdir())
    assert os.path.isdir(m)
