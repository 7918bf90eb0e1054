"""The window feeds systemd's watchdog from its event loop, through a real notification socket."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import shiboken6
from PySide6 import QtCore

from app.gui.start import make_app
from app.gui.window import MainWindow
from app.gui.watchdog import ServiceNotifier, attach_service_notifier
from engine.core.config import default_config

SOURCE = "sim://?seed=1&scenario=nominal&width=160&height=128&fps=30"


class Receiver:
    """A systemd stand-in: a bound AF_UNIX datagram socket; a thread stamps each message on arrival."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.05)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="notify-receiver", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append((time.monotonic(), data.decode()))

    def times(self, text: str) -> list[float]:
        return [t for t, m in list(self.messages) if text in m.split("\n")]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    path = str(tmp_path / "notify.sock")
    r = Receiver(path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "100000")  # WatchdogSec=0.1: a ping every 50 ms
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    yield r
    r.close()


def test_watchdog_pings_stop_while_the_ui_thread_is_blocked_and_resume_after(qtbot, data_dir, notify_socket, request):
    make_app()
    window = MainWindow(default_config(), data_dir, source=SOURCE)
    qtbot.addWidget(window)
    window.show()
    notifier = attach_service_notifier(window)
    # However this test ends, its notifier stops: a live one would ping into the next test's socket.
    request.addfinalizer(lambda: shiboken6.isValid(notifier) and notifier.timer.stop())
    assert notifier.timer.interval() == 50 and notifier.timer.thread() is QtCore.QThread.currentThread()

    qtbot.waitUntil(lambda: len(notify_socket.times("READY=1")) == 1, timeout=5000)
    qtbot.waitUntil(lambda: len(notify_socket.times("WATCHDOG=1")) >= 5, timeout=5000)

    blocked: list[float] = []

    def hang() -> None:  # a slot that never yields to the event loop for 1 s
        blocked.append(time.monotonic())
        time.sleep(1.0)
        blocked.append(time.monotonic())

    QtCore.QTimer.singleShot(0, hang)
    qtbot.waitUntil(lambda: len(blocked) == 2, timeout=5000)
    start, end = blocked
    # Pings resume once the UI thread is free again (however long it then takes to catch up on its other work).
    qtbot.waitUntil(lambda: len([t for t in notify_socket.times("WATCHDOG=1") if t >= end]) >= 3, timeout=10000)

    pings = notify_socket.times("WATCHDOG=1")
    # Times are of receipt: a ping sent just before the hang may arrive late on a busy machine. A UI thread that
    # kept pinging would still send 15 in the remaining 0.8 s.
    during = [t for t in pings if start + 0.2 < t < end]
    assert during == [], f"{len(during)} watchdog pings while the UI thread was blocked"
    before = [t for t in pings if t <= start]
    after = [t for t in pings if t >= end]
    assert len(before) >= 5 and len(after) >= 3  # fed before the hang, and again after it
    assert max(b - a for a, b in zip(pings, pings[1:])) >= 0.9  # the gap systemd would see

    app = QtCore.QCoreApplication.instance()
    app.aboutToQuit.emit()  # what app.exec() does on the way out
    qtbot.waitUntil(lambda: bool(notify_socket.times("STOPPING=1")), timeout=2000)
    n = len(notify_socket.times("WATCHDOG=1"))
    qtbot.wait(200)
    assert len(notify_socket.times("WATCHDOG=1")) == n  # no pings after STOPPING
    app.aboutToQuit.disconnect(notifier.stopping)
    notifier.deleteLater()


def test_without_systemd_nothing_is_sent_and_no_timer_runs(qtbot, monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    make_app()
    n = ServiceNotifier()
    n.start()
    qtbot.wait(50)
    assert not n.active and not n.timer.isActive() and n.sent == 0


def test_ready_without_watchdog_when_no_watchdog_sec(qtbot, notify_socket, monkeypatch):
    monkeypatch.delenv("WATCHDOG_USEC")
    make_app()
    n = ServiceNotifier()
    n.start()
    qtbot.waitUntil(lambda: bool(notify_socket.times("READY=1")), timeout=2000)
    qtbot.wait(100)
    assert not n.timer.isActive() and notify_socket.times("WATCHDOG=1") == []
    QtCore.QCoreApplication.instance().aboutToQuit.disconnect(n.stopping)
