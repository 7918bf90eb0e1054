import json

import cv2
import numpy as np

from app.cli import main


def test_stats_of_image_files(tmp_path, capsys):
    img = np.zeros((64, 96, 3), np.uint8)
    img[:, :48] = (10, 20, 30)
    img[:, 48:] = (200, 210, 220)
    cv2.imwrite(str(tmp_path / "a.png"), img)
    assert main(["stats", str(tmp_path / "a.png"), "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    y = (19596 * img[..., 2].astype(int) + 38470 * img[..., 1].astype(int) + 7470 * img[..., 0].astype(int)
         + 32768) >> 16
    assert rec["mean_luma"] == round(y.mean(), 5)
    assert rec["mean_b"] == 105.0 and rec["gain_r"] == round(125 / 115, 5)
    assert sum(rec["histogram_luma"]) == 64 * 96
    assert main(["stats", str(tmp_path / "missing.png")]) == 2


def test_reference_build_show_and_a_headless_run_against_it(tmp_path, capsys):
    ref = tmp_path / "ref.npz"
    src = "sim://?seed=100&width=320&height=256"
    assert main(["reference", "build", "--source", src, "--frames", "160", "--out", str(ref),
                 "--no-embeddings"]) == 0
    assert ref.is_file() and "written to" in capsys.readouterr().out
    assert main(["reference", "build", "--source", src, "--frames", "160", "--out", str(ref),
                 "--no-embeddings"]) == 2  # never overwrites
    assert main(["reference", "show", str(ref)]) == 0
    assert "focus" in capsys.readouterr().out
    out = tmp_path / "run.jsonl"
    # The run starts 140 frames before the lens change at slot 240: the drift warm-up (10 batches) is over by then.
    assert main(["run", "--headless", "--source", "sim://?seed=5&scenario=lens-change&width=320&height=256"
                 "&start=100", "--frames", "200", "--jsonl", str(out), "--reference", str(ref), "--model", "none",
                 "--data-dir", str(tmp_path / "d")]) == 0
    frames = [json.loads(line) for line in out.read_text().splitlines() if '"type":"frame"' in line]
    assert len(frames) == 200 and "focus" in frames[0]["measurements"]
    assert frames[0]["measurements"]["drift_level"] == "ok"
    alarms = [(f["sequence"], a) for f in frames for a in f["alarms"]]
    assert any(a["name"] == "focus" and a["severity"] == "alarm" and seq < 290 for seq, a in alarms)
    assert main(["run", "--headless", "--frames", "1", "--reference", str(tmp_path / "none.npz")]) == 2
