"""The Field accuracy dock: stored figures read off the GUI thread, the live estimate, the shadow model started
from the dock and stopped again."""

import copy

from app.gui.start import make_app
from app.gui.window import MainWindow
from engine.core.config import default_config
from engine.inference.confidence import Calibration


def test_the_dock_shows_the_estimate_and_runs_a_shadow_model(qtbot, data_dir):
    make_app()
    config = copy.deepcopy(default_config())
    config["drift"]["reference"] = ""
    w = MainWindow(config, data_dir, source="sim://?seed=1&width=320&height=256&fps=10", autostart=False)
    qtbot.addWidget(w)
    view = w.accuracy
    qtbot.waitUntil(lambda: view.last is not None, timeout=20000)  # an empty store: figures with no samples
    assert view.last["precision"]["n"] == 0 and view.tile.precision.text() == "–"
    view.show_live()
    assert "calibrate" in view.tile.estimate.text() or view.tile.estimate.text() == "–"
    # A calibration for the built-in model: every score is worth 0.9; no near-threshold peak on the reference.
    from engine.inference import load_detector

    name = load_detector(None).name
    Calibration(name, (1.0,), (0.9,), threshold=0.4, floor=0.05, near=0.2, near_rate=0.0).save(data_dir)
    view.start_shadow(None)  # the built-in model as its own challenger: they agree
    qtbot.waitUntil(lambda: w.station.field.shadow is not None, timeout=60000)
    w.open_source(w.station.uri)
    qtbot.waitUntil(lambda: w.station.field.shadow.snapshot()["shadowed"] >= 1, timeout=60000)
    qtbot.waitUntil(lambda: w.station.field.expected_precision is not None, timeout=60000)
    view.show_live()
    assert view.tile.estimate.text() == "0.900" and view.tile.stop_button.isEnabled()
    qtbot.waitUntil(lambda: w.station.field.expected_recall is not None, timeout=60000)
    view.show_live()
    recall, f1 = view.tile.expected_recall.text().split(" / ")
    assert 0.0 < float(recall) <= 1.0 and 0.0 < float(f1) <= 1.0
    assert "shadowed" in view.tile.shadow_figures.text()
    view.stop_shadow()
    qtbot.waitUntil(lambda: w.station.field.shadow is None and view.tile.start_button.isEnabled(), timeout=20000)
    assert "(stopped)" in view.tile.shadow_model.text()
    w.close()
