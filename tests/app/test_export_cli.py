"""``inspection-station export`` and ``bundle verify|merge`` through the real command line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.cli import main
from engine.review.feedback import Decision, FeedbackStore, FrameForReview
from engine.core.frame import Box

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def _store(data, shade: int = 0) -> None:
    s = FeedbackStore(data)
    for seq in range(6):
        img = np.full((48, 64, 3), (seq * 11 + shade) % 256, np.uint8)
        fr = FrameForReview(img, "cam:0", seq, T0 + 3600 * seq,
                            (Box(4, 4, 20, 20, 0, "scratch", 0.8), Box(30, 10, 40, 30, 1, "dent", 0.5)),
                            "builtin tiny-centernet-defects 8c6ad59c")
        s.submit(Decision(fr, "ann", "confirm", detection=0)).result(10)
        s.submit(Decision(fr, "ann", "reject" if seq % 2 else "confirm", detection=1)).result(10)
        if seq == 4:
            s.submit(Decision(fr, "ann", "missed", new_class="contamination", new_box=(50, 30, 60, 40))).result(10)
    s.close()


def test_export_verify_and_merge(tmp_path, capsys):
    data = tmp_path / "data"
    _store(data)
    out = tmp_path / "bundle"
    assert main(["--data-dir", str(data), "export", "--out", str(out), "--kinds", "fp,fn",
                 "--since", "2026-01-01T01:00:00Z", "--until", "2026-01-01T05:00", "--replay-share", "0.5"]) == 0
    said = capsys.readouterr().out
    # frames 1 and 3 have a reject, 4 a missed defect; frame 2, confirmed, is the only replay candidate
    assert said.startswith(f"wrote {out}: 4 images (fp 2, fn 1, confirmed 0, unsure 0, replay 1), 7 boxes")
    m = json.loads((out / "manifest.json").read_text())
    assert m["filters"]["since"] == "2026-01-01T01:00:00Z" and m["filters"]["until"] == "2026-01-01T05:00:00Z"
    assert m["filters"]["kinds"] == ["fp", "fn"]
    assert main(["bundle", "verify", str(out)]) == 0
    assert "intact" in capsys.readouterr().out
    (out / "labels" / "extra.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (out / "decisions.csv").write_text("changed\n")
    assert main(["bundle", "verify", str(out)]) == 1
    said = capsys.readouterr().out
    assert "extra: labels/extra.txt" in said and "changed: decisions.csv" in said and "NOT intact, 2 problems" in said

    data2 = tmp_path / "data2"
    _store(data2, shade=100)
    a, b = tmp_path / "a.zip", tmp_path / "b"
    assert main(["--data-dir", str(data), "export", "--out", str(tmp_path / "a"), "--zip"]) == 0
    assert main(["--data-dir", str(data2), "export", "--out", str(b), "--format", "coco"]) == 0
    capsys.readouterr()
    merged = tmp_path / "merged"
    assert main(["bundle", "merge", str(a), str(b), str(b), "--out", str(merged)]) == 0
    said = capsys.readouterr().out
    assert said.startswith(f"wrote {merged}: 12 images from 3 bundles (6 duplicates left out)")
    assert main(["bundle", "verify", str(merged)]) == 0


def test_export_reads_times_as_every_command_does(tmp_path, capsys):
    data = tmp_path / "data"
    _store(data)
    out = tmp_path / "bundle"
    # Seconds since 1970 and a time with an offset, the same period as 01:00Z to 05:00Z.
    assert main(["--data-dir", str(data), "export", "--out", str(out), "--kinds", "fp,fn",
                 "--since", "1767229200", "--until", "2026-01-01T06:00:00+01:00"]) == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["filters"]["since"] == "2026-01-01T01:00:00Z" and m["filters"]["until"] == "2026-01-01T05:00:00Z"
    capsys.readouterr()
    assert main(["--data-dir", str(data), "export", "--out", str(tmp_path / "b"), "--since", "soon"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("inspection-station: error: --since 'soon' is not a time") and len(err.splitlines()) == 1


@pytest.mark.parametrize("args, message", [
    (["--kinds", "unsure"], "nothing to export: no reviewed frames of kind unsure"),
    (["--classes", "bubble"], "unknown class 'bubble'"),
    (["--kinds", "fp,typo"], "unknown kind 'typo'"),
    (["--since", "2026-02-01", "--until", "2026-01-01"], "the end of the period must come after its start"),
])
def test_export_errors_are_one_sentence(tmp_path, capsys, args, message):
    data = tmp_path / "data"
    _store(data)
    assert main(["--data-dir", str(data), "export", "--out", str(tmp_path / "b"), *args]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"inspection-station: error: {err.split('error: ', 1)[1].strip()}"
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b").exists()


def test_an_existing_target_is_refused_and_left_alone(tmp_path, capsys):
    data = tmp_path / "data"
    _store(data)
    target = tmp_path / "b"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    assert main(["--data-dir", str(data), "export", "--out", str(target)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    assert main(["bundle", "verify", str(target)]) == 2
    assert "not a feedback bundle" in capsys.readouterr().err


def test_help_says_times_are_iso_8601_utc(capsys):
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "ISO 8601" in text and "UTC" in text and "seconds since 1970" in text and "30m, 8h, 2d, 1w" in text


def _can_mount_tmpfs() -> bool:
    import shutil
    import subprocess

    if shutil.which("unshare") is None:
        return False
    probe = "mount -t tmpfs -o size=64k tmpfs /mnt 2>/dev/null || mount -t tmpfs -o size=64k tmpfs /tmp"
    r = subprocess.run(["unshare", "-rm", "sh", "-c", probe], capture_output=True, check=False)
    return r.returncode == 0


@pytest.mark.skipif(not _can_mount_tmpfs(), reason="needs user namespaces to mount a small tmpfs")
def test_a_full_disk_is_one_sentence_and_leaves_nothing(tmp_path):
    """A real full disk: a 512 KiB tmpfs (in a private mount namespace) that the bundle cannot fit in."""
    import subprocess
    import sys
    from pathlib import Path

    from app.cli.bench import _bench_store

    data = tmp_path / "data"
    _bench_store(data, 20, 320, 256)  # about 2 MB of images
    small = tmp_path / "small"
    small.mkdir()
    script = (f"mount -t tmpfs -o size=512k tmpfs {small} && "
              f"{sys.executable} -m app.cli --data-dir {data} export --out {small}/bundle; rc=$?; "
              f"echo left: $(ls -A {small}); exit $rc")
    r = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=120,
                       cwd=Path(__file__).resolve().parents[2])
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == f"inspection-station: error: the disk holding {small} is full; the bundle was not written"
    assert r.stdout.strip() == "left:"


def test_export_splits_by_time_as_configured(tmp_path, capsys):
    data = tmp_path / "data"
    _store(data)
    cfg = tmp_path / "station.toml"
    cfg.write_text("[export]\nsplit_gap_s = 60.0\nsplit_val_share = 0.2\nsplit_test_share = 0.2\n")
    out = tmp_path / "bundle"
    assert main(["--config", str(cfg), "--data-dir", str(data), "export", "--out", str(out),
                 "--replay-share", "0"]) == 0
    said = capsys.readouterr().out
    assert "split by time: train 4, val 1, test 1" in said  # six frames an hour apart: six blocks
    m = json.loads((out / "manifest.json").read_text())["splits"]
    assert m["gap_s"] == 60.0 and m["shares"] == [0.6, 0.2, 0.2] and m["blocks"] == 6
    cfg.write_text("[export]\nsplit_val_share = 0.9\n")
    assert main(["--config", str(cfg), "--data-dir", str(data), "export", "--out", str(tmp_path / "b2")]) == 2
    err = capsys.readouterr().err
    assert "split_val_share" in err and err.count("\n") == 1
