"""The window's one way back to the GUI thread: a queue that one GUI-thread timer drains.

A worker thread never calls into Qt, not even to emit a signal: it hands ``(callable, args)`` to
:meth:`Relay.post`, and the GUI thread calls them in order, at most ``interval_ms`` later. A PySide signal
emitted from a Python thread enters Qt's locks while holding the interpreter lock, the pattern behind the
cross-thread deadlocks and crashes reported against PySide6.

The window owns one :class:`TaskRunner` (``window.tasks``). Everything that comes back from another thread goes
through it: the station's worker-thread announcements (:meth:`TaskRunner.deliver`), the feedback store's
acknowledgements, the feature controllers' workers (:class:`Worker` and their own threads post here), and the
background jobs it runs itself (:meth:`TaskRunner.run`: trend history, the frame a re-review opens, sign-in),
each with one success path and one failure path. Drawing the newest camera frame is not a result channel: the
window's display timer reads the pipeline's newest result at the display's rate (see ``app.gui.display``).
"""

from __future__ import annotations

import concurrent.futures as cf
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
        self._timer.setObjectName("taskRunnerTimer")
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


class TaskRunner(Relay):
    """The one runner of a window: deliveries from any thread, and background jobs with one result path.

    Jobs run one after another on one worker thread (``workers``), in the order they were asked for, so that
    the station's small disk jobs (audit entries, sign-in, history) keep their order, as Anki's task manager
    serializes its collection work. ``on_error`` (GUI thread) hears every job's exception that has no
    ``on_error`` of its own; the window shows ``str(exc)``."""

    def __init__(self, parent: QtCore.QObject | None = None, interval_ms: int = 15, workers: int = 1) -> None:
        super().__init__(parent, interval_ms)
        self._pool = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="task")
        self._lock = threading.Lock()
        self._jobs = 0
        self.on_error: Callable[[BaseException], None] = lambda e: sys.stderr.write(f"{e}\n")

    def deliver(self, fn: Callable[..., Any]) -> Callable[..., None]:
        """``fn`` made callable from any thread: each call is made later, on the GUI thread."""
        def posted(*args: Any) -> None:
            self.post(fn, *args)

        return posted

    def run(self, job: Callable[..., Any], *args: Any, on_done: Callable[[Any], None] | None = None,
            on_error: Callable[[BaseException], None] | None = None, **kwargs: Any) -> cf.Future:
        """Run ``job(*args, **kwargs)`` on a worker thread; ``on_done(result)`` or ``on_error(exc)`` on the GUI
        thread afterwards."""
        with self._lock:
            self._jobs += 1

        def work() -> Any:
            try:
                result = job(*args, **kwargs)
            except Exception as e:
                self.post(self._finish, on_error or self.on_error, e)
                raise
            self.post(self._finish, on_done, result)
            return result

        return self._pool.submit(work)

    def _finish(self, fn: Callable[[Any], None] | None, value: Any) -> None:
        with self._lock:
            self._jobs -= 1
        if fn is not None:
            fn(value)

    @property
    def busy(self) -> bool:
        """True while a job runs or its result has not been delivered yet."""
        with self._lock:
            return self._jobs > 0

    def shutdown(self) -> None:
        """Wait for the running jobs, deliver what they posted, and stop."""
        self._pool.shutdown(wait=True)
        self.drain()
        self.stop()


class Worker(QtCore.QObject):
    """One job on a Python thread of its own, whose signals are emitted on the GUI thread by the runner.

    Subclasses implement :meth:`run` (on the worker thread) and report through :meth:`emit_later`;
    ``finished`` is emitted on the GUI thread after everything ``run`` reported, once the thread has ended.
    Create and start it on the GUI thread.
    """

    finished = QtCore.Signal()

    def __init__(self, name: str, runner: Relay, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._name = name
        self._runner = runner
        self._thread: threading.Thread | None = None

    def run(self) -> None:  # pragma: no cover - every worker overrides it
        raise NotImplementedError

    def emit_later(self, signal: Any, *args: Any) -> None:
        """Emit ``signal(*args)`` on the GUI thread (call from :meth:`run`)."""
        self._runner.post(signal.emit, *args)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name=self._name, daemon=True)
        self._thread.start()

    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _main(self) -> None:
        try:
            self.run()
        finally:
            self._runner.post(self._ended)

    def _ended(self) -> None:
        if self._thread is not None:
            self._thread.join()  # run() has returned: at most a moment
        self.finished.emit()
