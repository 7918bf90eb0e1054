"""Results from worker threads reach the GUI thread through a queue that the GUI thread drains on a timer.

A worker thread never calls into Qt, not even to emit a signal: it hands ``(callable, args)`` to
:meth:`Relay.post`, and the GUI thread calls them in order, at most ``interval_ms`` later. This is how the
main window already takes the pipeline's results (it polls), and it keeps every Qt call on one thread:
a PySide signal emitted from a Python thread enters Qt's locks while holding the interpreter lock, the
pattern behind the cross-thread deadlocks and crashes reported against PySide6.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Callable
from typing import Any

from PySide6 import QtCore


class Relay(QtCore.QObject):
    """Calls posted from any thread, made on the thread this object lives on (create it on the GUI thread)."""

    def __init__(self, parent: QtCore.QObject | None = None, interval_ms: int = 15) -> None:
        super().__init__(parent)
        self._calls: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]]] = queue.SimpleQueue()
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.drain)
        self._timer.start()

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        """Have ``fn(*args)`` called on the GUI thread (safe from any thread; never blocks)."""
        self._calls.put((fn, args))

    def drain(self) -> int:
        """Make every call posted so far (GUI thread); an exception in one is reported and the rest still run."""
        n = 0
        while True:
            try:
                fn, args = self._calls.get_nowait()
            except queue.Empty:
                return n
            n += 1
            try:
                fn(*args)
            except Exception:  # as Qt does for a slot: report, and deliver the rest
                sys.excepthook(*sys.exc_info())

    def stop(self) -> None:
        """No more deliveries (what is still queued is dropped)."""
        self._timer.stop()


class Worker(QtCore.QObject):
    """One job on a Python thread of its own, whose signals are emitted on the GUI thread.

    Subclasses implement :meth:`run` (on the worker thread) and report through :meth:`emit_later`;
    ``finished`` is emitted on the GUI thread after everything ``run`` reported, once the thread has ended.
    Create and start it on the GUI thread.
    """

    finished = QtCore.Signal()

    def __init__(self, name: str, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._name = name
        self._relay = Relay(self)
        self._thread: threading.Thread | None = None

    def run(self) -> None:  # pragma: no cover - every worker overrides it
        raise NotImplementedError

    def emit_later(self, signal: Any, *args: Any) -> None:
        """Emit ``signal(*args)`` on the GUI thread (call from :meth:`run`)."""
        self._relay.post(signal.emit, *args)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name=self._name, daemon=True)
        self._thread.start()

    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _main(self) -> None:
        try:
            self.run()
        finally:
            self._relay.post(self._ended)

    def _ended(self) -> None:
        if self._thread is not None:
            self._thread.join()  # run() has returned: at most a moment
        self._relay.stop()
        self.finished.emit()
