"""Python's garbage collector runs only on the GUI thread.

A reference cycle that holds a Qt object, collected on a worker thread, deletes the C++ object there: its
destructor takes Qt's object mutex and then waits for the GIL, while the GUI thread, holding the GIL, waits for
that mutex, and the window freezes for good (seen when the pipeline thread, loading a model, collected a closed
window's menu). So once the application exists the automatic collector is switched off, and a timer on the GUI
thread collects each generation when its count passes Python's own threshold, as the automatic collector would,
but only ever on this thread.
"""

from __future__ import annotations

import gc

from PySide6 import QtCore

INTERVAL_MS = 500

_collector: GuiThreadCollector | None = None


class GuiThreadCollector(QtCore.QObject):
    def __init__(self, parent: QtCore.QObject | None = None, interval_ms: int = INTERVAL_MS) -> None:
        super().__init__(parent)
        self.threshold = gc.get_threshold()
        gc.disable()
        self.timer = QtCore.QTimer(self)
        self.timer.timeout.connect(self.check)
        self.timer.start(interval_ms)

    def check(self) -> None:
        """Collect the generations whose counts passed their thresholds (the youngest first, as Python does)."""
        n0, n1, n2 = gc.get_count()
        t0, t1, t2 = self.threshold
        if n0 > t0:
            gc.collect(0)
            if n1 > t1:
                gc.collect(1)
                if n2 > t2:
                    gc.collect(2)


def collect_on_gui_thread(app: QtCore.QObject) -> GuiThreadCollector:
    """Install the collector once for the application ``app`` (idempotent)."""
    global _collector
    if _collector is None:
        _collector = GuiThreadCollector(app)
    return _collector
