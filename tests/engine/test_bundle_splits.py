"""Bundles a trainer reads as exported: train, val and test split by time in blocks that never straddle two
splits, a COCO file and a YOLO list file per split, a data.yaml that Ultralytics' own path rule resolves to the
bundle's images from any working directory, and no box twice in one frame."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from engine.core.frame import Box
from engine.datasets.bundle import ExportOptions, export_bundle, merge_bundles, verify
from engine.datasets.bundle.selection import Label
from engine.datasets.bundle.splits import SPLITS, SplitRule, assign, blocks, dedupe
from engine.review.feedback import Decision, FeedbackStore
from tests.engine.test_bundle import T0, _frame, _hand_store


# ------------------------------------------------------------------ the split rule on its own

def test_blocks_go_whole_to_one_split_in_time_order():
    rng = np.random.default_rng(3)
    times: list[float] = []
    t = T0
    for _ in range(40):  # 40 bursts of 1-12 frames 1/30 s apart, bursts 15-300 s apart
        for _ in range(int(rng.integers(1, 13))):
            times.append(t)
            t += 1 / 30
        t += float(rng.uniform(15, 300))
    shuffled = list(rng.permutation(times))
    rule = SplitRule(gap_s=10.0)
    split = assign(shuffled, rule)
    by = {s: [t for t, x in zip(shuffled, split) if x == s] for s in SPLITS}
    assert all(by[s] for s in SPLITS)
    # Every frame of one split lies at least the gap away from every frame of another, oldest to train.
    assert max(by["train"]) + 10.0 <= min(by["val"]) and max(by["val"]) + 10.0 <= min(by["test"])
    for blk in blocks(shuffled, 10.0):
        assert len({split[i] for i in blk}) == 1
    n = len(times)
    assert abs(len(by["train"]) / n - 0.8) < 0.06 and abs(len(by["test"]) / n - 0.1) < 0.06


def test_too_few_blocks_fill_train_first_then_val():
    one = [T0 + k / 30 for k in range(50)]
    assert set(assign(one)) == {"train"}
    two = one + [T0 + 100 + k / 30 for k in range(5)]
    assert assign(two) == ["train"] * 50 + ["val"] * 5
    three = two + [T0 + 200.0]
    assert assign(three)[-1] == "test" and assign(three)[0] == "train"


def test_a_split_rule_out_of_range_is_one_sentence():
    from engine.core.errors import StationError

    with pytest.raises(StationError, match="adding up to 1"):
        SplitRule(shares=(0.8, 0.3, 0.1))
    with pytest.raises(StationError, match="positive"):
        SplitRule(gap_s=0)


def test_the_same_box_twice_is_kept_once_the_operators_own_first():
    labels = [Label((10, 10, 50, 30), "dent", "undecided"), Label((10.5, 10, 50, 30.5), "dent", "missed"),
              Label((10, 10, 50, 30), "scratch", "confirmed"), Label((60, 10, 90, 30), "dent", "confirmed"),
              Label((12, 12, 48, 28), "dent", "confirmed")]  # IoU 0.72 with the first: a different box
    kept, removed = dedupe(labels)
    assert removed == 1
    assert [(lab.class_name, lab.status) for lab in kept] == [("dent", "missed"), ("scratch", "confirmed"),
                                                               ("dent", "confirmed"), ("dent", "confirmed")]


# ------------------------------------------------------------------ a bundle as exported

def _spaced_store(data: Path, bursts: int = 12) -> None:
    """Bursts of three reviewed frames 1/30 s apart (one part passing), bursts a minute apart."""
    s = FeedbackStore(data)
    seq = 0
    for b in range(bursts):
        for k in range(3):
            seq += 1
            f = _frame(seq, (Box(2, 2, 10, 10, 0, "scratch", 0.9),), T0 + 60 * b + k / 30)
            s.submit(Decision(f, "ann", "confirm" if seq % 4 else "reject", detection=0)).result(10)
    s.close()


@pytest.fixture
def spaced_bundle(data_dir, tmp_path):
    _spaced_store(data_dir)
    return export_bundle(data_dir, tmp_path / "bundle", ExportOptions(replay_share=0.0), "st")


def test_each_split_has_its_coco_file_and_list_file_and_the_manifest_says_how(spaced_bundle):
    from pycocotools.coco import COCO

    b = spaced_bundle.path
    m = json.loads((b / "manifest.json").read_text())
    sp = m["splits"]
    assert sp["gap_s"] == 10.0 and "blocks" in sp["rule"] and sp["blocks"] == 12
    assert (sp["train"]["images"], sp["val"]["images"], sp["test"]["images"]) == (30, 3, 3)
    assert sp["train"]["last_frame_utc"] < sp["val"]["first_frame_utc"] <= sp["val"]["last_frame_utc"] \
        < sp["test"]["first_frame_utc"]
    everything = COCO(str(b / "annotations/instances.json"))
    seen: dict[str, set[str]] = {}
    for s in SPLITS:
        assert m["files"][f"coco_ground_truth_{s}"] == f"annotations/instances_{s}.json"
        gt = COCO(str(b / f"annotations/instances_{s}.json"))
        assert len(gt.dataset["images"]) == sp[s]["images"]
        assert {i["split"] for i in gt.dataset["images"]} == {s}
        for i in gt.dataset["images"]:  # the same ids, boxes and file names as in the file of every frame
            assert everything.imgs[i["id"]]["file_name"] == i["file_name"]
            assert len(gt.getAnnIds(imgIds=[i["id"]])) == len(everything.getAnnIds(imgIds=[i["id"]]))
        preds = json.loads((b / f"annotations/predictions_{s}.json").read_text())
        if preds:
            gt.loadRes(preds)
        lines = (b / f"{s}.txt").read_text().splitlines()
        assert all(x.startswith("./images/") and (b / x).is_file() for x in lines)
        seen[s] = {Path(x).stem for x in lines}
        assert seen[s] == {Path(i["file_name"]).stem for i in gt.dataset["images"]}
    assert not (seen["train"] & seen["val"]) and not (seen["val"] & seen["test"]) and not (seen["train"] & seen["test"])
    assert set().union(*seen.values()) == {Path(i["file_name"]).stem for i in everything.dataset["images"]}
    times = {i["id"]: i["timestamp"] for i in everything.dataset["images"]}
    split_of = {i["id"]: i["split"] for i in everything.dataset["images"]}
    for a in times:
        for c in times:
            if split_of[a] != split_of[c]:
                assert abs(times[a] - times[c]) >= 10.0
    assert verify(b).ok


# Ultralytics' own rule, re-implemented here so the test needs no Ultralytics. From ultralytics/data/utils.py
# (check_det_dataset) at commit 00bfe3459a05b6c36026fb7689fc73c818da1cd1:
#     path = Path(extract_dir or data.get("path") or Path(data.get("yaml_file", "")).parent)  # dataset root
#     if not path.exists() and not path.is_absolute():
#         path = (DATASETS_DIR / path).resolve()  # path relative to DATASETS_DIR
#     ... for k in "train", "val", "test": x = (path / data[k]).resolve()
# ``yaml_file`` is the name the yaml was given by (check_file returns an existing local name as it is). A list
# file is read by get_img_files (ultralytics/data/base.py): a line starting "./" is made relative to the list
# file's folder; labels are found by img2label_paths (utils.py): the last "/images/" becomes "/labels/", the
# suffix ".txt".
def _ultralytics_resolve(yaml_name: str, datasets_dir: Path) -> dict[str, list[str]]:
    data = yaml.safe_load(Path(yaml_name).read_text())
    data["yaml_file"] = yaml_name
    path = Path(data.get("path") or Path(data.get("yaml_file", "")).parent)
    if not path.exists() and not path.is_absolute():
        path = (datasets_dir / path).resolve()
    out = {}
    for k in ("train", "val", "test"):
        if not data.get(k):
            continue
        x = (path / data[k]).resolve()
        parent = str(x.parent) + os.sep
        lines = x.read_text().strip().splitlines() if x.is_file() else []
        out[k] = [ln.replace("./", parent) if ln.startswith("./") else ln for ln in lines]
    return out


def _label_of(img: str) -> str:
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    return sb.join(img.rsplit(sa, 1)).rsplit(".", 1)[0] + ".txt"


@pytest.mark.parametrize("how", ["absolute", "relative from elsewhere", "from inside", "after a move"])
def test_data_yaml_resolves_to_the_bundles_images_from_any_working_directory(spaced_bundle, tmp_path, how,
                                                                             monkeypatch):
    b = spaced_bundle.path
    if how == "after a move":
        b = Path(shutil.move(str(b), str(tmp_path / "elsewhere" / "copied")))
    elsewhere = tmp_path / "work" / "deep"
    elsewhere.mkdir(parents=True)
    if how == "from inside":
        monkeypatch.chdir(b)
        name = "data.yaml"
    elif how == "relative from elsewhere":
        monkeypatch.chdir(elsewhere)
        name = os.path.relpath(b / "data.yaml", elsewhere)
    else:
        monkeypatch.chdir(elsewhere)
        name = str(b / "data.yaml")
    got = _ultralytics_resolve(name, tmp_path / "no-datasets-here")
    m = json.loads((b / "manifest.json").read_text())["splits"]
    assert set(got) == {"train", "val", "test"}
    for k, imgs in got.items():
        assert len(imgs) == m[k]["images"]
        for img in imgs:
            assert Path(img).is_file() and Path(img).parent == (b / "images").resolve()
            assert Path(_label_of(img)).is_file()
    data = yaml.safe_load((b / "data.yaml").read_text())
    assert "path" not in data and data["names"] == {0: "scratch", 1: "dent", 2: "contamination"}


def test_too_few_blocks_still_give_a_val_entry(hand_store_few, tmp_path):
    res = export_bundle(hand_store_few, tmp_path / "b", ExportOptions(replay_share=0.0), "st")
    data = yaml.safe_load((res.path / "data.yaml").read_text())
    m = json.loads((res.path / "manifest.json").read_text())["splits"]
    assert m["train"]["images"] == res.counts["images"] and m["note"]
    assert data["train"] == data["val"] == "train.txt" and "test" not in data


@pytest.fixture
def hand_store_few(data_dir):
    s = FeedbackStore(data_dir)
    for k in range(4):
        f = _frame(k + 1, (Box(2, 2, 10, 10, 0, "scratch", 0.9),), T0 + k)
        s.submit(Decision(f, "ann", "confirm", detection=0)).result(10)
    s.close()
    return data_dir


def test_a_box_drawn_twice_is_written_once(data_dir, tmp_path):
    s = FeedbackStore(data_dir)
    f = _frame(1, (Box(20, 20, 40, 30, 1, "dent", 0.8),), T0)
    for d in (Decision(f, "ann", "confirm", detection=0),
              Decision(f, "ann", "missed", new_class="dent", new_box=(20, 20, 40, 30.5)),
              Decision(f, "ann", "missed", new_class="dent", new_box=(50, 40, 60, 50)),
              Decision(f, "ann", "missed", new_class="dent", new_box=(50, 40, 60, 50))):
        s.submit(d).result(10)
    s.close()
    res = export_bundle(data_dir, tmp_path / "b", ExportOptions(replay_share=0.0), "st")
    gt = json.loads((res.path / "annotations/instances.json").read_text())
    assert sorted(a["bbox"] for a in gt["annotations"]) == [[20.0, 20.0, 20.0, 10.5], [50.0, 40.0, 10.0, 10.0]]
    assert res.counts["duplicate_boxes_removed"] == 2
    label = next((res.path / "labels").iterdir()).read_text().splitlines()
    assert len(label) == 2
    m = json.loads((res.path / "manifest.json").read_text())
    assert "IoU >= 0.9" in m["policy"]["duplicate_boxes"]


def test_a_merge_splits_the_merged_frames_again(data_dir, tmp_path):
    _hand_store(data_dir)
    a = export_bundle(data_dir, tmp_path / "a", ExportOptions(until=T0 + 3600, replay_share=0), "st-a").path
    b = export_bundle(data_dir, tmp_path / "b", ExportOptions(since=T0 + 3600, replay_share=0), "st-b").path
    res = merge_bundles([a, b], tmp_path / "m", "hq")
    m = json.loads((res.path / "manifest.json").read_text())
    assert sum(m["splits"][s]["images"] for s in SPLITS) == res.counts["images"]
    assert m["splits"]["test"]["images"] >= 1  # the frame a day later is the newest block
    gt = json.loads((res.path / "annotations/instances_test.json").read_text())
    assert {i["station"] for i in gt["images"]} == {"st-b"}
    assert (res.path / "test.txt").read_text().strip() == f"./images/{gt['images'][0]['file_name']}"
    assert verify(res.path).ok


def test_verify_catches_a_list_file_that_leaves_the_bundle_or_shares_an_image(spaced_bundle, tmp_path):
    import hashlib

    b = Path(shutil.copytree(spaced_bundle.path, tmp_path / "copy"))
    first_train = (b / "train.txt").read_text().splitlines()[0]
    (b / "test.txt").write_text((b / "test.txt").read_text() + first_train + "\n../../etc/passwd\n")
    sums = (b / "SHA256SUMS").read_text().splitlines()
    digest = hashlib.sha256((b / "test.txt").read_bytes()).hexdigest()
    (b / "SHA256SUMS").write_text("".join((f"{digest}  test.txt" if ln.endswith("  test.txt") else ln) + "\n"
                                          for ln in sums))
    problems = verify(b).problems
    assert any("in both the train and the test split" in p for p in problems)
    assert any("'../../etc/passwd', which is not one of the bundle's images" in p for p in problems)
