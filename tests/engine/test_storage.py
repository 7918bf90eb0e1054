"""The storage boundary: one way to open the database, one owner of the image files, one error root."""

import ast
import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import app.cli
import engine
from engine.core.errors import StationError
from engine.security import audit
from engine.storage import migrations, queries
from engine.storage.db import DB_NAME, DatabaseError, connect, read
from engine.storage.images import ImageStore


def test_every_connection_is_wal_with_full_sync_and_a_busy_timeout(tmp_path):
    db = connect(tmp_path / DB_NAME)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert db.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
    finally:
        db.conn.close()


def test_sqlite_refusing_a_write_is_one_sentence_naming_the_file(tmp_path):
    db = connect(tmp_path / DB_NAME)
    try:
        db.execute("PRAGMA query_only = ON")  # SQLite itself answers SQLITE_READONLY from here on
        with pytest.raises(DatabaseError, match="read-only.*attempt to write a readonly database") as e:
            db.execute("INSERT INTO station_events (time, kind, detail) VALUES (1, 'x', 'y')")
        assert str(tmp_path / DB_NAME) in str(e.value)
    finally:
        db.conn.close()


def test_a_file_without_write_permission_is_refused_before_sqlite_writes_to_it(tmp_path):
    connect(tmp_path / DB_NAME).conn.close()
    before = (tmp_path / DB_NAME).read_bytes()
    (tmp_path / DB_NAME).chmod(0o444)
    with pytest.raises(DatabaseError, match="read-only"):
        read(tmp_path, "SELECT 1")
    assert (tmp_path / DB_NAME).read_bytes() == before


def test_errors_in_the_sql_itself_are_not_taken_for_a_damaged_file(tmp_path):
    import sqlite3

    db = connect(tmp_path / DB_NAME)
    try:
        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            db.execute("SELECT * FROM nothing_here")
    finally:
        db.conn.close()


def test_images_live_under_their_hash_and_are_swept_after_a_crash(tmp_path):
    store = ImageStore(tmp_path)
    sha = store.put(b"png bytes")
    assert store.path(sha) == tmp_path / "images" / sha[:2] / f"{sha}.png"
    assert store.read(sha) == b"png bytes" and store.has(sha)
    assert store.put(b"png bytes") == sha  # the same content is stored once
    stray = store.put(b"no row names me")
    (store.path(sha).parent / f".{sha}.png.1.tmp").write_bytes(b"half")
    assert store.sweep({sha}) == (1, 1)
    assert store.has(sha) and not store.has(stray)
    assert store.missing([sha, stray]) == [stray]
    assert store.load(stray) is None


def test_no_module_outside_the_image_store_spells_its_layout():
    root = Path(engine.__file__).parent.parent
    offenders = []
    for path in [*root.joinpath("engine").rglob("*.py"), *root.joinpath("app", "cli").rglob("*.py")]:
        if path.name == "images.py" and path.parent.name == "storage":
            continue
        text = path.read_text(encoding="utf-8")
        if "sha[:2]" in text or "sha256[:2]" in text or '"images" /' in text:
            offenders.append(str(path.relative_to(root)))
    assert offenders == []


def test_migrations_import_no_feature_code():
    tree = ast.parse(inspect.getsource(migrations))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m and m.split(".")[0] in ("engine", "app", "widgets")}
    # Opening the database loads nothing of the audit trail: no import circle between the two.
    code = ("import sys, engine.storage.db; "
            "print(any(m.startswith('engine.security') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_frozen_first_audit_entry_verifies_with_todays_code(tmp_path):
    connect(tmp_path / DB_NAME).conn.close()
    first = audit.entries(tmp_path)[0]
    assert first["action"] == "audit_started" and first["prev_hash"] == audit.GENESIS
    assert audit.entry_hash(first) == first["hash"]
    assert audit.verify(tmp_path).ok


def test_shared_queries_give_no_rows_without_a_database(tmp_path):
    assert queries.decisions_with_frames(tmp_path) == []
    assert queries.detection_verdicts(tmp_path) == []
    assert queries.frames_in_period(tmp_path) == []
    assert queries.frame(tmp_path, 1) is None
    assert queries.newest_frame_id(tmp_path) is None
    assert queries.frame_span(tmp_path) is None
    connect(tmp_path / DB_NAME).conn.close()
    assert queries.newest_frame_id(tmp_path) == 0


def _error_classes():
    for pkg in (engine, app.cli):
        for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            if ".kernels" in info.name or info.name.endswith("__main__"):
                continue
            module = importlib.import_module(info.name)
            for name, obj in vars(module).items():
                if (inspect.isclass(obj) and issubclass(obj, Exception) and obj.__module__ == module.__name__
                        and name.endswith("Error")):
                    yield obj


def test_every_error_a_user_can_fix_is_a_station_error():
    classes = set(_error_classes())
    assert len(classes) >= 14
    assert [c.__qualname__ for c in classes if not issubclass(c, StationError)] == []
    assert str(StationError("the camera is not connected")) == "the camera is not connected"


def test_the_feedback_writer_reports_a_refused_write_as_a_sentence_and_goes_on(tmp_path):
    from engine.core.frame import Box
    from engine.review.feedback import Ack, Decision, FeedbackError, FeedbackStore, FrameForReview

    def decision(seq):
        img = np.random.default_rng(seq).integers(0, 255, (32, 40, 3), dtype=np.uint8)
        fr = FrameForReview(img, "sim:test", seq, 1000.0 + seq, (Box(2, 2, 9, 9, 0, "scratch", 0.8),))
        return Decision(fr, "ana", "confirm", detection=0)

    store = FeedbackStore(tmp_path)
    try:
        store._db.execute("PRAGMA query_only = ON")  # SQLite refuses every write: SQLITE_READONLY
        with pytest.raises(FeedbackError, match="read-only.*attempt to write a readonly database"):
            store.submit(decision(1)).result(10)
        store._db.execute("PRAGMA query_only = OFF")
        assert isinstance(store.submit(decision(2)).result(10), Ack)
    finally:
        store.close()


def test_another_programs_database_is_named_as_such(tmp_path):
    import sqlite3

    con = sqlite3.connect(tmp_path / DB_NAME)
    con.execute("CREATE TABLE recipes (name TEXT)")
    con.commit()
    con.close()
    with pytest.raises(DatabaseError, match="is not a station database"):
        read(tmp_path, "SELECT * FROM frames")
    (tmp_path / DB_NAME).unlink()
    (tmp_path / DB_NAME).touch()  # an empty file is an empty store
    assert read(tmp_path, "SELECT * FROM frames") == []
