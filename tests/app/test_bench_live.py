"""``bench live`` drives the real window offscreen and reports its figures as JSON (a short smoke run: the speed
targets are for the command on the line PC, not for a test)."""

from __future__ import annotations

import json

from app.cli import main


def test_bench_live_reports_frames_shown_latency_drops_and_the_ratio_as_json(qtbot, capsys, data_dir):
    rc = main(["bench", "live", "--seconds", "0.3", "--width", "160", "--height", "128", "--model", "none",
               "--data-dir", str(data_dir), "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"fps", "latency_p95_ms", "dropped_share", "ratio"} <= set(out)
    assert set(out["modes"]) == {"pipelined", "serial"} and out["ratio"] is not None
    for run in out["modes"].values():
        assert set(run["dropped_by_stage"]) == {"source", "inference", "statistics", "display"}
        assert {"capture", "inference", "statistics", "window"} <= set(run["cpu_cores"])
        assert run["shown"] > 0 and run["camera_frames"] >= run["shown"]
