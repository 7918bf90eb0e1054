"""Starting the window: Qt is imported here and only here, when a window is wanted."""

from __future__ import annotations

import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any

import resources


def make_app() -> Any:
    import pyqtgraph as pg
    from PySide6 import QtGui, QtWidgets

    pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("Inspection Station")
    app.setOrganizationName("Inspection Station")
    app.setDesktopFileName("inspection-station")
    app.setWindowIcon(QtGui.QIcon(str(resources.path("inspection-station.svg"))))
    from app.gui.collector import collect_on_gui_thread

    collect_on_gui_thread(app)  # a cycle holding a Qt object collected on a worker thread can freeze the window
    return app


def _record_settings(config: dict[str, Any], data_dir: Path) -> None:
    """Settings edited in the config file since the last start go into the audit trail before the window opens."""
    from engine.security import audit
    from engine.core.config import station_id
    from engine.storage.db import DatabaseError

    try:
        audit.record_settings(data_dir, config, station_id(config))
    except (DatabaseError, OSError, sqlite3.Error) as e:  # the window says more; this must not stop it
        print(f"inspection-station: the settings could not be recorded in the audit trail: {e}", file=sys.stderr)


def run_gui(config: dict[str, Any], data_dir: Path, source: str | None = None, model: str | None = None,
            confidence: float | None = None) -> int:
    app = make_app()
    from app.gui.window import MainWindow
    from app.gui.watchdog import attach_service_notifier

    # The window opens covered by the lock screen (first start: the first administrator's form) unless
    # [security] require_sign_in is false; the line runs behind it and systemd hears READY as usual.
    sign_in = bool(config.get("security", {}).get("require_sign_in", True))
    _record_settings(config, data_dir)
    window = MainWindow(config, data_dir, source=source, model=model, confidence=confidence, sign_in=sign_in)
    window.show()
    attach_service_notifier(window)  # READY/WATCHDOG/STOPPING to systemd when run as a service
    # Ctrl+C in the terminal closes the window cleanly instead of being swallowed by the event loop.
    signal.signal(signal.SIGINT, lambda *_: window.close())
    return app.exec()
