"""Helpers for tests that drive the real window: a window on a data folder, signed in as its first admin when
asked, and a real feedback bundle from an auto-reviewed run on the aged lamp."""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtCore

BADGE, PIN = "100", "1234"
# Aged lamp (slot 129600 at 20 s a slot is day 30), frames 20 s of line time apart: each its own block, so every
# split has frames.
AGED_SIM = "sim://?seed=11&scenario=lighting-aging&start=129600&dt=20"


def open_window(qtbot, data_dir: Path, source: str, users: bool = True):
    """The main window on ``source``, shown; with ``users``, an admin (BADGE, PIN) is added and signed in."""
    from app.gui.start import make_app
    from app.gui.window import MainWindow
    from engine.core.config import default_config
    from engine.security.auth import AuthStore

    if users:
        AuthStore(data_dir).add_user(BADGE, "Ada Admin", "admin", PIN, None)
    make_app()
    w = MainWindow(default_config(), data_dir, source=source, sign_in=users)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    if users:
        panel = w.auth.lock_screen.sign_in
        panel.badge.setText(BADGE)
        panel.pin.setText(PIN)
        qtbot.mouseClick(panel.button, QtCore.Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: not w.auth.locked, timeout=20000)
    return w


def aged_bundle(root: Path) -> Path:
    """A feedback bundle exported after a 24-frame run on the aged lamp, reviewed by a simulated operator."""
    from app.cli import main
    from engine.datasets.bundle import ExportOptions, export_bundle

    data = root / "data"
    assert main(["--data-dir", str(data), "run", "--headless", "--source", AGED_SIM, "--frames", "24",
                 "--auto-review", "oracle:0.9,operator=ann"]) == 0
    return export_bundle(data, root / "bundle", ExportOptions(replay_share=0.1), "st").path
