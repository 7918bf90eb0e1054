"""``eval --dataset``: the built-in model scored on labelled images (a COCO folder made here from simulated
frames, a feedback bundle exported from a reviewed run, the same bundle read as YOLO), classes matched by
name, AP checked against pycocotools' COCOeval on the same predictions; a bad dataset is one sentence."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.cli import main
from engine.datasets.bundle import ExportOptions, export_bundle
from engine.sources import open_source

SIM = "sim://?seed=2&scenario=nominal&width=320&height=256"
# Dataset category ids on purpose not the model's order, and one class the model has never heard of.
CATEGORIES = [{"id": 7, "name": "dent"}, {"id": 3, "name": "scratch"}, {"id": 5, "name": "contamination"},
              {"id": 9, "name": "burr"}]


def _coco_ap50(gt_path: Path, preds: list[dict]) -> dict[int, float]:
    """COCOeval's AP at IoU 0.5 per category id (101-point interpolation), classes with truth only."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = COCO(str(gt_path))
    dt = gt.loadRes(preds)
    ev = COCOeval(gt, dt, "bbox")
    ev.params.iouThrs = np.array([0.5])
    ev.evaluate()
    ev.accumulate()
    out = {}
    for k, cid in enumerate(ev.params.catIds):
        p = ev.eval["precision"][0, :, k, 0, -1]  # IoU 0.5, all recall points, class k, area all, 100 dets
        if len(gt.getAnnIds(catIds=[cid])):
            out[cid] = float(np.mean(p[p > -1])) if (p > -1).any() else 0.0
    return out


@pytest.fixture(scope="module")
def coco_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    (root / "images").mkdir()
    (root / "annotations").mkdir()
    ids = {c["name"]: c["id"] for c in CATEGORIES}
    src = open_source(SIM, realtime=False)
    images, anns = [], []
    src.open()
    try:
        while len(images) < 60:
            f = src.read()
            src.skip(2)
            name = f"frame_{f.sequence:05d}.png"
            cv2.imwrite(str(root / "images" / name), f.as_order("BGR"))
            images.append({"id": 100 + len(images), "file_name": name, "width": f.width, "height": f.height})
            for b in f.ground_truth.boxes:
                anns.append({"id": len(anns) + 1, "image_id": images[-1]["id"], "category_id": ids[b.class_name],
                             "bbox": [b.x0, b.y0, b.x1 - b.x0, b.y1 - b.y0], "area": b.area, "iscrowd": 0})
    finally:
        src.close()
    # Two boxes of a class the model lacks: reported, and counted as missed.
    anns += [{"id": len(anns) + k + 1, "image_id": 100 + k, "category_id": 9, "bbox": [5, 5, 20, 20], "area": 400,
              "iscrowd": 0} for k in range(2)]
    gt = root / "annotations" / "instances_val.json"
    gt.write_text(json.dumps({"images": images, "annotations": anns, "categories": CATEGORIES}))
    return gt


def _eval_json(capsys, *args) -> dict:
    rc = main(["eval", "--device", "cpu", "--json", *args])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return json.loads(out.strip().splitlines()[-1])  # pycocotools may have printed before


def test_ap_on_a_coco_folder_agrees_with_cocoeval(coco_folder, tmp_path, capsys):
    preds_path = tmp_path / "preds.json"
    r = _eval_json(capsys, "--dataset", str(coco_folder), "--save-predictions", str(preds_path))
    assert r["kind"] == "coco" and r["frames"] == 60 and r["classes"] == ["dent", "scratch", "contamination", "burr"]
    assert r["dataset_classes_not_in_model"] == {"burr": 2}
    assert r["ap50"]["burr"] == 0.0 and r["truth_boxes"] > 20
    preds = json.loads(preds_path.read_text())
    assert {p["category_id"] for p in preds} <= {7, 3, 5}  # the dataset's own ids, matched by name
    ref = _coco_ap50(coco_folder, preds)
    by_name = {c["id"]: c["name"] for c in CATEGORIES}
    for cid, ap in ref.items():
        assert r["ap50"][by_name[cid]] == pytest.approx(ap, abs=0.01), by_name[cid]
    assert r["map50"] == pytest.approx(float(np.mean(list(ref.values()))), abs=0.01)
    assert r["ap50"]["scratch"] > 0.3 and 0 < r["precision"] <= 1 and 0 < r["recall"] <= 1
    shared = [r["ap50"][c] for c in ("dent", "scratch", "contamination") if r["ap50"][c] is not None]
    assert r["map50_shared_classes"] == pytest.approx(np.mean(shared), abs=1e-3)
    # The text report names the class the model lacks.
    assert main(["eval", "--device", "cpu", "--dataset", str(coco_folder)]) == 0
    assert "no class 'burr'" in capsys.readouterr().out


@pytest.fixture(scope="module")
def reviewed_bundle(tmp_path_factory):
    """A bundle exported from a headless run reviewed by a simulated operator; frames 20 s of line time apart, so
    that each is its own block of time and every split has frames."""
    root = tmp_path_factory.mktemp("reviewed")
    data = root / "data"
    rc = main(["--data-dir", str(data), "run", "--headless", "--source", SIM + "&dt=20", "--frames", "90",
               "--auto-review", "oracle:0.9,operator=ann"])
    assert rc == 0
    return export_bundle(data, root / "bundle", ExportOptions(replay_share=0.0), "st").path


def test_a_bundles_test_split_and_its_yolo_twin_agree_with_cocoeval(reviewed_bundle, tmp_path, capsys):
    m = json.loads((reviewed_bundle / "manifest.json").read_text())["splits"]
    assert m["test"]["images"] > 0
    preds_path = tmp_path / "p.json"
    r = _eval_json(capsys, "--dataset", str(reviewed_bundle), "--save-predictions", str(preds_path))
    assert r["kind"] == "bundle" and r["split"] == "test" and r["frames"] == m["test"]["images"]
    ref = _coco_ap50(reviewed_bundle / "annotations/instances_test.json", json.loads(preds_path.read_text()))
    names = {c["id"]: c["name"] for c in json.loads(
        (reviewed_bundle / "annotations/instances_test.json").read_text())["categories"]}
    assert ref
    for cid, ap in ref.items():
        assert r["ap50"][names[cid]] == pytest.approx(ap, abs=0.01)
    everything = _eval_json(capsys, "--dataset", str(reviewed_bundle), "--split", "all")
    assert everything["frames"] == sum(m[s]["images"] for s in ("train", "val", "test"))
    # The same split read through data.yaml and the YOLO labels gives the same figures.
    yolo = _eval_json(capsys, "--dataset", str(reviewed_bundle / "data.yaml"), "--split", "test")
    assert yolo["kind"] == "yolo" and yolo["frames"] == r["frames"] and yolo["truth_boxes"] == r["truth_boxes"]
    for k in ("precision", "recall", "map50"):
        assert yolo[k] == pytest.approx(r[k], abs=0.01)


@pytest.mark.parametrize("make, expect", [
    (lambda p: p / "nowhere.json", "does not exist"),
    (lambda p: (p / "bad.json").write_text("{not json") and p / "bad.json", "not valid JSON"),
    (lambda p: (p / "list.json").write_text("[1, 2]") and p / "list.json", "not a COCO detection file"),
    (lambda p: (p / "gone.json").write_text(json.dumps({"images": [{"id": 1, "file_name": "x.png"}],
                                                        "annotations": [], "categories": []})) and p / "gone.json",
     "not there"),
    (lambda p: (p / "data.yaml").write_text("train: nothing\nval: nothing\nnames: [a]\n") and p, "neither a folder"),
    (lambda p: (p / "notes.txt").write_text("hello") and p / "notes.txt", "neither a COCO file"),
])
def test_a_missing_or_invalid_dataset_is_one_sentence(make, expect, tmp_path, capsys):
    path = make(tmp_path)
    rc = main(["eval", "--device", "cpu", "--dataset", str(path)])
    err = capsys.readouterr().err
    assert rc == 2 and expect in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_bundle_without_splits_says_to_use_all(reviewed_bundle, tmp_path, capsys):
    import shutil

    old = Path(shutil.copytree(reviewed_bundle, tmp_path / "old"))
    for s in ("train", "val", "test"):
        (old / f"annotations/instances_{s}.json").unlink()
    rc = main(["eval", "--device", "cpu", "--dataset", str(old)])
    err = capsys.readouterr().err
    assert rc == 2 and "--split all" in err and err.count("\n") == 1


def test_a_yolo_folder_with_a_relative_path_and_split_folders(tmp_path, capsys):
    """The common hand-made layout: images/val and labels/val folders, a data.yaml with a relative path."""
    root = tmp_path / "ds"
    (root / "images" / "val").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    src = open_source(SIM, realtime=False)
    src.open()
    names = ["scratch", "dent", "contamination", "burr"]
    try:
        k = 0
        while k < 6:
            f = src.read()
            src.skip(4)
            if not f.ground_truth.boxes:
                continue
            k += 1
            cv2.imwrite(str(root / "images" / "val" / f"{k}.png"), f.as_order("BGR"))
            lines = [f"{names.index(b.class_name)} {(b.x0 + b.x1) / 2 / f.width:.6f} {(b.y0 + b.y1) / 2 / f.height:.6f} "
                     f"{(b.x1 - b.x0) / f.width:.6f} {(b.y1 - b.y0) / f.height:.6f}" for b in f.ground_truth.boxes]
            (root / "labels" / "val" / f"{k}.txt").write_text("\n".join(lines))
    finally:
        src.close()
    (root / "data.yaml").write_text("path: ds-root-elsewhere\ntrain: images/val\nval: images/val\n"
                                    "names: [scratch, dent, contamination, burr]\n")
    rc = main(["eval", "--device", "cpu", "--json", "--dataset", str(root)])
    out, err = capsys.readouterr()
    assert rc == 2 and "neither a folder nor a list file" in err  # a path that leads nowhere is named
    (root / "data.yaml").write_text("path: .\ntrain: images/val\nval: images/val\nnames: [scratch, dent, contamination]\n")
    r = _eval_json(capsys, "--dataset", str(root))
    assert r["kind"] == "yolo" and r["split"] == "val" and r["frames"] == 6 and r["truth_boxes"] > 0
