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

    from app.gui.tasks import TaskRunner, Worker

    make_app()
    runner = TaskRunner()

    class Counting(Worker):
        step = QtCore.Signal(int)
        result = QtCore.Signal(object)

        def run(self) -> None:
            for i in range(50):
                self.emit_later(self.step, i)
            self.emit_later(self.result, threading.current_thread().name)

    events: list[tuple[str, object, str, bool]] = []
    w = Counting("report-test", runner)
    w.step.connect(lambda i: events.append(("step", i, threading.current_thread().name, w.is_running())))
    w.result.connect(lambda name: events.append(("result", name, threading.current_thread().name, w.is_running())))
    w.finished.connect(lambda: events.append(("finished", None, threading.current_thread().name, w.is_running())))
    with qtbot.waitSignal(w.finished, timeout=5000):
        w.start()
    assert [e[1] for e in events if e[0] == "step"] == list(range(50))
    assert events[-2][:2] == ("result", "report-test")  # run() ran on its own thread...
    assert events[-1][0] == "finished" and events[-1][3] is False  # ...which has ended when finished comes
    assert {e[2] for e in events} == {threading.main_thread().name}  # every signal on the GUI thread
    runner.shutdown()


def test_the_runner_runs_jobs_off_the_gui_thread_with_one_success_and_one_failure_path(qtbot):
    from app.gui.tasks import TaskRunner

    make_app()
    runner = TaskRunner()
    done: list[tuple[object, str]] = []
    failed: list[tuple[str, str]] = []

    def job(x: int) -> tuple[int, str]:
        return x * 2, threading.current_thread().name

    def broken() -> None:
        raise ValueError("the disk is gone")

    runner.run(job, 21, on_done=lambda r: done.append((r, threading.current_thread().name)))
    runner.run(broken, on_error=lambda e: failed.append((str(e), threading.current_thread().name)))
    seen: list[BaseException] = []
    runner.on_error = seen.append  # a job without a failure path of its own
    runner.run(broken)
    assert runner.busy
    qtbot.waitUntil(lambda: not runner.busy, timeout=5000)
    ((value, worker_thread), gui_thread), = done
    assert value == 42 and worker_thread != threading.main_thread().name and gui_thread == threading.main_thread().name
    assert failed == [("the disk is gone", threading.main_thread().name)]
    assert [str(e) for e in seen] == ["the disk is gone"]
    calls: list[str] = []
    deliver = runner.deliver(lambda x: calls.append(f"{x} on {threading.current_thread().name}"))
    t = threading.Thread(target=deliver, args=("ack",), name="feedback-writer-test")
    t.start()
    t.join()
    assert calls == []
    qtbot.waitUntil(lambda: calls == [f"ack on {threading.main_thread().name}"], timeout=5000)
    runner.shutdown()
