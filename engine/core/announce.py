"""Change announcements without Qt: a list of callbacks that model objects emit and views connect to."""

from __future__ import annotations

import sys
import threading
from typing import Any, Callable


class Announcer:
    """A list of callbacks: ``connect(fn)``, ``disconnect(fn)``, ``emit(*args)`` (thread-safe).

    A callback that raises is reported through ``sys.excepthook`` and the others still run: a listener's bug
    must not stop the line whose worker thread may be the one announcing."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._callbacks: list[Callable[..., Any]] = []
        self._lock = threading.Lock()

    def connect(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        with self._lock:
            self._callbacks.append(fn)
        return fn

    def disconnect(self, fn: Callable[..., Any]) -> None:
        with self._lock:
            if fn in self._callbacks:
                self._callbacks.remove(fn)

    def emit(self, *args: Any) -> None:
        with self._lock:
            callbacks = list(self._callbacks)
        for fn in callbacks:
            try:
                fn(*args)
            except Exception:
                sys.excepthook(*sys.exc_info())
