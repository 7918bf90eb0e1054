"""A model is proven (loaded, run on one frame, its classes and input shown) before it replaces the running one."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from app.cli import main
from engine.inference import ModelError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from model_files import torchscript_model

SOURCE = "sim://?seed=1&scenario=nominal&width=320&height=256&fps=60"


def test_model_info_shows_classes_and_input_after_a_run_on_one_frame(tmp_path, capsys):
    model = torchscript_model(tmp_path / "m.torchscript", emb_dim=40)
    assert main(["model", "info", str(model)]) == 0
    out = capsys.readouterr().out
    assert "classes: scratch, dent" in out and "input: 320x256 RGB" in out and "proven: m.torchscript" in out


def test_run_with_a_model_that_cannot_be_used_fails_before_starting(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07" + b"\xff" * 40)
    out = tmp_path / "run.jsonl"
    assert main(["run", "--headless", "--source", SOURCE, "--frames", "3", "--model", str(bad), "--jsonl", str(out),
                 "--data-dir", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.onnx" in err[0] and not out.exists()


def test_the_station_keeps_its_model_when_another_fails(tmp_path):
    from engine.core.config import default_config
    from engine.runtime.station import Station

    s = Station(default_config(), tmp_path / "d", SOURCE, realtime=False, feedback=False, keep_trends=False)
    try:
        running = s.load_model()
        bad = tmp_path / "bad.pt2"
        bad.write_bytes(b"PK not a zip")
        with pytest.raises(ModelError):
            s.prove_model(str(bad))
        assert s.detector is running and s.model.path is None
        good = torchscript_model(tmp_path / "m.torchscript", emb_dim=40)
        det, line = s.prove_model(str(good))
        assert "classes scratch, dent" in line and "input 320x256" in line and s.detector is running
        s.switch_model(str(good), det, restart=False)
        assert s.detector is det and s.model.path == str(good) and s.classes == ("scratch", "dent")
    finally:
        s.close(timeout=5)


def test_the_window_keeps_running_its_model_when_another_fails(qtbot, tmp_path, data_dir):
    from app.gui.start import make_app
    from app.gui.window import MainWindow
    from engine.core.config import default_config

    make_app()
    w = MainWindow(default_config(), data_dir, source=SOURCE)
    qtbot.addWidget(w)
    w.show()
    try:
        qtbot.waitUntil(lambda: w.station.detector is not None and w.live.frames_shown >= 2, timeout=20000)
        running = w.station.detector
        bad = tmp_path / "bad.onnx"
        bad.write_bytes(b"\x08\x07" + b"\xff" * 40)
        w.set_model(str(bad))
        qtbot.waitUntil(lambda: "the current model goes on running" in w.events.item(0).text(), timeout=20000)
        assert "bad.onnx" in w.events.item(0).text()
        assert w.station.detector is running and w.station.pipeline.running
        good = torchscript_model(tmp_path / "m.torchscript", emb_dim=40)
        w.set_model(str(good))
        qtbot.waitUntil(lambda: w.station.model.path == str(good), timeout=20000)
        texts = [w.events.item(i).text() for i in range(w.events.count())]
        assert any("now running m.torchscript" in t and "classes scratch, dent" in t for t in texts)
    finally:
        w.close()
