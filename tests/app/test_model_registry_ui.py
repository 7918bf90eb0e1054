"""The running window follows the registry's champion without a restart: promoted from the Models dock (signed by
an engineer) or from the command line beside it. Real window (pytest-qt, offscreen), real models, real SQLite."""

import json

from PySide6 import QtCore

from app.gui.start import make_app
from app.gui.window import MainWindow
from engine.core.config import default_config
from engine.inference import registry
from engine.security import audit
from engine.security.auth import AuthStore
from tests.model_files import perturbed_model
from tests.station_windows import BADGE, PIN, open_window

SOURCE = "sim://?seed=2&scenario=nominal&width=320&height=256&fps=30"


def _window(qtbot, data_dir, users=True):
    w = open_window(qtbot, data_dir, SOURCE, users)
    qtbot.waitUntil(lambda: "tiny-centernet" in w.station.model_name, timeout=60000)
    return w


def _shown(w):
    return w.model_controls.label.text()


def test_promoting_in_the_models_dock_swaps_the_running_model_without_a_restart(qtbot, data_dir, tmp_path):
    entry, _ = registry.add(data_dir, perturbed_model(tmp_path, "dock-challenger"))
    w = _window(qtbot, data_dir)
    qtbot.waitUntil(lambda: any(r["name"] == entry.name for r in w.models.panel.rows), timeout=20000)
    assert "tiny-centernet-defects" in _shown(w)
    w.models.promote(entry.name, pin=PIN)
    qtbot.waitUntil(lambda: "dock-challenger" in _shown(w), timeout=60000)
    assert w.station.model.path == registry.champion_path(data_dir)
    signed = [e for e in audit.entries(data_dir) if e["action"] == "model_promoted"]
    assert signed and json.loads(signed[-1]["new_value"])["sha256"] == entry.sha256
    assert signed[-1]["user"] == BADGE and signed[-1]["meaning"] == "approved"
    w.models.rollback(pin=PIN)  # and back: the built-in model runs again
    qtbot.waitUntil(lambda: "dock-challenger" not in _shown(w) and "tiny-centernet-defects" in _shown(w),
                    timeout=60000)
    assert registry.champion(data_dir).name == registry.BUILTIN
    w.close()


def test_a_champion_promoted_beside_the_window_is_picked_up_and_one_that_fails_leaves_the_model(qtbot, data_dir,
                                                                                             tmp_path):
    good, _ = registry.add(data_dir, perturbed_model(tmp_path, "cli-challenger"))
    w = _window(qtbot, data_dir, users=False)
    registry.promote(data_dir, good.name)  # as `model promote` in another process does
    qtbot.waitUntil(lambda: "cli-challenger" in _shown(w), timeout=60000)
    bad, _ = registry.add(data_dir, perturbed_model(tmp_path, "broken", shift=1.0))
    bad.path.write_bytes(b"PK not a model any more")  # damaged after it was registered
    registry.promote(data_dir, bad.name)
    qtbot.waitUntil(lambda: "does not match its model card" in _events(w), timeout=30000)
    assert "the current model goes on running" in _events(w)
    assert "cli-challenger" in _shown(w)  # the failing champion never replaced the running model
    w.close()


def test_an_operator_cannot_promote_from_the_dock(qtbot, data_dir, tmp_path):
    role = "operator"
    entry, _ = registry.add(data_dir, perturbed_model(tmp_path, "not-allowed"))
    AuthStore(data_dir).add_user(BADGE, "Ada Admin", "admin", PIN, None)
    admin = AuthStore(data_dir).authenticate(BADGE, PIN)
    AuthStore(data_dir).add_user("200", "Otto Operator", role, "5678", admin)
    make_app()
    w = MainWindow(default_config(), data_dir, source=SOURCE, model="none", sign_in=True)
    qtbot.addWidget(w)
    panel = w.auth.lock_screen.sign_in
    panel.badge.setText("200")
    panel.pin.setText("5678")
    qtbot.mouseClick(panel.button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not w.auth.locked and bool(w.models.panel.rows), timeout=20000)
    assert not w.models.panel.buttons.isEnabled()  # the dock's buttons are greyed out for an operator
    assert "engineer" in w.models.panel.buttons.toolTip()
    w.models.promote(entry.name, pin="5678")  # and the action itself refuses
    qtbot.waitUntil(lambda: not w.tasks.busy, timeout=20000)
    assert registry.champion(data_dir).name == registry.BUILTIN
    assert "needs the engineer role; Otto Operator is signed in as operator" in _events(w)
    w.close()


def _events(w):
    t = w.events
    return "\n".join(t.item(i).text() for i in range(t.count()))
