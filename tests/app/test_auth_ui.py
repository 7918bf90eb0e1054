"""Sign-in, lock screen and role gating in the real window, driven with pytest-qt."""

import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from app.gui.start import make_app
from app.gui.window import MainWindow
from engine.security import audit
from engine.security.auth import AuthStore
from engine.core.config import default_config
from engine.review.feedback import list_decisions

SOURCE = "sim://?seed=2&scenario=nominal&width=320&height=256&fps=30"


@pytest.fixture
def users(data_dir):
    store = AuthStore(data_dir)
    admin = store.add_user("100", "Ada Admin", "admin", "1234", None)
    store.add_user("200", "Otto Operator", "operator", "2000", admin)
    store.add_user("300", "Tess Technician", "technician", "3000", admin)
    store.add_user("400", "Erin Engineer", "engineer", "4000", admin)
    return store


def open_window(qtbot, data_dir, autostart=False, source=SOURCE):
    make_app()
    w = MainWindow(default_config(), data_dir, source=source, autostart=autostart, model="none", sign_in=True)
    qtbot.addWidget(w)
    w.resize(1280, 800)
    w.show()
    qtbot.waitExposed(w)
    # Others' tools, as features add them to the Tools menu.
    for text, permission in (("Export bundle…", "export"), ("Recalibrate…", "recalibrate"),
                             ("Tolerances…", "tolerances")):
        a = QtGui.QAction(text, w)
        a.setProperty("permission", permission)
        w.tools_menu.addAction(a)
    w.tools_menu.addAction(QtGui.QAction("Undeclared tool…", w))  # declares no permission: engineers only
    qtbot.wait(10)
    return w


def sign_in(qtbot, w, badge, pin):
    panel = w.auth.lock_screen.sign_in
    assert w.auth.lock_screen.isVisible()
    panel.badge.setText(badge)
    panel.pin.setFocus()
    for digit in pin:  # on the on-screen keypad, as with gloves
        qtbot.mouseClick(panel.keypad.findChild(QtWidgets.QPushButton, f"key_{digit}"), QtCore.Qt.MouseButton.LeftButton)
    qtbot.mouseClick(panel.button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not w.tasks.busy, timeout=10000)  # the PIN is checked off the GUI thread


def save_with_menu(qtbot, w, menu, message, path):
    """The window with ``menu`` open under its title and ``message`` in the status bar, as an image."""
    w.statusBar().showMessage(message)
    bar = w.menuBar()
    at = bar.mapTo(w, bar.actionGeometry(menu.menuAction()).bottomLeft())
    menu.popup(w.mapToGlobal(at))
    qtbot.waitUntil(menu.isVisible, timeout=2000)
    image = w.grab()
    painter = QtGui.QPainter(image)
    painter.drawPixmap(at, menu.grab())
    painter.end()
    menu.hide()
    w.activateWindow()  # the closed menu hands the keyboard back to the window (the keypad types into it)
    qtbot.waitUntil(lambda: QtWidgets.QApplication.activeWindow() is w, timeout=2000)
    assert image.save(path)


def tool(w, text):
    return next(a for a in w.tools_menu.actions() if a.text() == text)


def test_first_start_asks_for_the_first_admin_and_signs_them_in(qtbot, data_dir):
    w = open_window(qtbot, data_dir)
    lock = w.auth.lock_screen
    assert lock.isVisible() and lock.stack.currentWidget() is lock.first_admin
    assert lock.geometry() == w.rect()
    w.grab().save("/tmp/first_admin.png")
    p = lock.first_admin
    p.badge.setText("1")
    p.name.setText("Ada Admin")
    p.pin.setText("1234")
    p.pin2.setText("1235")
    qtbot.mouseClick(p.button, QtCore.Qt.MouseButton.LeftButton)
    assert "differ" in p.message.text() and lock.isVisible()
    p.pin.setText("1234")
    p.pin2.setText("1234")
    qtbot.mouseClick(p.button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not w.tasks.busy, timeout=10000)  # the PIN is hashed off the GUI thread
    assert not lock.isVisible() and w.auth.session.role == "admin"
    assert tool(w, "Export bundle…").isEnabled() and w.act_model.isEnabled()
    assert [e["action"] for e in audit.entries(data_dir)][-2:] == ["user_added", "sign_in"]
    w.close()


def test_an_operator_sees_engineer_and_technician_tools_disabled_with_the_reason(qtbot, data_dir, users):
    w = open_window(qtbot, data_dir)
    assert all(not tool(w, t).isEnabled() for t in ("Export bundle…", "Recalibrate…", "Tolerances…"))
    sign_in(qtbot, w, "200", "2000")
    assert not w.auth.lock_screen.isVisible() and w.auth.session.badge == "200"
    export, recal, tol = (tool(w, t) for t in ("Export bundle…", "Recalibrate…", "Tolerances…"))
    assert not export.isEnabled() and "needs the engineer role" in export.toolTip()
    assert "Otto Operator (operator)" in export.toolTip()
    assert not recal.isEnabled() and "needs the technician role" in recal.toolTip()
    assert not tol.isEnabled() and "engineer" in tol.toolTip()
    undeclared = tool(w, "Undeclared tool…")
    assert not undeclared.isEnabled() and "declares no permission" in undeclared.toolTip()
    assert not w.act_model.isEnabled() and not w.act_conf_up.isEnabled() and not w.act_open.isEnabled()
    assert not w.model_controls.isEnabled() and not w.chooser.isEnabled()
    assert w.act_confirm.isEnabled() and w.act_freeze.isEnabled() and w.review.isEnabled()
    assert w.review.operator.text() == "200" and w.review.operator.isReadOnly()
    # Its owner enabling it again does not get round the gate.
    export.setEnabled(True)
    assert not export.isEnabled()
    save_with_menu(qtbot, w, w.tools_menu, export.statusTip(), "/tmp/gated_window.png")
    # Shift change: a technician may recalibrate, not export; an engineer both.
    qtbot.keyClick(w, QtCore.Qt.Key.Key_U, QtCore.Qt.KeyboardModifier.ControlModifier
                   | QtCore.Qt.KeyboardModifier.ShiftModifier)
    assert w.auth.locked and w.auth.lock_screen.isVisible()
    sign_in(qtbot, w, "300", "3000")
    assert recal.isEnabled() and not export.isEnabled() and w.act_open.isEnabled() and not w.act_model.isEnabled()
    assert not undeclared.isEnabled()
    w.auth.switch_user()
    sign_in(qtbot, w, "400", "4000")
    assert export.isEnabled() and recal.isEnabled() and tol.isEnabled() and w.act_model.isEnabled()
    assert undeclared.isEnabled()
    assert "needs" not in export.toolTip() and export.toolTip().startswith("Export bundle")
    log = [(e["action"], e["user"]) for e in audit.entries(data_dir)]
    assert ("switch_user", "300") in log and ("switch_user", "400") in log and ("lock", "200") in log
    w.close()


def test_a_wrong_pin_is_refused_and_logged_and_repeated_ones_lock_the_badge(qtbot, data_dir, users):
    w = open_window(qtbot, data_dir)
    panel = w.auth.lock_screen.sign_in
    for i in range(4):
        sign_in(qtbot, w, "200", "9999")
        assert "wrong PIN" in panel.message.text() and w.auth.session is None
    sign_in(qtbot, w, "200", "9999")
    assert "now locked" in panel.message.text()
    sign_in(qtbot, w, "200", "2000")
    assert "locked" in panel.message.text() and w.auth.session is None and w.auth.lock_screen.isVisible()
    reasons = [e["reason"] for e in audit.entries(data_dir) if e["user"] == "200"]
    assert "wrong PIN (1 of 5)" in reasons and "account locked" in reasons
    w.auth.lock_screen.grab().save("/tmp/sign_in_refused.png")
    w.close()


def test_locked_window_ignores_its_shortcuts_and_idle_time_locks_it(qtbot, data_dir, users):
    w = open_window(qtbot, data_dir, autostart=True)
    qtbot.waitUntil(lambda: w.live.frames_shown >= 2, timeout=20000)
    qtbot.keyClick(w, QtCore.Qt.Key.Key_F)
    assert w.station.review.frozen is None  # nobody signed in: F does nothing
    sign_in(qtbot, w, "200", "2000")
    qtbot.keyClick(w, QtCore.Qt.Key.Key_L, QtCore.Qt.KeyboardModifier.ControlModifier)
    assert w.auth.locked and w.auth.lock_screen.sign_in.badge.text() == "200"
    qtbot.keyClick(w, QtCore.Qt.Key.Key_F)
    assert w.station.review.frozen is None
    sign_in(qtbot, w, "200", "2000")
    assert not w.auth.locked
    # A decision is the signed-in operator's, and its audit entry says so.
    qtbot.keyClick(w, QtCore.Qt.Key.Key_F)
    assert w.station.review.frozen is not None
    qtbot.keyClick(w, QtCore.Qt.Key.Key_U)
    qtbot.waitUntil(lambda: w.review.saved.text().startswith("Saved"), timeout=10000)
    # Idle: past the configured minutes without input, the window locks itself.
    w.auth.session.last_activity -= 16 * 60
    w.auth.check_idle()
    assert w.auth.locked and w.auth.lock_screen.isVisible()
    w.close()
    rows = list_decisions(data_dir)
    assert [(r["verdict"], r["operator"]) for r in rows] == [("unsure", "200")]
    entries = audit.entries(data_dir)
    assert any(e["action"] == "decision" and e["user"] == "200" and e["role"] == "operator" for e in entries)
    assert any(e["action"] == "lock" and e["reason"] == "idle for 15 minutes" for e in entries)
    assert ("unlock", "200") in [(e["action"], e["user"]) for e in entries]
    assert audit.verify(data_dir).ok


def test_a_critical_action_asks_for_the_pin_again_and_records_its_meaning(qtbot, data_dir, users):
    w = open_window(qtbot, data_dir)
    sign_in(qtbot, w, "400", "4000")
    assert not w.auth.sign("approved", "tolerance_changed", obj="focus", old=0.15, new=0.2, pin="1111")
    assert w.auth.sign("approved", "tolerance_changed", obj="focus", old=0.15, new=0.2, pin="4000")
    e = audit.entries(data_dir)
    assert (e[-1]["action"], e[-1]["meaning"], e[-1]["user"], e[-1]["new_value"]) == \
        ("tolerance_changed", "approved", "400", "0.2")
    assert any(x["action"] == "signature_failed" for x in e)

    # Through the dialog, as the model chooser does.
    def type_pin():
        dlg = QtWidgets.QApplication.activeModalWidget()
        assert dlg is not None and dlg.objectName() == "signatureDialog"
        dlg.grab().save("/tmp/signature_dialog.png")
        dlg.pin.setText("4000")
        dlg.accept()

    QtCore.QTimer.singleShot(200, type_pin)
    w.set_model("none")
    assert w.station.model.path == "none"
    e = audit.entries(data_dir)[-1]
    assert (e["action"], e["meaning"], e["new_value"]) == ("model_changed", "approved", "none")
    # A setting changed in the window is recorded once it stops moving.
    w.model_controls.confidence.setValue(0.62)
    w.model_controls.confidence.setValue(0.65)
    qtbot.waitUntil(lambda: audit.entries(data_dir)[-1]["action"] == "setting_changed", timeout=5000)
    e = audit.entries(data_dir)[-1]
    assert (e["object"], e["new_value"], e["user"]) == ("confidence threshold", "0.65", "400")
    w.close()


def test_sign_in_dialog_grab(qtbot, data_dir, users):
    w = open_window(qtbot, data_dir)
    panel = w.auth.lock_screen.sign_in
    panel.badge.setText("200")
    panel.pin.setText("20")
    w.grab().save("/tmp/sign_in.png")
    assert QtGui.QImage("/tmp/sign_in.png").width() == w.width()
    w.close()


def test_the_lock_screen_covers_the_docks_after_the_layout_is_restored(qtbot, data_dir, users):
    """Nothing of the window can be seen or clicked while it is locked, the docks included."""
    w = open_window(qtbot, data_dir, autostart=True)  # as the station starts: the line runs behind the lock
    w.restore_layout()  # what a start with a saved layout does after everything was built
    qtbot.waitUntil(lambda: w.station.pipeline is not None and w.station.pipeline.latest()[0] > 5, timeout=20000)
    qtbot.wait(200)
    lock = w.auth.lock_screen
    docks = [d for d in w.findChildren(QtWidgets.QDockWidget) if not d.visibleRegion().isEmpty()]
    assert docks
    for widget in [w.centralWidget(), *docks]:
        centre = widget.mapTo(w, widget.rect().center())
        assert w.rect().contains(centre)
        hit = w.childAt(centre)
        assert hit is lock or lock.isAncestorOf(hit), f"{widget.objectName()} shows through the lock screen"
