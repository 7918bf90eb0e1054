"""The numbered steps that build the station's database, oldest first.

Append only: a migration, once released, never changes, and it imports nothing that may change after it
(no feature module, no hashing code of today): what it needs is frozen inside it, so an old migration
writes the same rows on every version of the station. The next change to the schema is a new entry at the
end of :data:`MIGRATIONS`; ``PRAGMA user_version`` records how many have run (see ``db.upgrade``).
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Callable

import sqlite_utils


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


# --- migration 3, frozen: the audit trail's first entry as the station wrote it when the trail began.
# These copy the hashing rules of engine/security/audit.py at the time; they must never follow later changes.
_M3_GENESIS = "0" * 64
_M3_FIELDS = ("id", "time_utc", "wall", "mono", "boot", "station", "user", "user_name", "role", "action", "object",
              "old_value", "new_value", "reason", "meaning", "model_version", "prev_hash")


def _m3_canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _m3_boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _m3_legacy_decisions(db: sqlite_utils.Database) -> dict[str, Any]:
    """Count, last id and one SHA-256 over every decision made before the trail began."""
    cur = db.execute("SELECT * FROM decisions ORDER BY id")
    names = [c[0] for c in cur.description]
    hashes = {}
    for row in cur.fetchall():
        r = dict(zip(names, row))
        hashes[int(r["id"])] = hashlib.sha256(_m3_canonical(r).encode("utf-8")).hexdigest()
    combined = hashlib.sha256()
    for i in sorted(hashes):
        combined.update(f"{i}:{hashes[i]}\n".encode())
    return {"decisions": len(hashes), "last_decision_id": max(hashes, default=0),
            "decisions_sha256": combined.hexdigest()}


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
    # The first entry covers the decisions made before the trail began.
    wall = time.time()
    fields: dict[str, Any] = {
        "id": 1, "time_utc": datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "wall": wall,
        "mono": time.monotonic(), "boot": _m3_boot_id(), "station": "", "user": "", "user_name": "", "role": "",
        "action": "audit_started", "object": "audit trail", "old_value": None,
        "new_value": _m3_canonical(_m3_legacy_decisions(db)), "reason": "", "meaning": "", "model_version": "",
        "prev_hash": _M3_GENESIS}
    body = {k: fields[k] for k in _M3_FIELDS}
    fields["hash"] = hashlib.sha256((fields["prev_hash"] + _m3_canonical(body)).encode("utf-8")).hexdigest()
    cols = list(fields)
    db.execute(f"INSERT INTO audit_log ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
               [fields[c] for c in cols])


# Append only: a migration, once released, never changes; the next change is a new entry.
MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_m1_trends, _m2_feedback, _m3_users_audit]
