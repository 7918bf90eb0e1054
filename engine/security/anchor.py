"""Anchors: the audit chain's head, kept outside the database, so that a rewritten trail no longer passes.

The hash chain of :mod:`engine.security.audit` finds an entry edited in place, but whoever can write
``station.sqlite`` can also rewrite the whole trail: drop the triggers, delete the last entries (and the decisions
they record), fix ``sqlite_sequence``; or edit a decision and recompute every hash after it with the station's own
code. The chain is then consistent again. An anchor defeats that: the head of the chain (entries, last id, its
hash, its time, the station) copied somewhere the database's writer cannot reach. :func:`check` compares the
trail with anchors: when the entry an anchor names is gone the trail was cut short; when it is there with another
hash, the trail was re-chained at or before it.

Copies of the head go to a file (``inspection-station audit anchor --out FILE``, JSON, written atomically), to the
system journal when there is one (the journald socket; ``systemd-cat`` otherwise; silently nothing on a machine
without either), into every bundle's ``manifest.json`` and into the footer of every report.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

from engine.core.errors import StationError
from engine.core.files import write_atomic
from engine.security import audit
from engine.security.audit import ANCHOR_FORMAT as FORMAT
from engine.security.audit import ANCHOR_FORMAT_VERSION as FORMAT_VERSION
from engine.security.audit import Head, head, head_of
from engine.storage.db import DB_NAME, connect

__all__ = ["FORMAT", "FORMAT_VERSION", "AnchorError", "Head", "check", "head", "head_of", "journal", "load", "stamp",
           "verify", "write"]
JOURNAL_SOCKET = Path("/run/systemd/journal/socket")
JOURNAL_STDOUT = Path("/run/systemd/journal/stdout")  # what systemd-cat writes to
IDENTIFIER = "inspection-station"


class AnchorError(StationError):
    """An anchor file cannot be read or is not an anchor; one sentence naming it."""


def stamp(data_dir: Path, station: str = "") -> dict[str, Any] | None:
    """The head as a bundle's manifest or a report carries it (None: no trail yet), copied to the journal."""
    h = head(data_dir, station)
    if h is None:
        return None
    journal(h)
    return h.to_dict()


# ---------------------------------------------------------------------------- copies outside the database


def write(path: Path, h: Head) -> Path:
    """The head as a JSON file, written through a temporary file, fsynced and renamed."""
    return write_atomic(Path(path), json.dumps(h.to_dict(), indent=1, sort_keys=True) + "\n")


def journal(h: Head) -> str:
    """Send the head to the system journal; where it went ("journald", "systemd-cat"), or "" when this machine
    has no journal (nothing is said then: a bench PC or a container has none, and that is no error)."""
    message = h.line()
    fields = {"MESSAGE": message, "SYSLOG_IDENTIFIER": IDENTIFIER, "PRIORITY": "6",
              "AUDIT_HEAD_ENTRIES": str(h.entries), "AUDIT_HEAD_ID": str(h.last_id), "AUDIT_HEAD_HASH": h.hash,
              "AUDIT_HEAD_TIME": h.last_time_utc, "STATION_ID": h.station_id}
    if JOURNAL_SOCKET.exists():
        data = "".join(f"{k}={v.replace(chr(10), ' ')}\n" for k, v in fields.items()).encode("utf-8")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                s.sendto(data, str(JOURNAL_SOCKET))
            return "journald"
        except OSError:
            pass
    cat = shutil.which("systemd-cat")
    if cat and JOURNAL_STDOUT.exists():
        try:
            r = subprocess.run([cat, "-t", IDENTIFIER, "-p", "info"], input=message, text=True, timeout=5,
                               capture_output=True, check=False)
            if r.returncode == 0:
                return "systemd-cat"
        except (OSError, subprocess.SubprocessError):
            pass
    return ""


def load(path: Path) -> Head:
    """An anchor file read back; :class:`AnchorError` (one sentence naming it) when it is not one."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AnchorError(f"anchor file {path} does not exist") from None
    except OSError as e:
        raise AnchorError(f"anchor file {path} cannot be read ({e.strerror or e})") from None
    except (ValueError, UnicodeDecodeError):
        raise AnchorError(f"anchor file {path} is not JSON") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise AnchorError(f"{path} is not an audit anchor (its format is not {FORMAT!r})")
    if data.get("format_version") != FORMAT_VERSION:
        raise AnchorError(f"anchor file {path} is of format version {data.get('format_version')!r}, which this "
                          f"station does not read (it reads {FORMAT_VERSION})")
    try:
        h = Head(int(data["entries"]), int(data["last_id"]), str(data["hash"]), str(data["last_time_utc"]),
                 str(data.get("station_id", "")), str(data.get("anchored_utc", "")))
    except (KeyError, TypeError, ValueError):
        raise AnchorError(f"anchor file {path} lacks the head's entries, last id, hash or time") from None
    if h.last_id < 1 or len(h.hash) != 64 or any(c not in "0123456789abcdef" for c in h.hash):
        raise AnchorError(f"anchor file {path} holds no valid head (last id {h.last_id}, hash {h.hash[:70]!r})")
    return h


# ---------------------------------------------------------------------------- verification


def check(db: Any, anchors: list[tuple[str, Head]]) -> audit.Verdict | None:
    """The first divergence between the trail in ``db`` and the anchors (each with the name it is known by), as
    a broken :class:`audit.Verdict`; None when the trail still holds every anchored head."""
    if not anchors:
        return None
    ids = sorted({h.last_id for _, h in anchors})
    marks = ",".join("?" * len(ids))
    held = {int(r[0]): str(r[1]) for r in db.execute(f"SELECT id, hash FROM {audit.TABLE} WHERE id IN ({marks})",
                                                     ids).fetchall()}
    last = db.execute(f"SELECT max(id), count(*) FROM {audit.TABLE}").fetchone()
    last_id, entries = int(last[0] or 0), int(last[1])
    for name, h in sorted(anchors, key=lambda a: a[1].last_id):
        when = f", taken {h.anchored_utc}," if h.anchored_utc else ""
        got = held.get(h.last_id)
        if got is None:
            return audit.Verdict(False, entries, last_id + 1,
                                 f"cut short after entry {last_id} (anchor {name}{when} holds entry {h.last_id} "
                                 f"of {h.entries}, which the trail no longer has)")
        if got != h.hash:
            return audit.Verdict(False, entries, h.last_id,
                                 f"re-chained at or before entry {h.last_id} (its hash is {got[:16]}, anchor "
                                 f"{name}{when} holds {h.hash[:16]})")
    return None


def verify(data_dir: Path, anchors: list[tuple[str, Head]]) -> audit.Verdict:
    """:func:`audit.verify`, then every anchor: the first thing broken, or the intact verdict."""
    path = Path(data_dir) / DB_NAME
    if not path.exists():
        v = audit.Verdict(True, 0)
        if anchors:
            first = min(anchors, key=lambda a: a[1].last_id)
            return audit.Verdict(False, 0, 1, f"cut short after entry 0 (there is no {DB_NAME} in {data_dir}, and "
                                              f"anchor {first[0]} holds entry {first[1].last_id})")
        return v
    db = connect(path, migrate=False)
    try:
        v = audit.verify_db(db)
        if not v.ok:
            return v
        return check(db, anchors) or v
    finally:
        db.conn.close()
