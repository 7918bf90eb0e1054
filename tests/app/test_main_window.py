import pytest
from PySide6 import QtCore, QtWidgets

from app.gui.start import make_app
from app.gui.window import MainWindow
from engine.core.config import default_config
from engine.runtime.pipeline import State

SOURCE = "sim://?seed=1&scenario=nominal&width=320&height=256&fps=60"


@pytest.fixture
def window(qtbot, data_dir):
    make_app()
    w = MainWindow(default_config(), data_dir, source=SOURCE)
    qtbot.addWidget(w)
    w.show()
    yield w
    w.close()


def test_window_shows_moving_parts_with_overlays_and_live_status(qtbot, window):
    qtbot.waitUntil(lambda: window.live.frames_shown >= 10, timeout=10000)
    qtbot.waitUntil(lambda: window.live.overlay_counts[1] > 0, timeout=15000)  # true defects, dashed
    assert window.station.pipeline.state == State.RUNNING
    assert window.lbl_fps.text().endswith("fps") and float(window.lbl_fps.text().split()[0]) > 0
    assert window.lbl_state.text() == "Running"
    qtbot.waitUntil(lambda: window.values.rowCount() >= 4, timeout=10000)  # once the statistics have a frame


def test_ground_truth_toggle_with_its_shortcut(qtbot, window):
    qtbot.waitUntil(lambda: window.live.overlay_counts[1] > 0, timeout=15000)
    window.act_truth.trigger()  # G
    qtbot.waitUntil(lambda: window.live.overlay_counts[1] == 0, timeout=5000)
    assert window.act_truth.shortcut().toString() == "G"


def test_pause_resume_stop_and_start(qtbot, window):
    qtbot.waitUntil(lambda: window.live.frames_shown >= 3, timeout=10000)
    window.act_pause.trigger()
    qtbot.waitUntil(lambda: window.station.pipeline.state == State.PAUSED, timeout=3000)
    qtbot.wait(150)
    shown = window.live.frames_shown
    qtbot.wait(300)
    assert window.live.frames_shown == shown
    window.act_start.trigger()  # F5 resumes
    qtbot.waitUntil(lambda: window.live.frames_shown > shown, timeout=5000)
    old = window.station.pipeline
    window.act_stop.trigger()
    assert window.station.pipeline is None and not window.act_stop.isEnabled()
    assert old.join(timeout=5)
    window.act_start.trigger()
    qtbot.waitUntil(lambda: window.station.pipeline is not None and window.station.pipeline.stats.processed > 2, timeout=10000)


def test_a_bad_source_is_reported_and_the_window_carries_on(qtbot, window):
    qtbot.waitUntil(lambda: window.live.frames_shown >= 3, timeout=10000)
    assert not window.open_source("bogus://nowhere")
    assert "unknown source type" in window.events.item(0).text()
    assert window.station.pipeline.running  # the line being watched is still watched
    assert window.open_source("/no/such/file.mp4")  # a source that fails while opening: retried in the worker
    qtbot.waitUntil(lambda: window.events.count() and "unavailable" in window.events.item(0).text(), timeout=5000)
    assert window.lbl_state.text() == "Reconnecting"
    assert window.open_source(SOURCE)
    qtbot.waitUntil(lambda: window.station.pipeline.stats.processed > 2, timeout=10000)


def test_camera_outage_shows_reconnecting_then_recovers(qtbot, data_dir):
    make_app()
    # Unpaced, so the pipeline reads every frame of the frozen stretch however busy the machine is.
    src = "sim://?seed=1&scenario=camera-dropout&width=160&height=128&fps=400&start=290&realtime=0"
    w = MainWindow(default_config(), data_dir, source=src, model="none")  # the camera's story, not the model's
    qtbot.addWidget(w)
    w.show()
    try:
        qtbot.waitUntil(lambda: any("recovered" in w.events.item(i).text() for i in range(w.events.count())),
                        timeout=30000)
        texts = [w.events.item(i).text() for i in range(w.events.count())]
        assert any("frozen" in t for t in texts) and any("stalled" in t for t in texts)
    finally:
        w.close()


def test_dock_layout_is_saved_and_restored(qtbot, data_dir):
    make_app()
    w = MainWindow(default_config(), data_dir, source=SOURCE, autostart=False)
    qtbot.addWidget(w)
    w.show()
    w.dock_events.hide()
    w.removeDockWidget(w.dock_values)
    w.addDockWidget(QtCore.Qt.DockWidgetArea.LeftDockWidgetArea, w.dock_values)
    w.dock_values.show()
    w.close()
    w2 = MainWindow(default_config(), data_dir, source=SOURCE, autostart=False)
    qtbot.addWidget(w2)
    w2.show()
    assert w2.dock_events.isHidden()
    assert w2.dockWidgetArea(w2.dock_values) == QtCore.Qt.DockWidgetArea.LeftDockWidgetArea
    w2.close()


def test_every_action_has_a_shortcut(window):
    for a in (window.act_start, window.act_pause, window.act_stop, window.act_open, window.act_truth,
              window.act_full, window.act_quit):
        assert not a.shortcut().isEmpty(), a.text()
    assert isinstance(window.findChild(QtWidgets.QToolBar, "lineToolbar"), QtWidgets.QToolBar)


def test_review_buttons_class_keys_and_export_take_the_running_models_classes(qtbot, data_dir):
    from engine.runtime.station import builtin_classes

    make_app()
    w = MainWindow(default_config(), data_dir, source=SOURCE, autostart=False)
    qtbot.addWidget(w)
    assert w.review.classes == list(builtin_classes()) == list(w.station.classes)

    class Custom:  # a user's model, as loaded: its card names its classes
        name, device, confidence = "custom 1234abcd", "cpu", 0.4
        classes = ("crack", "burr", "stain", "chip")

    w.station.use_detector(Custom())
    qtbot.waitUntil(lambda: w.review.classes == list(Custom.classes), timeout=5000)
    assert [b.objectName() for b in w.review.class_buttons] == [f"classButton_{c}" for c in Custom.classes]
    assert [(a.text(), a.shortcut().toString()) for a in w.act_classes] == \
        [(f"Class {c}", str(i + 1)) for i, c in enumerate(Custom.classes)]
    assert w.model_controls.confidence.value() == pytest.approx(0.4)
    w.act_classes[3].trigger()  # 4 while drawing a missed defect: a chip
    w.live.set_draw_mode(True)
    w.act_classes[3].trigger()
    assert w.station.review.draw_class == "chip"
    dialog = w.export_controller.open()
    assert dialog.classes == list(Custom.classes)
    dialog.close()
    w.close()


def test_a_new_frame_is_drawn_when_it_arrives_not_at_the_next_tick(qtbot, window):
    qtbot.waitUntil(lambda: window.live.frames_shown >= 3, timeout=10000)
    window.display.timer.setInterval(60_000)  # the timer alone would now draw one frame a minute
    window.display.timer.start()
    shown = window.live.frames_shown
    qtbot.waitUntil(lambda: window.live.frames_shown >= shown + 10, timeout=10000)
    # and each frame painted is logged with its own sequence number, in order
    seqs = [s for s, _ in window.live.paint_log]
    assert len(seqs) >= 10 and seqs == sorted(seqs)


def test_a_closed_window_is_no_longer_told_of_new_frames(qtbot, data_dir):
    make_app()
    w = MainWindow(default_config(), data_dir, source=SOURCE)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.live.frames_shown >= 3, timeout=10000)
    p = w.station.pipeline
    assert p.on_newest is not None
    w.close()
    assert p.on_newest is None
