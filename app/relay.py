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
