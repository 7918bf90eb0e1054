"""Liveness for systemd: the window tells the service manager it is up, alive, and stopping.

A timer on the main thread sends ``WATCHDOG=1`` at half the service's ``WatchdogSec``. The
timer fires only while the Qt event loop turns, so when the UI thread is stuck (a deadlock, a
call that never returns) the notifications stop and systemd restarts the station. Outside
systemd nothing is sent and no timer runs.
"""

from __future__ import annotations

import faulthandler
import sys

from PySide6 import QtCore, QtWidgets

from engine.ops import sdnotify


class ServiceNotifier(QtCore.QObject):
    """``READY=1`` once the event loop runs, ``WATCHDOG=1`` from a main-thread timer, ``STOPPING=1``
    when the application is about to quit."""

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("serviceNotifier")
        self.sent = 0
        self.stopped = False
        self.timer = QtCore.QTimer(self)
        self.timer.setObjectName("watchdogTimer")
        self.timer.timeout.connect(self.ping)
        interval = sdnotify.watchdog_interval_s()
        if interval is not None:
            self.timer.setInterval(max(1, int(interval * 1000)))

    @property
    def active(self) -> bool:
        return sdnotify.notify_socket_address() is not None

    def start(self) -> None:
        """Say READY=1 as soon as the event loop runs (the window is up), then keep the watchdog fed."""
        if not self.active:
            return
        # A watchdog kill sends SIGABRT: leave every thread's Python stack in the journal.
        if sys.stderr is not None and not faulthandler.is_enabled():
            faulthandler.enable()
        QtCore.QTimer.singleShot(0, self, self._ready)
        app = QtWidgets.QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.stopping)

    def _ready(self) -> None:
        sdnotify.notify("READY=1\nSTATUS=Window up")
        if sdnotify.watchdog_interval_s() is not None:
            self.ping()
            self.timer.start()

    def ping(self) -> None:
        if sdnotify.notify("WATCHDOG=1"):
            self.sent += 1

    def stopping(self) -> None:
        self.timer.stop()
        if not self.stopped:
            self.stopped = True
            sdnotify.notify("STOPPING=1\nSTATUS=Closing")


def attach_service_notifier(window: QtWidgets.QWidget) -> ServiceNotifier:
    """A started notifier for the station's ``window``. It belongs to the application, not the window
    (which is deleted when it closes), so that STOPPING=1 still goes out when the application quits."""
    notifier = ServiceNotifier(QtWidgets.QApplication.instance() or window)
    notifier.start()
    return notifier
