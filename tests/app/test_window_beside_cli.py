"""Commands run beside the window never take its database from under it.

SQLite's locks are POSIX advisory locks: they belong to the process, and closing any descriptor of the file in
that process drops them all. Then another process closing its last connection believes it is the database's
last user, checkpoints and deletes the ``-wal`` and ``-shm`` files the window still has open, and the
window's next writes fail or vanish. Real processes and a real SQLite file: the window (offscreen, pytest-qt)
on a data directory, the command line's ``users add`` and ``users list`` on the same directory beside it.
"""

import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest
from PySide6 import QtCore, QtWidgets

from app.gui.start import make_app
from app.gui.window import MainWindow
from engine.core.config import default_config
from engine.security.auth import AuthStore
from engine.storage.db import DB_NAME

BADGE, PIN = "100", "1234"
SOURCE = "sim://?seed=2&scenario=nominal&width=320&height=256&fps=30"


def _cli(data, *argv):
    env = {**os.environ, "INSPECTION_STATION_PIN": PIN, "INSPECTION_STATION_NEW_PIN": "4321"}
    r = subprocess.run([sys.executable, "-m", "app.cli", *argv, "--data-dir", str(data)], env=env,
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _database_fds(pid="self"):
    """Where this process's descriptors of the station's database files point ("... (deleted)" if unlinked)."""
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if DB_NAME in target:
            out.append(target)
    return out


def _commands_beside(data):
    for badge in ("201", "202", "203"):
        _cli(data, "--badge", BADGE, "users", "add", badge, "--role", "operator")
    listed = _cli(data, "--badge", BADGE, "users", "list")
    assert "203" in listed


def _entries_seen_by_another_process(data, action):
    """Audit entries of ``action``, as a separate process reads them from the file."""
    code = textwrap.dedent(f"""
        import sqlite3, sys
        con = sqlite3.connect({str(data / DB_NAME)!r})
        print(con.execute("SELECT count(*) FROM audit_log WHERE action = ?", [{action!r}]).fetchone()[0])
    """)
    return int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              timeout=60).stdout)


@pytest.fixture
def python_opens():
    """Every open() of the database files by Python code in this process (SQLite's own opens are not seen)."""
    seen = []
    armed = [True]

    def hook(event, args):
        if armed[0] and event in ("open", "os.open") and args and DB_NAME in str(args[0]):
            seen.append(str(args[0]))

    sys.addaudithook(hook)
    yield seen
    armed[0] = False  # an audit hook cannot be removed; it goes quiet


def _signed_in_window(qtbot, data_dir):
    """The window on a station with one admin, signed in at its lock screen as an operator would."""
    AuthStore(data_dir).add_user(BADGE, "Ada Admin", "admin", PIN, None)
    make_app()
    w = MainWindow(default_config(), data_dir, source=SOURCE, model="none", sign_in=True)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    panel = w.auth.lock_screen.sign_in
    panel.badge.setText(BADGE)
    panel.pin.setText(PIN)
    qtbot.mouseClick(panel.button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not w.auth.locked and not w.tasks.busy, timeout=20000)
    return w


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to see the window's open files")
def test_users_commands_beside_the_window_leave_its_database_whole(qtbot, data_dir, python_opens):
    w = _signed_in_window(qtbot, data_dir)
    panel = w.auth.lock_screen.sign_in
    try:

        # The engineer looks for a CSV in the data directory: the dialog lists station.sqlite and its -wal, -shm.
        listed = []

        def look_and_cancel():
            dlg = QtWidgets.QApplication.activeModalWidget()
            if not isinstance(dlg, QtWidgets.QFileDialog):
                QtCore.QTimer.singleShot(50, look_and_cancel)
                return
            model = dlg.findChild(QtWidgets.QFileSystemModel)
            index = model.index(str(data_dir / DB_NAME)) if model is not None else QtCore.QModelIndex()
            if not index.isValid() or not model.data(index, QtCore.Qt.ItemDataRole.DisplayRole):
                QtCore.QTimer.singleShot(50, look_and_cancel)
                return
            # Everything a view shows of the file: its name, icon and type, as a painted dialog asks for them.
            for col in range(model.columnCount()):
                i = index.siblingAtColumn(col)
                for role in (QtCore.Qt.ItemDataRole.DisplayRole, QtCore.Qt.ItemDataRole.DecorationRole):
                    model.data(i, role)
            listed.append(model.fileName(index))
            dlg.grab()  # painted once
            QtCore.QTimer.singleShot(300, dlg.reject)

        QtCore.QTimer.singleShot(0, look_and_cancel)
        w.agreement_tools.ask_csv()
        assert listed == [DB_NAME]

        assert not [t for t in _database_fds() if t.endswith("(deleted)")]
        _commands_beside(data_dir)
        fds = _database_fds()
        assert any(t.endswith(f"{DB_NAME}-wal") for t in fds), fds
        assert not [t for t in fds if t.endswith("(deleted)")], fds  # the window's WAL and SHM are still the files

        # A further write from the window lands in the file every other process reads.
        before = _entries_seen_by_another_process(data_dir, "lock")
        w.auth.act_lock.trigger()
        assert w.auth.locked and w.auth.lock_screen.isVisible()
        qtbot.waitUntil(lambda: not w.tasks.busy, timeout=20000)
        assert _entries_seen_by_another_process(data_dir, "lock") == before + 1
        assert "NOT saved" not in panel.message.text()
    finally:
        w.close()
    assert not python_opens, python_opens  # nothing in the window's process opened the database outside SQLite
    con = sqlite3.connect(data_dir / DB_NAME)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()


def test_ctrl_l_locks_even_when_the_database_fails_and_says_not_saved(qtbot, data_dir, monkeypatch):
    from engine.storage.db import DatabaseError

    w = _signed_in_window(qtbot, data_dir)
    panel = w.auth.lock_screen.sign_in
    try:
        assert w.auth.act_lock.isEnabled()

        def broken(*args, **kwargs):
            raise DatabaseError(f"{data_dir / DB_NAME} could not be read or written (disk I/O error)")

        monkeypatch.setattr(w.auth.store, "has_users", broken)
        monkeypatch.setattr(w.auth.store, "log", broken)
        w.auth.act_lock.trigger()  # Ctrl+L
        assert w.auth.locked and w.auth.lock_screen.isVisible()  # locked all the same, never half
        assert w.auth.lock_screen.stack.currentWidget() is panel
        assert w.auth.user_label.text() == "Locked" and not w.auth.act_lock.isEnabled()
        assert not w.station.permits("review")
        assert "cannot be read" in panel.note.text()
        qtbot.waitUntil(lambda: "NOT saved" in panel.message.text(), timeout=20000)
        assert "disk I/O error" in panel.message.text()
    finally:
        w.close()


MIMIC = textwrap.dedent('''
    """The window's engine, headless: its long-lived stores open, and every reader of the database by path that
    the window runs (sign-in, the audit trail, trends, stored frames, readiness, the doctor) run beside them."""
    import json, os, sys
    from pathlib import Path

    import numpy as np

    data = Path(sys.argv[1])
    python_opens = []
    sys.addaudithook(lambda event, args: python_opens.append(str(args[0]))
                     if event in ("open", "os.open") and args and "station.sqlite" in str(args[0]) else None)

    from engine.core.config import default_config
    from engine.core.frame import Box
    from engine.monitoring.trends import TrendStore, read_events, read_trend
    from engine.ops import doctor
    from engine.review.feedback import Decision, FeedbackStore, FrameForReview
    from engine.security import audit
    from engine.security.auth import AuthStore
    from engine.storage import queries
    from engine.storage.db import read

    store = FeedbackStore(data)
    trends = TrendStore(data, "ref")
    auth = AuthStore(data)
    seq = [0]

    def decide():
        seq[0] += 1
        img = np.full((32, 48, 3), seq[0], np.uint8)
        fr = FrameForReview(img, "sim:mimic", seq[0], 1000.0 + seq[0], (Box(2, 2, 9, 9, 0, "scratch", 0.9),))
        return store.submit(Decision(fr, "100", "confirm", detection=0)).result(60).review_id

    def readers():
        auth.has_users(); auth.list_users(); auth.user("100")
        auth.authenticate("100", "1234")
        auth.log("setting_changed", None, obj="probe")
        audit.verify(data); audit.entries(data, 5); audit.record_settings(data, default_config())
        read_trend(data); read_events(data)
        queries.decisions_with_frames(data); queries.frame_span(data); queries.newest_frame_id(data)
        read(data, "SELECT count(*) FROM decisions")
        doctor.check_databases(data); doctor.check_data_dir(data)

    decide()
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "readers":
            readers()
            print("done", flush=True)
        elif line.strip() == "check":
            fds = []
            for fd in os.listdir("/proc/self/fd"):
                try:
                    fds.append(os.readlink(f"/proc/self/fd/{fd}"))
                except OSError:
                    pass  # the descriptor listdir itself had open
            try:
                review_id, error = decide(), ""
            except Exception as e:  # the write after the commands: its failure is the finding
                review_id, error = "", f"{type(e).__name__}: {e}"
            print(json.dumps({"fds": [t for t in fds if "station.sqlite" in t], "review_id": review_id,
                              "error": error, "python_opens": python_opens}), flush=True)
            break
    trends.close()
    store.close()
''')


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to see the process's open files")
def test_the_engines_readers_beside_its_stores_keep_their_locks(data_dir):
    """No reader of the database in the window's engine opens the file outside SQLite (a second connection of
    the same SQLite in the same process is safe: SQLite keeps its descriptor open while another holds locks)."""
    import json

    AuthStore(data_dir).add_user(BADGE, "Ada Admin", "admin", PIN, None)
    mimic = subprocess.Popen([sys.executable, "-c", MIMIC, str(data_dir)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert mimic.stdout.readline().strip() == "ready"
        for _ in range(2):
            mimic.stdin.write("readers\n")
            mimic.stdin.flush()
            assert mimic.stdout.readline().strip() == "done"
            assert BADGE in _cli(data_dir, "--badge", BADGE, "users", "list")
        for badge in ("301", "302", "303"):
            _cli(data_dir, "--badge", BADGE, "users", "add", badge, "--role", "operator")
        mimic.stdin.write("check\n")
        mimic.stdin.flush()
        report = json.loads(mimic.stdout.readline())
        assert mimic.wait(60) == 0
    finally:
        if mimic.poll() is None:
            mimic.kill()
    assert not report["python_opens"], report["python_opens"]
    assert not report["error"]
    assert any(t.endswith(f"{DB_NAME}-wal") for t in report["fds"]), report["fds"]
    assert not [t for t in report["fds"] if t.endswith("(deleted)")], report["fds"]
    con = sqlite3.connect(data_dir / DB_NAME)  # the write after the commands is in the file others read
    try:
        assert con.execute("SELECT 1 FROM decisions WHERE review_id = ?", [report["review_id"]]).fetchone()
    finally:
        con.close()


def test_every_file_dialog_of_the_window_goes_through_the_one_that_never_reads_files():
    """Qt's static file dialogs (and the platform's) read the files they list; the window uses app.gui.files."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    offenders = []
    for folder in ("app", "widgets"):
        for path in (root / folder).rglob("*.py"):
            if path == root / "app" / "gui" / "files.py":
                continue
            text = path.read_text(encoding="utf-8")
            for needle in ("QFileDialog.get", "QFileDialog(", "QFileSystemModel("):
                if needle in text:
                    offenders.append(f"{path.relative_to(root)}: {needle}")
    assert not offenders, offenders
