"""The command line as a user runs it: the installed entry point, in a subprocess."""

import json
import shutil
import subprocess
import sys

import pytest

from app.cli import main

EXE = shutil.which("inspection-station") or ""


def run(*args, tmp_path):
    cmd = [EXE] if EXE else [sys.executable, "-m", "app.cli"]
    return subprocess.run([*cmd, *args, "--data-dir", str(tmp_path / "data")], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)


def test_headless_run_writes_one_record_per_frame_and_a_summary(tmp_path):
    out = tmp_path / "out.jsonl"
    p = run("run", "--headless", "--source", "sim://?seed=3&scenario=mixed&width=320&height=256",
            "--frames", "200", "--jsonl", str(out), tmp_path=tmp_path)
    assert p.returncode == 0, p.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    frames = [r for r in records if r["type"] == "frame"]
    assert len(frames) == 200
    assert records[-1]["type"] == "summary" and records[-1]["frames"] == 200
    assert json.loads(p.stdout.strip().splitlines()[-1]) == records[-1]
    kinds = {r["kind"] for r in records if r["type"] == "event"}
    assert {"frozen", "stalled", "recovered"} <= kinds
    assert "Traceback" not in p.stderr


def test_jsonl_to_stdout(tmp_path):
    p = run("run", "--headless", "--source", "sim://?width=160&height=128", "--frames", "3", "--jsonl", "-",
            tmp_path=tmp_path)
    lines = [json.loads(line) for line in p.stdout.splitlines()]
    assert p.returncode == 0 and [r["type"] for r in lines] == ["event", "frame", "frame", "frame", "summary"]


@pytest.mark.parametrize("args, message", [
    (["run", "--headless", "--source", "/no/such/video.mp4", "--frames", "2"], "does not exist"),
    (["run", "--headless", "--source", "cam://7", "--frames", "2"], "cannot be opened"),
    (["run", "--headless", "--source", "sim://?scenario=sunny"], "unknown scenario"),
    (["run", "--headless", "--frames", "0"], "must be at least 1"),
    (["run", "--frames", "5"], "need --headless"),
    (["run", "--headless", "--frames", "2", "--jsonl", "/no/such/dir/out.jsonl"], "cannot write"),
    (["run", "--headless", "--frames", "2", "--config", "/no/such/config.toml"], "does not exist"),
    (["bench", "sim", "--scenario", "sunny"], "unknown scenario"),
])
def test_user_errors_are_one_sentence_and_a_non_zero_status(tmp_path, args, message):
    p = run(*args, tmp_path=tmp_path)
    assert p.returncode == 2
    assert message in p.stderr
    assert "Traceback" not in p.stderr
    assert len([line for line in p.stderr.splitlines() if "error:" in line]) == 1


def test_a_bad_config_file_is_named(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[source]\nurl = 'cam://0'\n")
    p = run("run", "--headless", "--frames", "1", "--config", str(cfg), tmp_path=tmp_path)
    assert p.returncode == 2 and "unknown setting 'source.url'" in p.stderr


def test_version_and_scenarios(tmp_path, capsys):
    p = run("--version", tmp_path=tmp_path)
    assert p.returncode == 0 and p.stdout.startswith("inspection-station 0.")
    assert main(["scenarios"]) == 0
    out = capsys.readouterr().out
    for name in ("nominal", "lighting-aging", "lens-change", "new-variant", "camera-dropout", "mixed"):
        assert name in out


def test_bench_sim_prints_figures_side_by_side(capsys):
    assert main(["bench", "sim", "--frames", "3", "--width", "160", "--height", "128", "--scenario", "nominal",
                 "--scenario", "lens-change"]) == 0
    out = capsys.readouterr().out
    assert "median fps" in out and "nominal" in out and "lens-change" in out and "slowest scenario" in out
