"""The operator-first window, driven for real: the image's share of the screen, the state banner, decisions drawn
on their frame until it is left, views by role, unique shortcuts that work whatever has the focus, tab order on
every sign-in screen."""

import pytest
from PySide6 import QtCore, QtGui, QtWidgets
from PySide6.QtTest import QTest

from app.gui.start import make_app
from app.gui.window import MainWindow
from engine.core.config import default_config
from engine.security.auth import AuthStore

SOURCE = "sim://?seed=2&scenario=nominal&width=640&height=512&fps=30"


@pytest.fixture
def window(qtbot, data_dir):
    make_app()
    w = MainWindow(default_config(), data_dir, source=SOURCE)
    qtbot.addWidget(w)
    w.resize(1400, 900)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.close()


def settle(qtbot, w, size):
    w.resize(*size)
    qtbot.waitUntil(lambda: w.size().toTuple() == size, timeout=5000)
    qtbot.wait(50)


def small_targets(w) -> list[str]:
    """The operator's visible buttons (review, toolbar, drift lights) a finger could miss: under 48 px tall."""
    shown = [b for b in w.dock_review.findChildren(QtWidgets.QAbstractButton) if b.isVisible()]
    shown += [b for b in w.findChildren(QtWidgets.QToolButton) if b.isVisible() and b.defaultAction() in (
        w.act_start, w.act_pause, w.act_stop)]
    assert len(shown) >= 10
    return [f"{b.text() or b.objectName()} {b.width()}x{b.height()}" for b in [*shown, w.drift_strip]
            if b.height() < 48 or b.width() < 48]


def test_the_image_fills_the_operator_view_and_stays_usable_on_a_small_screen(qtbot, window):
    w = window
    qtbot.waitUntil(lambda: w.live.frames_shown >= 1, timeout=30000)
    w.views.use("operator")
    settle(qtbot, w, (1400, 900))
    share = w.live.width() * w.live.height() / (w.width() * w.height())
    assert share >= 0.5, f"the image covers {share:.0%} of the window"
    assert small_targets(w) == []
    settle(qtbot, w, (1024, 768))
    assert w.width() <= 1024 and w.live.width() >= 480 and w.live.height() >= 380
    assert small_targets(w) == []
    # What no longer fits on the toolbar is reachable from a menu.
    menus = [a for m in w.menuBar().findChildren(QtWidgets.QMenu) for a in m.actions()]
    assert w.act_model in menus and w.act_truth in menus and w.act_conf_up in menus
    assert w.banner.isVisible() and w.counts.isVisible() and w.drift_strip.isVisible()


def test_every_view_fits_a_1024_by_768_screen(qtbot, window):
    w = window
    for view in ("operator", "technician", "engineer"):
        w.views.use(view)
        settle(qtbot, w, (1024, 768))
        need = w.minimumSizeHint()
        assert need.width() <= 1024 and need.height() <= 768, f"the {view}'s view needs {need.toTuple()}"
        assert w.size().toTuple() == (1024, 768)


def test_the_banner_follows_freeze_live_and_alarm(qtbot, window):
    w = window
    qtbot.waitUntil(lambda: w.banner.text() == "LIVE", timeout=20000)
    assert w.banner.kind == "live"
    qtbot.waitUntil(lambda: w.station.latest() is not None, timeout=20000)
    qtbot.keyClick(w, QtCore.Qt.Key.Key_F)
    seq = w.station.review.frame.sequence
    qtbot.waitUntil(lambda: w.banner.text() == f"FROZEN · frame {seq}", timeout=5000)
    assert w.lbl_state.text().startswith(f"Reviewing frame {seq}")  # not "Running"
    qtbot.keyClick(w, QtCore.Qt.Key.Key_F)
    qtbot.waitUntil(lambda: w.banner.text() == "LIVE", timeout=5000)
    assert w.open_source("/no/such/file.mp4")  # the camera is lost: the line retries it
    qtbot.waitUntil(lambda: w.banner.kind == "alarm", timeout=10000)
    assert w.banner.text().startswith("ALARM: source lost")


def test_each_decision_stays_drawn_on_its_frame_until_the_frame_is_left(qtbot, window):
    w = window
    r = w.station.review

    def two_detections():
        _, res = w.station.pipeline.latest() if w.station.pipeline else (0, None)
        return res is not None and res.detections is not None and len(res.detections.boxes) >= 2

    qtbot.waitUntil(two_detections, timeout=60000)
    qtbot.keyClick(w, QtCore.Qt.Key.Key_F)
    dets = r.frame.detections
    qtbot.keyClick(w, QtCore.Qt.Key.Key_C)  # confirm the first
    qtbot.waitUntil(lambda: r.states.get(0) == "confirm", timeout=10000)
    qtbot.keyClick(w, QtCore.Qt.Key.Key_X)  # reject the second
    qtbot.waitUntil(lambda: r.states.get(1) == "reject", timeout=10000)
    r.choose_class("dent", drawing=True)  # a missed dent, drawn
    r.decide("missed", new_box=(10, 10, 60, 50), new_class=r.draw_class)
    qtbot.keyClick(w, QtCore.Qt.Key.Key_U)
    qtbot.waitUntil(lambda: "unsure" in r.unsure.values(), timeout=10000)
    qtbot.waitUntil(lambda: any(k == "missed" for k, _ in w.live.drawn_marks()), timeout=10000)
    marks = dict(w.live.drawn_marks()[:2])
    assert marks == {"confirm": f"✔ {dets[0].class_name} {dets[0].score:.2f}",
                     "reject": f"✘ {dets[1].class_name} {dets[1].score:.2f}"}
    assert w.live._detections.crosses[1].isVisible()  # the rejected box is crossed out
    assert ("missed", "+ dent (missed)") in w.live.drawn_marks()
    assert any(k == "unsure" for k, _ in w.live.drawn_marks())
    rects = w.live.label_rects()
    assert all(not a.intersects(b) for i, a in enumerate(rects) for b in rects[i + 1:])
    # A new class on the first one: its label says so.
    r.select(0)
    other = next(c for c in w.station.classes if c != dets[0].class_name)
    w.review_view.class_chosen(other)
    qtbot.waitUntil(lambda: r.states.get(0) == "reclass", timeout=10000)
    assert ("reclass", f"✔ {dets[0].class_name} → {other}") in w.live.drawn_marks()
    # Undo names what it undid, and takes its mark away.
    w.act_undo.trigger()
    qtbot.waitUntil(lambda: w.review.saved.text().startswith(
        f"Saved ✓ Undid: relabelled {dets[0].class_name} {dets[0].score:.2f} as {other}"), timeout=10000)
    assert 0 not in r.states
    # Still drawn after more frames have gone by on the line behind.
    shown = w.station.pipeline.stats.processed
    qtbot.waitUntil(lambda: w.station.pipeline.stats.processed > shown + 2, timeout=20000)
    assert ("reject", f"✘ {dets[1].class_name} {dets[1].score:.2f}") in w.live.drawn_marks()
    # Back to live: the marks and the save status go with the frame.
    qtbot.keyClick(w, QtCore.Qt.Key.Key_F)
    assert w.live.drawn_marks() == [] or all(k == "detection" for k, _ in w.live.drawn_marks())
    assert w.review.saved.text() == ""
    assert w.shift.rejected >= 1 and w.counts.figures["parts"].text() != ""


def test_views_by_role_switch_with_their_keys_and_keep_their_layout(qtbot, window):
    w = window
    assert w.views.view == "operator" and not w.dock_drift.isVisible()
    qtbot.keyClick(w, QtCore.Qt.Key.Key_2, QtCore.Qt.KeyboardModifier.ControlModifier)
    assert w.views.view == "technician" and w.dock_drift.isVisible() and w.views.cockpit.isVisible()
    assert w.act_recalibrate in w.views.cockpit.actions()  # recalibration one click away
    no_features = QtWidgets.QDockWidget.DockWidgetFeature.NoDockWidgetFeatures
    assert w.dock_review.features() != no_features  # fixed in place for the operator only
    w.dock_events.hide()  # the technician's own change to the layout
    qtbot.keyClick(w, QtCore.Qt.Key.Key_3, QtCore.Qt.KeyboardModifier.ControlModifier)
    assert w.views.view == "engineer" and w.dock_values.isVisible() and w.dock_events.isVisible()
    qtbot.keyClick(w, QtCore.Qt.Key.Key_2, QtCore.Qt.KeyboardModifier.ControlModifier)
    assert w.dock_drift.isVisible() and not w.dock_events.isVisible()
    qtbot.keyClick(w, QtCore.Qt.Key.Key_1, QtCore.Qt.KeyboardModifier.ControlModifier)
    assert w.views.view == "operator" and not w.dock_drift.isVisible()
    assert w.dock_review.features() == no_features
    qtbot.mouseClick(w.drift_strip, QtCore.Qt.MouseButton.LeftButton)  # a tap on the lights: the details
    assert w.dock_drift.isVisible()
    # A dock added later joins a view with one line.
    dock = QtWidgets.QDockWidget("Models", w)
    dock.setObjectName("modelsDock")
    w.addDockWidget(QtCore.Qt.DockWidgetArea.RightDockWidgetArea, dock)
    w.views.assign(dock, "engineer")
    assert not dock.isVisible()
    w.views.lay_out("engineer")
    assert dock.isVisible()


def window_shortcuts(w):
    return [a for a in w.findChildren(QtGui.QAction) if not a.shortcut().isEmpty()]


def test_every_shortcut_is_unique_and_works_while_a_read_only_field_has_the_focus(qtbot, data_dir):
    make_app()
    store = AuthStore(data_dir)
    store.add_user("100", "Ada Admin", "admin", "1234", None)
    w = MainWindow(default_config(), data_dir, source=SOURCE, autostart=False, model="none",
                   session=store.authenticate("100", "1234"))
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    try:
        keys = {}
        for a in window_shortcuts(w):
            for k in a.shortcuts():
                assert k.toString() not in keys, f"{k.toString()}: {keys.get(k.toString())} and {a.text()}"
                keys[k.toString()] = a.text()
        for name in ("act_start", "act_open", "act_freeze", "act_confirm", "act_undo", "act_quit"):
            assert not getattr(w, name).shortcut().isEmpty()
        assert w.auth.act_verify.shortcut() != w.agreement_tools.act_dashboard.shortcut()
        assert len(keys) >= 25
        # The signed-in operator field is read-only and takes no focus; any read-only field lets every key by.
        assert w.review.operator.isReadOnly()
        assert w.review.operator.focusPolicy() == QtCore.Qt.FocusPolicy.NoFocus
        field = QtWidgets.QLineEdit("read only")
        field.setReadOnly(True)
        w.centralWidget().layout().addWidget(field)
        w.activateWindow()
        qtbot.waitUntil(lambda: QtWidgets.QApplication.activeWindow() is w, timeout=2000)
        field.setFocus()
        qtbot.waitUntil(field.hasFocus, timeout=2000)
        for a in window_shortcuts(w):
            assert a.shortcutContext() in (QtCore.Qt.ShortcutContext.WindowShortcut,
                                           QtCore.Qt.ShortcutContext.ApplicationShortcut), a.text()
            for k in a.shortcuts():
                c = k[0]
                ev = QtGui.QKeyEvent(QtCore.QEvent.Type.ShortcutOverride, c.key(), c.keyboardModifiers())
                QtWidgets.QApplication.sendEvent(field, ev)
                assert not ev.isAccepted(), f"{k.toString()} ({a.text()}) is eaten by a read-only field"
        qtbot.keyClick(field, QtCore.Qt.Key.Key_O, QtCore.Qt.KeyboardModifier.ControlModifier)
        assert w.chooser.combo.hasFocus()
    finally:
        w.close()


def tab_through(qtbot, first, expected):
    first.setFocus()
    qtbot.waitUntil(first.hasFocus, timeout=2000)
    for want in expected:
        QTest.keyClick(QtWidgets.QApplication.focusWidget(), QtCore.Qt.Key.Key_Tab)
        assert QtWidgets.QApplication.focusWidget() is want, QtWidgets.QApplication.focusWidget().objectName()


def test_tab_moves_badge_pin_button_on_every_sign_in_screen(qtbot, data_dir):
    make_app()
    w = MainWindow(default_config(), data_dir, source=SOURCE, autostart=False, model="none", sign_in=True)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    try:
        fa = w.auth.lock_screen.first_admin
        assert fa.isVisible()
        tab_through(qtbot, fa.badge, [fa.name, fa.pin, fa.pin2, fa.button])
        fa.badge.setText("100")
        fa.name.setText("Ada Admin")
        fa.pin.setText("1234")
        fa.pin2.setText("1234")
        fa.button.click()
        qtbot.waitUntil(lambda: not w.auth.lock_screen.isVisible(), timeout=15000)
        assert w.views.view == "engineer"  # an administrator's view
        w.auth.switch_user()  # the handover: the next operator signs in
        panel = w.auth.lock_screen.sign_in
        qtbot.waitUntil(panel.isVisible, timeout=5000)
        tab_through(qtbot, panel.badge, [panel.pin, panel.button])
        w.auth.lock("locked by the user")
        qtbot.waitUntil(panel.isVisible, timeout=5000)
        tab_through(qtbot, panel.badge, [panel.pin, panel.button])
    finally:
        w.close()


@pytest.mark.parametrize("view", ["operator", "technician", "engineer"])
def test_no_dock_tab_bar_lies_over_the_image_or_the_counts(qtbot, data_dir, view):
    make_app()
    for _ in range(2):  # laid out anew, then restored as the last window left it
        w = MainWindow(default_config(), data_dir, source=SOURCE)
        qtbot.addWidget(w)
        w.resize(1400, 900)
        w.show()
        w.views.use(view)  # as at start-up: the signed-in role's view, before the window is first drawn
        qtbot.waitUntil(lambda: w.live.frames_shown >= 1, timeout=30000)
        covered = [w.live, w.counts]
        for bar in w.findChildren(QtWidgets.QTabBar):
            if not bar.isVisible() or not bar.count():
                continue
            r = QtCore.QRect(bar.mapTo(w, QtCore.QPoint(0, 0)), bar.size())
            for widget in covered:
                if widget.isVisible():
                    g = QtCore.QRect(widget.mapTo(w, QtCore.QPoint(0, 0)), widget.size())
                    assert not r.intersects(g), f"{[bar.tabText(i) for i in range(bar.count())]} over {widget}"
        w.close()
