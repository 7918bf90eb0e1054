"""The station's SQLite database: one file in the data directory, opened the same way everywhere.

Every connection runs in WAL mode with ``synchronous=FULL`` and foreign keys on. The schema grows
by numbered migrations recorded in ``PRAGMA user_version``; each runs in its own transaction,
so a crash leaves the database at the last complete step.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Callable

import sqlite_utils

from engine.core.errors import StationError

DB_NAME = "station.sqlite"


class DatabaseError(StationError, RuntimeError):
    """The database cannot be opened or upgraded; one sentence."""


def _m1_trends(db: sqlite_utils.Database) -> None:
    db.execute("""CREATE TABLE trend_minutes (
        minute INTEGER NOT NULL,          -- start of the minute, seconds since the epoch (source clock)
        metric TEXT NOT NULL,
        n INTEGER NOT NULL,               -- batches aggregated
        mean REAL NOT NULL, min REAL NOT NULL, max REAL NOT NULL,
        level TEXT NOT NULL,              -- worst level seen in the minute
        reference_id TEXT NOT NULL,
        PRIMARY KEY (minute, metric, reference_id))""")
    db.execute("""CREATE TABLE drift_alarms (
        id INTEGER PRIMARY KEY, time REAL NOT NULL, metric TEXT NOT NULL, level TEXT NOT NULL,
        message TEXT NOT NULL, reference_id TEXT NOT NULL)""")
    db.execute("""CREATE TABLE station_events (
        id INTEGER PRIMARY KEY, time REAL NOT NULL, kind TEXT NOT NULL, detail TEXT NOT NULL)""")
    db.execute("CREATE INDEX drift_alarms_time ON drift_alarms(time)")
    db.execute("CREATE INDEX station_events_time ON station_events(time)")


def _m2_feedback(db: sqlite_utils.Database) -> None:
    db.execute("""CREATE TABLE images (
        sha256 TEXT PRIMARY KEY,          -- of the PNG file's bytes; the file is images/<2 hex>/<sha256>.png
        width INTEGER NOT NULL, height INTEGER NOT NULL, bytes INTEGER NOT NULL, created REAL NOT NULL)""")
    db.execute("""CREATE TABLE frames (
        id INTEGER PRIMARY KEY,
        image_sha256 TEXT NOT NULL REFERENCES images(sha256),
        source TEXT NOT NULL, sequence INTEGER NOT NULL, timestamp REAL NOT NULL,
        model TEXT, device TEXT, reference_id TEXT,
        detections TEXT NOT NULL,         -- JSON: the model's boxes as shown to the operator
        stats TEXT NOT NULL,              -- JSON: the frame's statistics
        ground_truth TEXT,                -- JSON, simulated sources only
        queue_reason TEXT,                -- why it was put before an operator, if it was
        kept_as TEXT NOT NULL DEFAULT 'reviewed',  -- reviewed | sample
        created REAL NOT NULL,
        UNIQUE (source, sequence, timestamp))""")
    db.execute("""CREATE TABLE decisions (
        id INTEGER PRIMARY KEY,
        review_id TEXT NOT NULL UNIQUE,
        frame_id INTEGER NOT NULL REFERENCES frames(id),
        operator TEXT NOT NULL,
        time_utc REAL NOT NULL,
        verdict TEXT NOT NULL CHECK (verdict IN ('confirm', 'reject', 'reclass', 'missed', 'unsure', 'undo')),
        detection INTEGER,                -- index into the frame's detections, if about one
        old_class TEXT, new_class TEXT, old_box TEXT, new_box TEXT,
        score REAL, model TEXT, reference_id TEXT, queue_reason TEXT,
        undoes INTEGER REFERENCES decisions(id),
        origin TEXT NOT NULL DEFAULT 'operator')   -- operator | oracle | qc""")
    db.execute("CREATE INDEX decisions_frame ON decisions(frame_id)")
    db.execute("CREATE INDEX decisions_time ON decisions(time_utc)")
    db.execute("CREATE INDEX frames_kept ON frames(kept_as, created)")


def _m3_users_audit(db: sqlite_utils.Database) -> None:
    """Users and the append-only, hash-chained audit trail (see engine/security/auth.py and engine/security/audit.py)."""
    db.execute("""CREATE TABLE users (
        badge TEXT PRIMARY KEY, name TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('operator', 'technician', 'engineer', 'admin')),
        salt TEXT NOT NULL, pin_hash TEXT NOT NULL,   -- scrypt of the PIN with this salt and these costs
        scrypt_n INTEGER NOT NULL, scrypt_r INTEGER NOT NULL, scrypt_p INTEGER NOT NULL,
        active INTEGER NOT NULL DEFAULT 1, failures INTEGER NOT NULL DEFAULT 0,
        locked_until REAL NOT NULL DEFAULT 0, created REAL NOT NULL, created_by TEXT NOT NULL)""")
    db.execute("""CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time_utc TEXT NOT NULL, wall REAL NOT NULL, mono REAL NOT NULL, boot TEXT NOT NULL, station TEXT NOT NULL,
        user TEXT NOT NULL, user_name TEXT NOT NULL, role TEXT NOT NULL,
        action TEXT NOT NULL, object TEXT NOT NULL, old_value TEXT, new_value TEXT,
        reason TEXT NOT NULL, meaning TEXT NOT NULL, model_version TEXT NOT NULL,
        prev_hash TEXT NOT NULL, hash TEXT NOT NULL)""")
    db.execute("""CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END""")
    db.execute("""CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END""")
    from engine.security import audit  # the first entry covers the decisions made before the trail began

    audit.append(db, "audit_started", obj="audit trail", new=audit.legacy_decisions(db))


# Append only: a migration, once released, never changes; the next change is a new entry.
MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_m1_trends, _m2_feedback, _m3_users_audit]


def connect(path: Path, migrate: bool = True) -> sqlite_utils.Database:
    """Open (and if asked, upgrade) the database at ``path``."""
    try:
        conn = sqlite3.connect(str(path), timeout=10.0, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
    except sqlite3.Error as e:
        raise DatabaseError(f"database {path} cannot be opened: {e}") from None
    db = sqlite_utils.Database(conn)
    if migrate:
        upgrade(db, path)
    return db


def schema_version(db: sqlite_utils.Database) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def upgrade(db: sqlite_utils.Database, path: Path | str = "") -> None:
    current = schema_version(db)
    if current > len(MIGRATIONS):
        raise DatabaseError(f"database {path} is from a newer version of the station (schema {current})")
    for number in range(current + 1, len(MIGRATIONS) + 1):
        try:
            db.execute("BEGIN IMMEDIATE")
            MIGRATIONS[number - 1](db)
            db.execute(f"PRAGMA user_version = {number}")
            db.execute("COMMIT")
        except sqlite3.Error as e:
            db.execute("ROLLBACK")
            raise DatabaseError(f"database {path} could not be upgraded to schema {number}: {e}") from None


def read(data_dir: Path, sql: str, args: list[Any] | tuple = ()) -> list[dict[str, Any]]:
    """Rows of one query on the data directory's database, on a connection of its own; none if there is
    no database yet."""
    path = Path(data_dir) / DB_NAME
    if not path.exists():
        return []
    db = connect(path, migrate=False)
    try:
        return [dict(r) for r in db.query(sql, args)]
    finally:
        db.conn.close()
