"""Calls posted from worker threads are made on the GUI thread, in order, and one failing call stops none."""

from __future__ import annotations

import threading

from app.gui.start import make_app
from app.gui.tasks import Relay


def test_calls_from_workers_run_on_the_gui_thread_in_order(qtbot):
    make_app()
    relay = Relay()
    seen: list[tuple[int, int, str]] = []

    def record(worker: int, i: int) -> None:
        seen.append((worker, i, threading.current_thread().name))

    def work(worker: int) -> None:
        for i in range(200):
            relay.post(record, worker, i)

    threads = [threading.Thread(target=work, args=(w,), name=f"worker-{w}") for w in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == []  # nothing runs on the posting threads
    qtbot.waitUntil(lambda: len(seen) == 600, timeout=5000)
    assert {name for _, _, name in seen} == {threading.main_thread().name}
    for w in range(3):
        assert [i for worker, i, _ in seen if worker == w] == list(range(200))


def test_a_failing_call_is_reported_and_the_rest_are_made(qtbot):
    make_app()
    relay = Relay()
    relay.stop()  # drained by hand here
    made: list[int] = []

    def fail() -> None:
        raise ValueError("broken slot")

    relay.post(made.append, 1)
    relay.post(fail)
    relay.post(made.append, 2)
    with qtbot.capture_exceptions() as raised:
        assert relay.drain() == 3
    assert made == [1, 2]
    assert len(raised) == 1 and isinstance(raised[0][1], ValueError)
    assert relay.drain() == 0


def test_a_worker_reports_on_the_gui_thread_and_finishes_last(qtbot):
    from PySide6 import QtCore

    from app.gui.tasks import Worker

    make_app()

    class Counting(Worker):
        step = QtCore.Signal(int)
        result = QtCore.Signal(object)

        def run(self) -> None:
            for i in range(50):
                self.emit_later(self.step, i)
            self.emit_later(self.result, threading.current_thread().name)

    events: list[tuple[str, object, str, bool]] = []
    w = Counting("report-test")
    w.step.connect(lambda i: events.append(("step", i, threading.current_thread().name, w.is_running())))
    w.result.connect(lambda name: events.append(("result", name, threading.current_thread().name, w.is_running())))
    w.finished.connect(lambda: events.append(("finished", None, threading.current_thread().name, w.is_running())))
    with qtbot.waitSignal(w.finished, timeout=5000):
        w.start()
    assert [e[1] for e in events if e[0] == "step"] == list(range(50))
    assert events[-2][:2] == ("result", "report-test")  # run() ran on its own thread...
    assert events[-1][0] == "finished" and events[-1][3] is False  # ...which has ended when finished comes
    assert {e[2] for e in events} == {threading.main_thread().name}  # every signal on the GUI thread
