"""The model, eval and bench detector commands, end to end through ``app.cli.main``."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from app.cli import main

SMALL_SIM = "sim://?seed=11&scenario=lighting-aging&width=320&height=256"


def test_eval_json_on_a_short_sim_run(capsys):
    rc = main(["eval", "--source", SMALL_SIM, "--frames", "6", "--step", "2", "--buckets", "2", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["frames"] == 6 and out["iou"] == 0.5 and out["step"] == 2
    assert {"precision", "recall", "f1", "ap50", "map50", "truth_boxes"} <= set(out)
    assert set(out["ap50"]) == {"scratch", "dent", "contamination"}
    assert [b["frames"] for b in out["buckets"]] == [3, 3]
    assert out["buckets"][0]["t_start_s"] == 0.0 and out["buckets"][1]["t_end_s"] == 10 * 1800.0


def test_eval_table(capsys):
    assert main(["eval", "--source", SMALL_SIM, "--frames", "2", "--confidence", "0.4"]) == 0
    out = capsys.readouterr().out
    assert "prec" in out and "AP scratch" in out and "confidence 0.4" in out


def test_eval_refuses_a_source_without_truth(tmp_path, capsys):
    assert main(["eval", "--source", str(tmp_path), "--frames", "2"]) == 2
    assert "sim://" in capsys.readouterr().err


def test_model_info_of_the_builtin_model(capsys):
    assert main(["model", "info", "--json"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["sha256_matches_file"] is True and card["classes"] == ["scratch", "dent", "contamination"]
    assert main(["model", "info"]) == 0
    assert "confidence_threshold" in capsys.readouterr().out


def test_bad_model_files_are_one_sentence_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "model.pt"
    bad.write_bytes(pickle.dumps({"a": 1}))
    for argv in (["model", "info", str(bad)],
                 ["eval", "--model", str(bad), "--source", SMALL_SIM, "--frames", "1"],
                 ["run", "--headless", "--source", SMALL_SIM, "--frames", "1", "--model", str(bad)],
                 ["bench", "detector", "--frames", "1", "--model", str(bad)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "pickle" in err and "Traceback" not in err


def test_train_builtin_checks_its_output_path(tmp_path, capsys):
    assert main(["model", "train-builtin", "--out", str(tmp_path / "w.txt")]) == 2
    assert "must end in .pt" in capsys.readouterr().err
    assert main(["model", "train-builtin", "--out", str(tmp_path / "no" / "w.pt")]) == 2


def test_run_headless_with_the_builtin_detector(tmp_path, capsys):
    out = tmp_path / "run.jsonl"
    assert main(["run", "--headless", "--source", SMALL_SIM, "--frames", "3", "--jsonl", str(out),
                 "--data-dir", str(tmp_path / "data")]) == 0
    frames = [json.loads(line) for line in out.read_text().splitlines() if '"frame"' in line]
    assert len(frames) == 3 and frames[0]["detector"]["device"] in ("cpu", "cuda:0")
    assert frames[0]["detector"]["name"].startswith("builtin")


def test_bench_detector_runs(capsys):
    assert main(["bench", "detector", "--frames", "3", "--width", "320", "--height", "256"]) == 0
    out = capsys.readouterr().out
    assert "median fps" in out and "30 frames/s" in out  # figures are shown, never asserted


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_eval_on_cuda(capsys):
    assert main(["eval", "--source", SMALL_SIM, "--frames", "2", "--device", "cuda", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["device"] == "cuda:0"


def test_measure_builtin_refuses_weights_without_a_card(tmp_path, capsys):
    w = tmp_path / "mine.pt"
    w.write_bytes(b"not weights")
    assert main(["--data-dir", str(tmp_path / "d"), "model", "measure-builtin", "--weights", str(w)]) == 2
    err = capsys.readouterr().err
    assert "mine.json" in err and "does not exist" in err and "Traceback" not in err


def test_bench_contention_prints_both_wait_policies_idle_and_busy(capsys):
    assert main(["bench", "contention", "--frames", "2", "--width", "320", "--height", "256"]) == 0
    out = capsys.readouterr().out
    table = out[out.index("OpenMP wait policy"):].splitlines()
    assert table[1].startswith("passive (the station's default)") and table[2].startswith("spinning")
    for row in table[1:3]:
        assert len(row.split(")")[-1].split()) == 5  # idle ms, idle fps, busy ms, busy fps, ratio
    assert "with a core taken" in out  # figures are shown, never asserted
