"""The garbage collector runs on the GUI thread only: a cycle holding a Qt object collected on a worker thread can
deadlock the window (the worker deletes the C++ object under Qt's mutex and waits for the GIL held by the GUI
thread, which waits for that mutex)."""

import gc
import threading

from app.gui.start import make_app


class _Cycle:
    def __init__(self, seen: list) -> None:
        self.me = self
        self.seen = seen

    def __del__(self) -> None:
        self.seen.append(threading.current_thread().name)


def test_cycles_are_collected_on_the_gui_thread_and_never_on_a_worker(qtbot):
    make_app()
    assert not gc.isenabled()
    seen: list = []
    junk: list = []

    def worker() -> None:
        _Cycle(seen)  # garbage from here on
        junk.extend([i] for i in range(200_000))  # kept: past the threshold that starts the automatic collector

    t = threading.Thread(target=worker, name="worker")
    t.start()
    t.join()
    assert seen == []  # the worker never collected
    qtbot.waitUntil(lambda: bool(seen), timeout=5000)
    assert seen == ["MainThread"]
