"""Fine-tuning from operators' corrections: a real bundle exported after an auto-reviewed headless run on the aged
lamp, a few steps of training, and what comes out (weights, card, lineage) read back through the normal paths."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from app.cli import main
from engine.core.files import sha256_file
from engine.datasets.bundle.formats import read_table
from engine.inference import load_detector, prove
from engine.inference.builtin import BuiltinDetector, builtin_paths, read_card
from engine.inference.finetune import FinetuneConfig, Interrupted, distill_loss, l2sp_loss, rejected_loss
from engine.inference.finetune_card import train_from_bundles
from engine.inference.model import TinyCenterNet
from tests.station_windows import aged_bundle

TINY = FinetuneConfig(steps=3, batch=4, replay_frames=2)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return aged_bundle(tmp_path_factory.mktemp("finetune"))


@pytest.fixture(scope="module")
def tuned(bundle, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("tuned") / "tuned.pt"
    card = train_from_bundles([bundle], out, cfg=TINY, progress=None, command="test")
    return out, card


def _train_split(bundle: Path) -> tuple[dict, list[dict]]:
    return (json.loads((bundle / "annotations/instances_train.json").read_text()),
            read_table((bundle / "decisions.csv").read_bytes()))


def test_the_card_tells_where_the_weights_come_from(bundle, tuned):
    out, card = tuned
    assert card == json.loads(out.with_suffix(".json").read_text())
    assert card["sha256"] == sha256_file(out)
    parent_w, parent_c = builtin_paths()
    parent = read_card(parent_c)
    for k in ("classes", "input", "confidence_threshold", "box_refinement", "output", "embedding"):
        assert card[k] == parent[k], k
    lin = card["lineage"]
    assert lin["parent"]["sha256"] == sha256_file(parent_w) == parent["sha256"]
    assert lin["bundles"][0]["manifest_sha256"] == sha256_file(bundle / "manifest.json")
    assert lin["bundles"][0]["sums_sha256"] == sha256_file(bundle / "SHA256SUMS")
    # Counts per origin agree with the bundle's own train split, read here on its own.
    gt, decisions = _train_split(bundle)
    unsure = {i["id"] for i in gt["images"] if "unsure" in i["kinds"]}
    replay = {i["id"] for i in gt["images"] if i["kinds"] == ["replay"]}
    status = Counter(a["status"] for a in gt["annotations"] if a["image_id"] not in unsure | replay)
    by_origin = lin["boxes_by_origin"]
    assert by_origin["confirmed"] == status["confirmed"] and by_origin["relabelled"] == status["corrected"]
    assert by_origin["missed"] == status["missed"] > 0 and by_origin["undecided"] == status["undecided"]
    shas = {Path(i["file_name"]).stem for i in gt["images"] if i["id"] not in unsure | replay}
    rejects = [r for r in decisions if r["verdict"] == "reject" and r["effective"] == "True" and r["image_sha256"] in shas]
    assert by_origin["rejected"] == len(rejects) > 0
    assert lin["frames"]["corrected"] == len(gt["images"]) - len(unsure) - len(replay)
    assert lin["frames"]["replay_bundle"] == len(replay)
    assert lin["frames"]["replay_bundle"] + lin["frames"]["replay_simulated"] == max(2, len(replay))
    t = card["training"]
    assert t["seed"] == 0 and t["steps_done"] == 3 and t["stopped"] == "all steps done" and t["train_s"] >= 0
    norm = card["input_normalisation"]  # measured on the replay frames: the nominal line's bright end
    assert norm["percentile"] == 99.0 and all(150 < v < 220 for v in norm["reference_rgb"])
    q = card["quality"]
    test_frames = len(json.loads((bundle / "annotations/instances_test.json").read_text())["images"])
    assert q["frames"] == q["parent_on_the_same_frames"]["frames"] == test_frames > 0
    assert 0.0 <= q["f1"] <= 1.0 and set(q["ap50"]) == set(parent["classes"])


def test_the_same_seed_gives_the_same_weights_bit_for_bit(bundle, tuned, tmp_path):
    again = tmp_path / "again.pt"
    train_from_bundles([bundle], again, cfg=TINY, progress=None)
    a, b = (torch.load(p, weights_only=True) for p in (tuned[0], again))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # The files' bytes differ all the same: torch.save stamps each file with a random serialization id.
    other = tmp_path / "other.pt"
    train_from_bundles([bundle], other, cfg=replace(TINY, seed=1), progress=None)
    c = torch.load(other, weights_only=True)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_a_parents_lamp_normalisation_is_kept_and_without_one_it_can_be_left_off(bundle, tuned, tmp_path):
    out, card = tuned
    child = train_from_bundles([bundle], tmp_path / "child.pt", base=out, cfg=replace(TINY, lamp_norm=0.0),
                               progress=None)
    assert child["input_normalisation"] == card["input_normalisation"]  # the parent saw no other frames
    assert child["training"]["lamp_norm"] == 99.0  # as applied, though the setting was 0
    plain = train_from_bundles([bundle], tmp_path / "plain.pt", cfg=replace(TINY, lamp_norm=0.0), progress=None)
    assert "input_normalisation" not in plain and load_detector(str(tmp_path / "plain.pt")).lamp_norm is None
    assert load_detector(str(tmp_path / "child.pt")).lamp_norm is not None


def test_the_lamp_reference_is_the_simulated_nominal_line_and_every_frame_is_normalised_to_it():
    from engine.inference.finetune import Pool, TrainingData
    from engine.inference.finetune_replay import normalise_lamp
    from engine.inference.lamp_norm import bright_level
    from engine.sources.sim import SimSource

    src = SimSource(seed=1001, scenario="nominal", start=60, width=640, height=512)
    src.open()
    nominal = [np.ascontiguousarray(src.read().image[:, :, ::-1]) for _ in range(4)]
    src.close()
    aged = [np.clip(im * np.float32([0.8, 0.7, 0.6]), 0, 255).astype(np.uint8) for im in nominal]
    data = TrainingData(Pool(), Pool(), ("scratch", "dent", "contamination"), [],
                        Counter(replay_bundle=2, replay_simulated=2), {})
    data.corrected.images[:] = [aged[0].copy()]
    data.replay.images[:] = [aged[1].copy(), aged[2].copy(), nominal[2].copy(), nominal[3].copy()]  # bundle, then sim
    norm, where = normalise_lamp(data, 99.0, {})
    assert where == "2 simulated nominal replay frames"
    level = np.median([bright_level(im, 99.0) for im in nominal[2:]], axis=0)
    assert np.allclose(norm.reference, level, rtol=0.01)  # not the bundles' own replay, under the aged lamp
    for im in (*data.corrected.images, *data.replay.images):
        assert np.allclose(bright_level(im, 99.0), norm.reference, rtol=0.05)
    # A parent's reference wins over any measurement.
    kept, where = normalise_lamp(data, 99.0, {"input_normalisation": {"reference_rgb": [150, 150, 150]}})
    assert kept.reference == (150.0, 150.0, 150.0) and where == "the parent's card"


def test_a_lamp_percentile_out_of_range_is_refused_before_any_work(bundle, tmp_path):
    from engine.inference.finetune import FinetuneError

    for bad in (20.0, 150.0, -1.0):
        with pytest.raises(FinetuneError, match="must be 0 .off. or 50-100"):
            train_from_bundles([bundle], tmp_path / "m.pt", cfg=replace(TINY, lamp_norm=bad), progress=None)
    assert not (tmp_path / "m.pt").exists()


def test_the_weights_load_as_the_builtin_network_and_detect(tuned):
    from engine.sources.sim import SimSource

    out, card = tuned
    det = load_detector(str(out), device="cpu")
    assert isinstance(det, BuiltinDetector) and det.sha256 == card["sha256"] and det.backend == "PyTorch"
    assert det.confidence == card["confidence_threshold"] and det.name.endswith(card["sha256"][:8])
    frame = None
    src = SimSource(seed=3, scenario="nominal")
    src.open()
    try:
        while frame is None or not frame.ground_truth.defects:
            frame = src.read()
    finally:
        src.close()
    assert "classes scratch, dent, contamination" in prove(det, frame)
    assert det.detect([frame])[0].boxes  # three small steps from the built-in weights still find defects


def test_a_rejected_box_pushes_the_heat_map_down_only_where_it_was():
    logits = torch.zeros(1, 3, 8, 8)
    target = torch.zeros(1, 3, 8, 8)
    reject = torch.zeros(1, 3, 8, 8)
    assert rejected_loss(logits, target, reject) == 0
    reject[0, 1, 2:4, 2:4] = 1
    logits.requires_grad_(True)
    rejected_loss(logits, target, reject).backward()
    g = logits.grad[0]
    assert (g[1, 2:4, 2:4] > 0).all()  # descending lowers the logits there
    g[1, 2:4, 2:4] = 0
    assert not g.any()


def test_the_parent_terms_are_zero_when_the_student_is_the_parent_and_pull_back_towards_it():
    torch.manual_seed(0)
    parent = TinyCenterNet(3).eval()
    student = TinyCenterNet(3).eval()
    student.load_state_dict(parent.state_dict())
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        ph, pb, _ = parent(x)
    sh, sb, _ = student(x)
    assert distill_loss(sh, sb, ph, pb) == 0
    start = {n: p.detach().clone() for n, p in parent.named_parameters()}
    assert l2sp_loss(student, start) == 0
    with torch.no_grad():
        student.heat.bias.add_(0.5)
        student.box.bias.add_(0.5)
    sh, sb, _ = student(x)
    d = distill_loss(sh, sb, ph, pb)
    assert d > 0 and l2sp_loss(student, start) > 0
    d.backward()
    assert (student.heat.bias.grad > 0).all()  # descending lowers the raised heat map towards the parent's
    assert distill_loss(sh[:0], sb[:0], ph[:0], pb[:0]) == 0  # a batch without replay crops adds nothing


def test_weighting_the_parents_detections_makes_a_lost_detection_cost_more_than_a_speck_on_the_plate():
    box = torch.zeros(1, 4, 4, 4)
    parent = torch.full((1, 3, 4, 4), -6.0)  # the parent sees an empty plate ...
    parent[0, 2, 1, 1] = 3.0  # ... and one confident defect
    lost = parent.clone()
    lost[0, 2, 1, 1] = -6.0  # the student misses the defect
    speck = parent.clone()
    speck[0, 0, 3, 3] = 0.0  # or calls a speck of plate half a scratch
    assert distill_loss(parent, box, parent, box, fg=10.0) == 0
    plain = (float(distill_loss(lost, box, parent, box)), float(distill_loss(speck, box, parent, box)))
    weighted = (float(distill_loss(lost, box, parent, box, fg=10.0)),
                float(distill_loss(speck, box, parent, box, fg=10.0)))
    assert weighted[0] / weighted[1] > 5 * plain[0] / plain[1]


def test_ctrl_c_writes_nothing_and_the_time_cap_stops_cleanly(bundle, tmp_path):
    out = tmp_path / "m.pt"

    def stop(step: int, loss: float) -> None:
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted, match="nothing was written"):
        train_from_bundles([bundle], out, cfg=TINY, progress=None, on_step=stop)
    assert list(tmp_path.iterdir()) == []
    card = train_from_bundles([bundle], out, cfg=replace(TINY, steps=50, minutes=1e-6), progress=None)
    assert card["training"]["steps_done"] == 1 and "cap" in card["training"]["stopped"] and out.is_file()


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_user_errors_are_one_sentence_and_exit_2(bundle, tmp_path, capsys):
    data = ["--data-dir", str(tmp_path / "data")]
    out = str(tmp_path / "m.pt")
    assert main([*data, "model", "train", "--bundle", str(tmp_path / "nope"), "--out", out]) == 2
    assert "does not exist" in _err(capsys)
    no_split = tmp_path / "old"
    shutil.copytree(bundle, no_split)
    (no_split / "annotations/instances_train.json").unlink()
    assert main([*data, "model", "train", "--bundle", str(no_split), "--out", out]) == 2
    assert "has no train split" in _err(capsys)
    unsure = tmp_path / "unsure"
    shutil.copytree(bundle, unsure)
    p = unsure / "annotations/instances_train.json"
    gt = json.loads(p.read_text())
    for i in gt["images"]:
        i["kinds"] = ["unsure"]
    p.write_text(json.dumps(gt))
    assert main([*data, "model", "train", "--bundle", str(unsure), "--out", out]) == 2
    assert "no corrected frames" in _err(capsys)
    onnx = builtin_paths()[0].with_suffix(".onnx")
    assert main([*data, "model", "train", "--bundle", str(bundle), "--base", str(onnx), "--out", out]) == 2
    assert "not a weights file of the built-in network" in _err(capsys)
    lone = tmp_path / "lone.pt"
    torch.save({"w": torch.zeros(2)}, lone)
    lone.with_suffix(".json").write_text(json.dumps({**read_card(builtin_paths()[1]), "sha256": sha256_file(lone)}))
    assert main([*data, "model", "train", "--bundle", str(bundle), "--base", str(lone), "--out", out]) == 2
    assert "does not fit the built-in network" in _err(capsys)
    assert main([*data, "model", "train", "--bundle", str(bundle), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "must end in .pt" in _err(capsys)
    assert not (tmp_path / "m.pt").exists()


def test_the_command_writes_a_model_that_info_eval_and_run_accept(bundle, tuned, tmp_path, capsys):
    data = ["--data-dir", str(tmp_path / "data")]
    out = tmp_path / "m.pt"
    assert main([*data, "model", "train", "--bundle", str(bundle), "--base", str(tuned[0]), "--out", str(out),
                 "--steps", "2", "--replay-frames", "0", "--seed", "3"]) == 0
    io = capsys.readouterr()
    assert "step 2/2" in io.err and "about" in io.err and f"wrote {out}" in io.out
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["lineage"]["parent"]["sha256"] == tuned[1]["sha256"]  # a fine-tuned model is a base like any other
    assert card["training"]["seed"] == 3 and card["lineage"]["frames"]["replay_simulated"] == 0
    assert main(["model", "info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["sha256"] == sha256_file(out) and info["lineage"]["bundles"][0]["path"] == str(bundle)
    sim = "sim://?seed=11&scenario=lighting-aging&width=320&height=256&start=1440"
    assert main(["eval", "--model", str(out), "--source", sim, "--frames", "2", "--json", "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["model"].endswith(card["sha256"][:8])
    records = tmp_path / "r.jsonl"
    assert main([*data, "run", "--headless", "--model", str(out), "--source", sim, "--frames", "2",
                 "--jsonl", str(records)]) == 0
    frames = [r for r in map(json.loads, records.read_text().splitlines()) if r.get("type") == "frame"]
    assert len(frames) == 2 and all(f["detector"]["name"].endswith(card["sha256"][:8]) for f in frames)


def _tiny_data(replay_frames: int = 2):
    from collections import Counter

    import numpy as np

    from engine.inference.finetune import Pool, TrainingData
    from engine.inference.model import INPUT_H, INPUT_W, STRIDE

    rng = np.random.default_rng(0)
    corrected, replay = Pool(), Pool()
    for pool, n in ((corrected, 2), (replay, replay_frames)):
        for _ in range(n):
            img = rng.integers(60, 200, (INPUT_H, INPUT_W, 3), dtype=np.uint8)
            heat = np.zeros((3, INPUT_H // STRIDE, INPUT_W // STRIDE), np.float32)
            pool.add(img, heat, np.zeros((0, 7), np.float32))
    return TrainingData(corrected, replay, ("scratch", "dent", "contamination"), [], Counter(), {})


def test_replay_crops_under_another_lamp_keep_the_crop_as_it_was_for_the_parent():
    import numpy as np

    from engine.inference.finetune import make_batch

    data = _tiny_data()
    cfg = replace(FinetuneConfig(), batch=8, crop=64, replay_share=1.0, replay_lamp_share=0.0)
    x, *_, is_replay, parent_x = make_batch(data, np.random.default_rng(1), cfg)
    assert bool(is_replay.all()) and torch.equal(parent_x, x)  # no lamp change: the parent sees what the student sees
    x, *_, is_replay, parent_x = make_batch(data, np.random.default_rng(1), replace(cfg, replay_lamp_share=1.0))
    assert parent_x.shape == x.shape
    assert all(not torch.equal(parent_x[i], x[i]) for i in range(len(x)))  # every crop under another lamp
    assert float(parent_x.min()) >= 60 / 255 - 1e-6  # and the parent's copies are the untouched pixels
    cfg = replace(cfg, replay_share=0.0)  # no replay crops: nothing for the parent
    x, *_, is_replay, parent_x = make_batch(data, np.random.default_rng(1), cfg)
    assert not bool(is_replay.any()) and parent_x.shape[0] == 0


def test_mixing_with_the_parent_moves_each_weight_that_share_of_the_way_back():
    from engine.inference.finetune import mix_with_parent

    parent = {"w": torch.zeros(3), "n": torch.tensor(5)}
    tuned = {"w": torch.tensor([1.0, -2.0, 4.0]), "n": torch.tensor(9)}
    assert mix_with_parent(tuned, parent, 0.0) is tuned
    mixed = mix_with_parent(tuned, parent, 0.25)
    assert torch.allclose(mixed["w"], torch.tensor([0.75, -1.5, 3.0])) and int(mixed["n"]) == 9
    assert torch.equal(mix_with_parent(tuned, parent, 1.0)["w"], parent["w"])


def test_a_zero_rate_for_the_late_layers_trains_only_the_first_stages():
    from engine.inference.finetune import EARLY_LAYERS, finetune
    from engine.inference.model import TinyCenterNet

    torch.manual_seed(0)
    state = {k: v.clone() for k, v in TinyCenterNet(3).state_dict().items()}
    cfg = replace(FinetuneConfig(), steps=2, batch=2, crop=64, threads=1, distill_weight=0.0, late_lr_scale=0.0,
                  parent_share=0.0)
    out, _ = finetune(state, _tiny_data(), cfg, progress=None)
    params = dict(TinyCenterNet(3).named_parameters())
    moved = {n.split(".")[0] for n in params if not torch.equal(out[n], state[n])}
    assert moved and moved <= set(EARLY_LAYERS)


def _replay_with_defects(n: int = 4):
    import numpy as np

    from engine.inference.finetune import Pool, TrainingData
    from engine.inference.model import INPUT_H, INPUT_W, STRIDE

    rng = np.random.default_rng(0)
    corrected, replay = Pool(), Pool()
    gh, gw = INPUT_H // STRIDE, INPUT_W // STRIDE
    for pool, frames in ((corrected, 1), (replay, n)):
        for f in range(frames):
            img = rng.integers(60, 200, (INPUT_H, INPUT_W, 3), dtype=np.uint8)
            heat = np.zeros((3, gh, gw), np.float32)
            ci, cj, cls = 10 + 7 * f, 20 + 11 * f, f % 3
            heat[cls, ci, cj] = 1.0
            pool.add(img, heat, np.array([[cls, ci, cj, 0.5, 0.5, 1.0, 1.0]], np.float32))
    return TrainingData(corrected, replay, ("scratch", "dent", "contamination"), [], Counter(), {})


def test_prioritised_replay_puts_the_crops_around_the_defect_the_student_has_forgotten():
    import numpy as np

    from engine.inference.finetune import ReplayFocus, make_batch

    data = _replay_with_defects(4)
    focus = ReplayFocus.of(data.replay, 1.0)
    assert focus.where.tolist() == [[0, 0], [1, 0], [2, 0], [3, 0]] and focus.priority.tolist() == [1.0] * 4
    focus.priority[:] = [0.0, 0.0, 0.9, 0.0]  # the student agrees with the parent everywhere but on defect 2
    cfg = replace(FinetuneConfig(), batch=32, crop=64, replay_share=1.0, object_crop_share=1.0, replay_lamp_share=0.0)
    _, heat, *_ = make_batch(data, np.random.default_rng(3), cfg, focus)
    assert len(focus.picks) == 32  # every replay crop is around a defect, and each pick is noted
    assert sum(k == 2 for _, k, *_ in focus.picks) >= 28  # 0.9 against the floor's 0.02 for each other one
    for row, k, cls, i, j in focus.picks:
        assert cls == k % 3 and float(heat[row, cls, i, j]) == 1.0  # the noted cell is the defect's centre in the crop


def test_prioritised_replay_records_how_far_the_student_is_from_the_parent_at_each_picked_defect():
    import numpy as np

    from engine.inference.finetune import ReplayFocus, make_batch
    from engine.inference.model import STRIDE

    data = _replay_with_defects(3)
    focus = ReplayFocus.of(data.replay, 1.0)
    cfg = replace(FinetuneConfig(), batch=8, crop=64, replay_share=0.5, object_crop_share=1.0, replay_lamp_share=0.0)
    *_, is_replay, _ = make_batch(data, np.random.default_rng(0), cfg, focus)
    assert 0 < int(is_replay.sum()) < 8  # replay and corrected crops mixed: replay rows are not batch rows
    picks = list(focus.picks)
    cs = 64 // STRIDE
    # every cell of the student's and the parent's maps different, so a wrong row, class or cell shows
    student = torch.logit(torch.linspace(0.01, 0.49, 8 * 3 * cs * cs)).reshape(8, 3, cs, cs)
    parent = torch.logit(torch.linspace(0.51, 0.99, 8 * 3 * cs * cs)).reshape(8, 3, cs, cs)[is_replay]
    focus.update(student, parent, is_replay)
    assert not focus.picks  # consumed
    replay_row = {b: r for r, b in enumerate(np.flatnonzero(is_replay.numpy()))}
    expected = {k: float(torch.sigmoid(parent[replay_row[b], c, i, j]) - torch.sigmoid(student[b, c, i, j]))
                for b, k, c, i, j in picks}
    for k in range(3):
        assert focus.priority[k] == (pytest.approx(expected[k], abs=1e-6) if k in expected else 1.0)


def test_fine_tuning_with_prioritised_replay_trains_and_is_reproducible_from_its_seed():
    from engine.inference.finetune import finetune
    from engine.inference.model import TinyCenterNet

    torch.manual_seed(0)
    state = {k: v.clone() for k, v in TinyCenterNet(3).state_dict().items()}
    cfg = replace(FinetuneConfig(), steps=3, batch=4, crop=64, threads=1, replay_focus=1.0, parent_share=0.0)
    a, _ = finetune(state, _replay_with_defects(), cfg, progress=None)
    b, _ = finetune(state, _replay_with_defects(), cfg, progress=None)
    off, _ = finetune(state, _replay_with_defects(), replace(cfg, replay_focus=0.0), progress=None)
    assert any(not torch.equal(a[k], state[k]) for k in state)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], off[k]) for k in a)  # the focus took other crops than no focus


def test_replay_crops_can_be_shown_under_the_corrected_frames_own_lamp():
    import numpy as np

    from engine.inference.finetune import lamp_ratio, make_batch

    data = _tiny_data(replay_frames=3)
    for i, im in enumerate(data.corrected.images):  # the corrected frames under a dimmer, warmer lamp
        data.corrected.images[i] = (im * np.array([0.8, 0.7, 0.6])).astype(np.uint8)
    data.lamp = lamp_ratio(data.corrected, data.replay)
    assert np.allclose(data.lamp, [0.8, 0.7, 0.6], atol=0.02)
    cfg = replace(FinetuneConfig(), batch=8, crop=64, replay_share=1.0, replay_lamp_share=1.0,
                  replay_matched_share=1.0)
    x, *_, parent_x = make_batch(data, np.random.default_rng(2), cfg)
    gains = (x.sum(dim=(2, 3)) / parent_x.sum(dim=(2, 3))).numpy()  # per crop and channel
    assert np.all(np.abs(gains / data.lamp - 1) <= 0.05 + 1e-3)  # that lamp, within the 5 % jitter
