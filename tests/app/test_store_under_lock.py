"""Another program holding the station's database: every decision of a headless run ends acknowledged or
reported failed, never in neither count.

Real processes and a real SQLite file: a second process takes ``BEGIN EXCLUSIVE`` on the data directory's
database and holds it longer than the store's busy timeout (made short by ``[storage] busy_timeout_s`` in a
config file), while ``run --headless --auto-review`` writes decisions beside it.
"""

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from engine.storage.db import DB_NAME, connect

HOLDER = textwrap.dedent("""
    import sqlite3, sys
    con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
    con.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    sys.stdin.readline()  # held until the test says so (or its pipe closes)
    con.execute("COMMIT")
    con.close()
""")


def _config(tmp_path, busy, drain):
    path = tmp_path / "config.toml"
    path.write_text(f"[storage]\nbusy_timeout_s = {busy}\ndrain_timeout_s = {drain}\n")
    return path


def _data(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    connect(data / DB_NAME).conn.close()  # the schema exists before the lock is taken
    return data


def _hold(data):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(data / DB_NAME)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def _release(holder):
    if holder.poll() is None:
        holder.stdin.write("go\n")
        holder.stdin.flush()
        holder.stdin.close()
    assert holder.wait(30) == 0


def _run(tmp_path, data, config, frames=40):
    out = tmp_path / "out.jsonl"
    cmd = [sys.executable, "-m", "app.cli", "run", "--headless", "--source", "sim://?seed=1&width=320&height=256",
           "--model", "none", "--frames", str(frames), "--auto-review", "oracle:0.95,operator=lock",
           "--jsonl", str(out), "--data-dir", str(data), "--config", str(config)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), out


def _records(out):
    recs = []
    for line in out.read_text().splitlines() if out.exists() else ():
        try:
            recs.append(json.loads(line))
        except json.JSONDecodeError:
            pass  # a line being written
    return recs


def _stored(data):
    con = sqlite3.connect(data / DB_NAME)
    try:
        return {r[0] for r in con.execute("SELECT review_id FROM decisions")}
    finally:
        con.close()


def _check_accounts(proc, out, data):
    stdout, stderr = proc.communicate(timeout=240)
    recs = _records(out)
    summary = next(r for r in recs if r.get("type") == "summary")
    reviews = summary["reviews"]
    acked = [r["review_id"] for r in recs if r.get("type") == "review_ack"]
    failed = [r["review_id"] for r in recs if r.get("type") == "review_failed"]
    assert reviews["submitted"] > 0
    assert reviews["submitted"] == reviews["acknowledged"] + reviews["failed"], reviews
    assert len(acked) == reviews["acknowledged"] and len(failed) == reviews["failed"]
    assert len(set(acked) | set(failed)) == reviews["submitted"]  # each decision answered once
    assert sum(reviews["failures"].values()) == reviews["failed"]
    assert proc.returncode == 3, stderr  # a run with decisions not stored does not end as a success
    errors = [line for line in stderr.splitlines() if "not stored" in line]
    assert len(errors) == len(reviews["failures"]), stderr  # one line per reason, not one per decision
    assert f"{reviews['failed']} of {reviews['submitted']}" in stderr or len(errors) > 1
    return reviews, set(acked), set(failed), stderr


def test_a_lock_held_past_the_end_of_the_run_fails_every_decision_in_the_counts(tmp_path):
    data = _data(tmp_path)
    config = _config(tmp_path, busy=0.3, drain=1.0)
    holder = _hold(data)
    try:
        proc, out = _run(tmp_path, data, config)
        reviews, acked, failed, stderr = _check_accounts(proc, out, data)
    finally:
        _release(holder)
    assert reviews["acknowledged"] == 0 and reviews["failed"] == reviews["submitted"]
    reasons = " ".join(reviews["failures"])
    assert "locked by another program" in reasons  # the writer's own attempts, and what was left at the end
    assert not _stored(data)  # nothing failed was written after all


def test_a_lock_released_during_the_run_leaves_every_decision_acknowledged_or_failed(tmp_path):
    data = _data(tmp_path)
    config = _config(tmp_path, busy=0.3, drain=120)
    holder = _hold(data)
    try:
        proc, out = _run(tmp_path, data, config, frames=60)
        deadline = time.monotonic() + 120
        # Hold until the writer has given up on two decisions, then let it through.
        while sum(r.get("type") == "review_failed" for r in _records(out)) < 2:
            assert proc.poll() is None or time.monotonic() < deadline, "no decision failed under the lock"
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    finally:
        _release(holder)
    reviews, acked, failed, stderr = _check_accounts(proc, out, data)
    assert reviews["failed"] >= 2 and reviews["acknowledged"] > 0
    assert _stored(data) == acked  # exactly what was acknowledged is stored


@pytest.mark.parametrize("busy", [0.0, -1])
def test_the_busy_timeout_is_a_setting_with_a_range(tmp_path, busy):
    data = tmp_path / "data"
    config = _config(tmp_path, busy=busy, drain=1.0)
    r = subprocess.run([sys.executable, "-m", "app.cli", "run", "--headless", "--source", "sim://?seed=1",
                        "--frames", "1", "--model", "none", "--data-dir", str(data), "--config", str(config)],
                       capture_output=True, text=True, timeout=120, env={**os.environ})
    assert r.returncode == 2 and "storage.busy_timeout_s" in r.stderr


def test_the_window_says_not_saved_for_each_decision_the_lock_kept_out(qtbot, tmp_path):
    import copy

    from PySide6 import QtCore

    from app.gui.start import make_app
    from app.gui.window import MainWindow
    from engine.core.config import default_config

    data = _data(tmp_path)
    config = copy.deepcopy(default_config())
    config["storage"]["busy_timeout_s"] = 0.3
    make_app()
    w = MainWindow(config, data, source="sim://?seed=2&scenario=nominal&width=320&height=256&fps=30")
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    try:
        qtbot.waitUntil(lambda: w.live.frames_shown >= 2, timeout=20000)
        holder = _hold(data)
        try:
            failed = []
            w.station.review.changed.connect(lambda what, detail: failed.append(detail) if what == "failed" else None)
            for _ in range(2):  # two frames, one decision each, both kept out by the lock
                qtbot.keyClick(w, QtCore.Qt.Key.Key_F)
                seq = w.station.review.frame.sequence
                qtbot.keyClick(w, QtCore.Qt.Key.Key_U)
                qtbot.waitUntil(lambda: w.review.saved.text().startswith(
                    f"NOT saved: frame {seq}, flagged frame {seq} unsure"), timeout=20000)
                assert "locked by another program" in w.review.saved.text()
                qtbot.keyClick(w, QtCore.Qt.Key.Key_F)  # back to live
            assert len(failed) == 2 and failed[0] != failed[1]
        finally:
            _release(holder)
        qtbot.keyClick(w, QtCore.Qt.Key.Key_F)
        qtbot.keyClick(w, QtCore.Qt.Key.Key_U)  # the lock is gone: stored again
        qtbot.waitUntil(lambda: w.review.saved.text().startswith("Saved"), timeout=20000)
    finally:
        w.close()
    assert len(_stored(data)) == 1


def test_a_full_disk_is_one_line_per_reason_and_a_failing_exit_status(tmp_path, monkeypatch, capsys):
    import errno

    from app.cli import main
    from engine.review.feedback import FeedbackStore

    def full(self, image):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(FeedbackStore, "_write_image", full)
    out = tmp_path / "out.jsonl"
    rc = main(["run", "--headless", "--source", "sim://?seed=1&width=320&height=256", "--model", "none",
               "--frames", "40", "--auto-review", "oracle:0.95,operator=full", "--jsonl", str(out),
               "--data-dir", str(tmp_path / "data")])
    err = capsys.readouterr().err
    reviews = next(r for r in _records(out) if r.get("type") == "summary")["reviews"]
    assert rc == 3
    assert reviews["submitted"] > 1 and reviews["failed"] == reviews["submitted"] and not reviews["acknowledged"]
    lines = [line for line in err.splitlines() if "not stored" in line]
    assert len(lines) == 1, err  # not one line per decision
    assert f"{reviews['submitted']} of {reviews['submitted']} decisions not stored: the disk holding" in lines[0]
