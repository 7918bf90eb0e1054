import copy

import pytest

from app.gui.start import make_app
from app.gui.window import MainWindow
from engine.core.config import default_config
from engine.monitoring.reference import Reference
from engine.sources import open_source
from engine.monitoring.stats import cpu_stats


@pytest.fixture(scope="module")
def reference_file(tmp_path_factory):
    src = open_source("sim://?seed=100&width=160&height=128")
    src.open()
    ref = Reference.build(((cpu_stats(src.read().image), None) for _ in range(200)), {"source": "test"})
    return ref.save(tmp_path_factory.mktemp("ref") / "ref.npz")


def test_a_lens_change_turns_the_focus_tile_red_and_the_trend_survives_a_restart(qtbot, data_dir, reference_file):
    make_app()
    config = copy.deepcopy(default_config())
    config["drift"]["reference"] = str(reference_file)
    source = "sim://?seed=5&scenario=lens-change&width=160&height=128&fps=150&start=150"
    w = MainWindow(config, data_dir, source=source, model="none")  # drift is about the data, not the model
    qtbot.addWidget(w)
    w.show()
    assert w.station.monitor is not None and "Reference" in w.drift.summary.text()
    qtbot.waitUntil(lambda: w.drift.tiles["focus"].property("level") == "alarm", timeout=30000)
    focus = w.drift.plots["focus"]
    assert focus.series.n > 5 and focus.band.isVisible() and len(focus.alarm_t) >= 1
    assert w.drift.tiles["mean_luma"].property("level") == "ok"
    w.close()
    # The minute aggregates were written by the trend store; a new window shows them at once.
    w2 = MainWindow(config, data_dir, source=source, model="none")
    qtbot.addWidget(w2)
    qtbot.waitUntil(lambda: w2.drift.plots["focus"].series.n > 0, timeout=10000)  # read off the GUI thread
    w2.close()


def test_without_a_reference_the_dock_says_so(qtbot, data_dir):
    make_app()
    config = copy.deepcopy(default_config())
    config["drift"]["reference"] = ""
    w = MainWindow(config, data_dir, source="sim://?width=160&height=128", autostart=True, model="none")
    qtbot.addWidget(w)
    assert w.station.monitor is None and "No reference" in w.drift.summary.text()
    w.close()


def test_a_reference_for_another_frame_size_is_said_in_the_log(qtbot, data_dir):
    make_app()
    w = MainWindow(default_config(), data_dir, source="sim://?width=160&height=128&fps=60", model="none")
    qtbot.addWidget(w)
    assert w.station.monitor is not None  # the built-in reference, made for 1280x1024 frames
    qtbot.waitUntil(lambda: any("is for 1280x1024 frames" in w.events.item(i).text()
                                for i in range(w.events.count())), timeout=15000)
    assert all(t.property("level") == "ok" for t in w.drift.tiles.values())
    w.close()
