"""``inspection-station readiness`` and the window's Tools > Data readiness report… on real stored data (the
new variant on the simulated line, statistics only, so that it is quick)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6 import QtWidgets

from app.cli import main
from engine.core.config import default_config

SIZE = "width=320&height=256"


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    base = tmp_path_factory.mktemp("readiness-cli")
    ref = base / "ref.npz"
    assert main(["--data-dir", str(base / "refdata"), "reference", "build", "--no-embeddings", "--source",
                 f"sim://?seed=100&scenario=nominal&{SIZE}&start=60", "--frames", "200", "--out", str(ref)]) == 0
    data = base / "variant"
    # The variant appears at slot 144 (12 h of 5 min frames) and is half the parts at slot 288.
    assert main(["--data-dir", str(data), "run", "--headless", "--model", "none", "--source",
                 f"sim://?seed=3&scenario=new-variant&{SIZE}&start=150", "--frames", "150", "--reference", str(ref),
                 "--auto-review", "oracle:0.95,operator=a"]) == 0
    return ref, data


def test_readiness_writes_the_report_and_prints_the_verdict(line, tmp_path, capsys):
    ref, data = line
    out = tmp_path / "report.html"
    capsys.readouterr()
    assert main(["--data-dir", str(data), "readiness", "--reference", str(ref), "--out", str(out), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["verdict"] == "not ready" and d["ready"] is False
    shift = [r for r in d["reasons"] if r.startswith("Production differs from the training data: the PSI")]
    assert len(shift) == 1 and "cct_k" in shift[0]
    assert d["psi"]["cct_k"] > 0.25 and d["report"] == str(out)
    # Statistics only: the reference holds no embeddings, and the report says so rather than guessing.
    assert any("no embeddings" in n for n in d["notes"])
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "Verdict: NOT READY" in text
    # Without --json: the verdict and its reasons, one per line.
    assert main(["--data-dir", str(data), "readiness", "--reference", str(ref), "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"NOT READY: report written to {out}"
    assert lines[1:] == [f"  - {r}" for r in d["reasons"]]


def test_since_keeps_only_later_frames(line, capsys):
    ref, data = line
    capsys.readouterr()
    assert main(["--data-dir", str(data), "readiness", "--reference", str(ref), "--json"]) == 0
    everything = json.loads(capsys.readouterr().out)["frames"]
    # 2026-01-01T20:00Z on the simulated line's clock is slot 240: the last 60 of slots 150-299.
    assert main(["--data-dir", str(data), "readiness", "--reference", str(ref), "--json",
                 "--since", "2026-01-01T20:00"]) == 0
    later = json.loads(capsys.readouterr().out)
    assert 0 < later["frames"] < everything
    assert later["frames"] <= 60
    # The same moment with an offset, and as seconds since 1970: one reading of time for every command.
    for same in ("2026-01-01T21:00+01:00", "1767297600"):
        assert main(["--data-dir", str(data), "readiness", "--reference", str(ref), "--json", "--since", same]) == 0
        assert json.loads(capsys.readouterr().out)["frames"] == later["frames"]


@pytest.mark.parametrize("args, message", [
    (["--reference", "{tmp}/missing.npz", "--out", "{tmp}/r.html"], "does not exist"),
    (["--reference", "{ref}", "--out", "{tmp}/no/such/r.html"], "does not exist"),
    (["--reference", "{ref}", "--out", "{tmp}"], "is a folder"),
    (["--reference", "{ref}", "--since", "soon", "--out", "{tmp}/r.html"], "is not a time"),
    (["--reference", "{ref}"], "--out"),
])
def test_errors_are_one_sentence_and_exit_2(line, tmp_path, capsys, args, message):
    ref, data = line
    args = [a.format(tmp=tmp_path, ref=ref) for a in args]
    assert main(["--data-dir", str(data), "readiness", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "r.html").exists()


def test_no_data_is_an_error(line, tmp_path, capsys):
    ref, _ = line
    assert main(["--data-dir", str(tmp_path / "fresh"), "readiness", "--reference", str(ref), "--json"]) == 2
    assert "no production" in capsys.readouterr().err


class _Window(QtWidgets.QMainWindow):
    """What the readiness action needs of the station's window: a Tools menu, the data folder, the config and
    the task runner."""

    def __init__(self, data_dir: Path, config: dict) -> None:
        from app.gui.tasks import TaskRunner

        super().__init__()
        self.data_dir, self.config = data_dir, config
        self.tools_menu = self.menuBar().addMenu("&Tools")
        self.tasks = TaskRunner(self)

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        self.tasks.shutdown()
        super().closeEvent(event)


def test_the_tools_menu_builds_the_report_off_the_gui_thread(line, qtbot, tmp_path):
    from app.gui import readiness as readiness_ui

    ref, data = line
    cfg = default_config()
    cfg["drift"]["reference"] = str(ref)
    w = _Window(data, cfg)
    qtbot.addWidget(w)
    ctl = readiness_ui.install(w)
    assert ctl.action in w.tools_menu.actions() and ctl.action.shortcut().toString() == "Ctrl+Shift+R"
    assert ctl.reference() == str(ref)
    assert ctl.default_out().parent == data
    out = tmp_path / "gui.html"
    worker = ctl.start(ctl.reference(), out)
    assert ctl.dialog is not None  # the progress dialog is up while the worker runs
    qtbot.waitUntil(lambda: ctl.worker is None, timeout=60000)
    assert ctl.last_error is None and ctl.last_result.verdict == "not ready"
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert ctl.message is not None and "NOT READY" in ctl.message.text()
    assert worker is not None


def test_the_window_reports_a_failure_in_one_sentence(qtbot, tmp_path):
    from app.gui import readiness as readiness_ui

    w = _Window(tmp_path / "empty", default_config())
    qtbot.addWidget(w)
    ctl = readiness_ui.install(w)
    ctl.start("builtin", tmp_path / "r.html")
    qtbot.waitUntil(lambda: ctl.worker is None, timeout=30000)
    assert ctl.last_result is None and "no station database" in ctl.last_error
    assert ctl.message.text().startswith("There is no station database")
    assert not (tmp_path / "r.html").exists()


def test_the_main_window_has_the_action(qtbot, data_dir):
    from app.gui.start import make_app
    from app.gui.window import MainWindow

    make_app()
    w = MainWindow(default_config(), data_dir, source="sim://?seed=1&scenario=nominal&width=320&height=256",
                   autostart=False, model="none")
    qtbot.addWidget(w)
    assert "Data readiness report…" in [a.text() for a in w.tools_menu.actions()]
    w.close()
