"""The audit trail: who did what, when and why, in a table nobody can quietly edit.

Every entry is a row of ``audit_log`` (created by migration ``_m3_users_audit``): user, role, UTC time,
action, object, old and new value, reason, the meaning of a signature, the model version. Triggers reject
UPDATE and DELETE on the table, and each entry carries a hash chain: its ``hash`` is the SHA-256 of its
previous entry's hash and a canonical JSON of its own fields. Whoever edits the file by other means
(dropping the triggers, a hex editor) breaks the chain at that entry, which :func:`verify` names.

Operator decisions are covered too: when the feedback store commits a decision it appends, in the same
transaction, an entry whose new value holds the SHA-256 of the decision row (:func:`decision_hash`);
``verify`` recomputes those from the ``decisions`` table, so an edited or removed decision fails as well.
Decisions that existed before the audit trail began are covered by the hash over all of them that the
first entry records (written by migration 3, which keeps its own frozen copy of these hashing rules).

Clock jumps: each entry keeps the wall clock, ``time.monotonic()`` and the boot id. When the wall clock
moved by more (or less) than the monotonic clock since the previous entry of the same boot, or went
backwards, a ``clock_jump`` entry is written before the new one.

The chain alone cannot catch a rewrite of the whole trail by someone who can write the file (cut the tail and
fix ``sqlite_sequence``, or edit and re-hash every entry after the edit): :func:`head` gives the chain's head, and
:mod:`engine.security.anchor` keeps copies of it outside the database and checks the trail against them.

Appending never opens its own transaction: :func:`append` runs inside the caller's (``BEGIN IMMEDIATE``),
so an entry is durable together with the change it records, and concurrent writers queue on SQLite's lock.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.core.errors import StationError
from engine.storage.db import DB_NAME, DatabaseError, connect
from engine.core.files import write_atomic

GENESIS = "0" * 64
TABLE = "audit_log"
# Columns hashed, in this order; ``hash`` itself is not among them.
FIELDS = ("id", "time_utc", "wall", "mono", "boot", "station", "user", "user_name", "role", "action", "object",
          "old_value", "new_value", "reason", "meaning", "model_version", "prev_hash")
CLOCK_JUMP_S = 120.0  # wall clock against monotonic clock, between two entries of one boot
BACKWARDS_S = 1.0  # the wall clock going back by more than this between entries is a jump


class AuditError(StationError):
    """The audit trail cannot be read or written; one sentence."""


def canonical(value: Any) -> str:
    """The one JSON text of a value that every hash is taken over (sorted keys, no spaces, UTF-8)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def entry_hash(fields: dict[str, Any]) -> str:
    """SHA-256 over the previous hash and the canonical JSON of an entry's fields."""
    body = {k: fields.get(k) for k in FIELDS}
    return hashlib.sha256((str(fields.get("prev_hash")) + canonical(body)).encode("utf-8")).hexdigest()


def decision_hash(row: dict[str, Any]) -> str:
    """SHA-256 of a decision row's content (every column)."""
    return hashlib.sha256(canonical(dict(row)).encode("utf-8")).hexdigest()


def decision_row(db: Any, decision_id: int) -> dict[str, Any] | None:
    cur = db.execute("SELECT * FROM decisions WHERE id = ?", [decision_id])
    r = cur.fetchone()
    if r is None:
        return None
    return dict(zip([c[0] for c in cur.description], r))


def utc_text(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def boot_id() -> str:
    """This boot of the computer (Linux: the kernel's boot id); monotonic times compare only within one."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else canonical(value)


def append(db: Any, action: str, *, user: str = "", user_name: str = "", role: str = "", obj: str = "",
           old: Any = None, new: Any = None, reason: str = "", meaning: str = "", model_version: str = "",
           station: str = "", now: float | None = None, mono: float | None = None) -> int:
    """Append one entry inside the caller's open transaction; its id.

    ``old`` and ``new`` are stored as given when text, else as canonical JSON. ``now`` and ``mono`` (the
    wall and monotonic clocks) are for tests; by default the real clocks are read.
    """
    wall = time.time() if now is None else float(now)
    mono_now = time.monotonic() if mono is None else float(mono)
    boot = boot_id()
    last = db.execute(f"SELECT id, hash, wall, mono, boot, station FROM {TABLE} ORDER BY id DESC LIMIT 1").fetchone()
    if last is not None:
        station = station or last[5] or ""
        jump = _clock_jump(last[2], last[3], last[4], wall, mono_now, boot)
        if jump is not None:
            _insert(db, last, "clock_jump", wall, mono_now, boot, station, obj="wall clock", old=utc_text(last[2]),
                    new=utc_text(wall), reason=jump)
            last = db.execute(f"SELECT id, hash, wall, mono, boot, station FROM {TABLE} ORDER BY id DESC LIMIT 1"
                              ).fetchone()
    return _insert(db, last, action, wall, mono_now, boot, station, user=user, user_name=user_name, role=role,
                   obj=obj, old=_text(old), new=_text(new), reason=reason, meaning=meaning,
                   model_version=model_version or "")


def _clock_jump(last_wall: float, last_mono: float, last_boot: str, wall: float, mono: float,
                boot: str) -> str | None:
    if wall < last_wall - BACKWARDS_S:
        return f"the wall clock went back {last_wall - wall:.1f} s since the previous entry"
    if boot and boot == last_boot and mono >= last_mono:
        skew = (wall - last_wall) - (mono - last_mono)
        if abs(skew) > CLOCK_JUMP_S:
            return (f"the wall clock moved {skew:+.1f} s against the monotonic clock since the previous entry "
                    f"({wall - last_wall:.1f} s by the wall clock, {mono - last_mono:.1f} s elapsed)")
    return None


def _insert(db: Any, last: Any, action: str, wall: float, mono: float, boot: str, station: str, *,
            user: str = "", user_name: str = "", role: str = "", obj: str = "", old: str | None = None,
            new: str | None = None, reason: str = "", meaning: str = "", model_version: str = "") -> int:
    # AUTOINCREMENT: the next id is one past the largest ever used (sqlite_sequence), even if rows vanished.
    seq = db.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", [TABLE]).fetchone()
    next_id = (int(seq[0]) if seq is not None else 0) + 1
    fields = {"id": next_id, "time_utc": utc_text(wall), "wall": wall, "mono": mono, "boot": boot,
              "station": station, "user": user, "user_name": user_name, "role": role, "action": action,
              "object": obj, "old_value": old, "new_value": new, "reason": reason, "meaning": meaning,
              "model_version": model_version, "prev_hash": last[1] if last is not None else GENESIS}
    fields["hash"] = entry_hash(fields)
    cols = list(fields)
    db.execute(f"INSERT INTO {TABLE} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
               [fields[c] for c in cols])
    return next_id


def record(data_dir: Path, action: str, **kw: Any) -> int:
    """Append one entry in a transaction of its own (for changes that touch no other table)."""
    db = connect(Path(data_dir) / DB_NAME)
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            entry = append(db, action, **kw)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return entry
    finally:
        db.conn.close()


def record_decision(db: Any, decision_id: int, operator: str, model: str | None = None) -> int:
    """The audit entry of a decision row just inserted, in the same transaction: who, what, and the SHA-256 of
    the row as stored. Whatever inserts into ``decisions`` calls this, or ``verify`` reports the row."""
    row = decision_row(db, decision_id) or {}
    role = db.execute("SELECT role FROM users WHERE badge = ?", [operator]).fetchone()
    return append(db, "decision", user=operator, role=role[0] if role else "", obj=f"decision {decision_id}",
                  new={"decision_id": decision_id, "review_id": row.get("review_id"), "verdict": row.get("verdict"),
                       "decision_sha256": decision_hash(row)},
                  meaning="reviewed", model_version=model or "", reason=row.get("queue_reason") or "")


def _combined(ids_hashes: dict[int, str]) -> str:
    h = hashlib.sha256()
    for i in sorted(ids_hashes):
        h.update(f"{i}:{ids_hashes[i]}\n".encode())
    return h.hexdigest()


def _rows(db: Any, sql: str, args: Iterable[Any] = ()) -> list[dict[str, Any]]:
    cur = db.execute(sql, list(args))
    names = [c[0] for c in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


# ---------------------------------------------------------------------------- verification


@dataclass(frozen=True)
class Verdict:
    """The outcome of :func:`verify`: ``ok``, entries checked, and the first broken entry and why."""

    ok: bool
    entries: int
    broken_id: int | None = None
    reason: str = ""
    head: str = GENESIS

    def sentence(self) -> str:
        if self.ok:
            return f"audit trail intact: {self.entries} entries, chain head {self.head[:16]}"
        return f"audit trail broken at entry {self.broken_id}: {self.reason}"


def verify(data_dir: Path) -> Verdict:
    """Check the chain entry by entry, and every decision against the hash recorded for it."""
    path = Path(data_dir) / DB_NAME
    if not path.exists():
        return Verdict(True, 0)
    db = connect(path, migrate=False)
    try:
        return verify_db(db)
    finally:
        db.conn.close()


def verify_db(db: Any) -> Verdict:
    try:
        rows = _rows(db, f"SELECT * FROM {TABLE} ORDER BY id")
    except DatabaseError:
        raise  # the file itself is unusable: that is no verdict on the trail
    except Exception as e:  # noqa: BLE001 - a missing or unreadable table is a verdict, not a crash
        return Verdict(False, 0, 1, f"the audit table cannot be read ({e})")
    prev_hash, prev_id = GENESIS, 0
    covered: dict[int, tuple[int, str]] = {}  # decision id -> (entry id, hash recorded)
    pruned: dict[int, str] = {}
    legacy: dict[str, Any] | None = None
    legacy_entry = 0
    for r in rows:
        rid = r["id"]
        if rid != prev_id + 1:
            return Verdict(False, len(rows), prev_id + 1, f"entry {prev_id + 1} is missing (the next one is {rid})")
        if r["prev_hash"] != prev_hash:
            return Verdict(False, len(rows), rid, "its link to the previous entry does not match (an entry before it "
                                                  "was changed, removed or inserted)")
        if entry_hash(r) != r["hash"]:
            return Verdict(False, len(rows), rid, "its content does not match its hash (the entry was changed)")
        new = _json(r["new_value"])
        if r["action"] == "audit_started" and isinstance(new, dict):
            legacy, legacy_entry = new, rid
        elif r["action"] == "decision" and isinstance(new, dict) and "decision_id" in new:
            covered[int(new["decision_id"])] = (rid, str(new.get("decision_sha256")))
        elif r["action"] == "decisions_pruned" and isinstance(new, dict):
            pruned.update({int(k): v for k, v in new.get("decisions", {}).items()})
        prev_hash, prev_id = r["hash"], rid
    seq = db.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", [TABLE]).fetchone()
    if seq is not None and int(seq[0]) > prev_id:
        return Verdict(False, len(rows), prev_id + 1, f"entries {prev_id + 1} to {int(seq[0])} were removed from the "
                                                      "end of the trail")
    try:
        decisions = {int(d["id"]): decision_hash(d) for d in _rows(db, "SELECT * FROM decisions ORDER BY id")}
    except DatabaseError:
        raise
    except Exception:  # noqa: BLE001 - a station without a feedback store has no decisions table to check
        decisions = {}
    # The first broken entry is the smallest entry id among all decision problems.
    problems: list[tuple[int, str]] = []
    for did, (entry, recorded) in covered.items():
        now = decisions.get(did)
        if now is None:
            if did not in pruned:
                problems.append((entry, f"decision {did} it records was deleted"))
        elif now != recorded:
            problems.append((entry, f"decision {did} it records was changed afterwards"))
    last_legacy = int(legacy["last_decision_id"]) if legacy else 0
    if legacy is not None:
        hashes = {i: h for i, h in decisions.items() if i <= last_legacy}
        hashes.update({i: h for i, h in pruned.items() if i <= last_legacy and i not in hashes})
        if _combined(hashes) != legacy["decisions_sha256"]:
            problems.append((legacy_entry, (f"the decisions made before the trail began (up to {last_legacy}) were "
                                            "changed or deleted")))
    for did in sorted(set(decisions) - set(covered)):
        if did > last_legacy:
            problems.append((prev_id + 1, f"decision {did} has no audit entry (it was added outside the station)"))
            break
    if problems:
        entry, why = min(problems)
        return Verdict(False, len(rows), entry, why)
    return Verdict(True, len(rows), head=prev_hash)


def _json(text: Any) -> Any:
    if not isinstance(text, str):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


# ---------------------------------------------------------------------------- the head (anchors: engine/security/anchor.py)

ANCHOR_FORMAT = "inspection-station audit anchor"
ANCHOR_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Head:
    """The chain's head at one moment: how many entries, the last one's id, hash and time, the station."""

    entries: int
    last_id: int
    hash: str
    last_time_utc: str
    station_id: str
    anchored_utc: str

    def to_dict(self) -> dict[str, Any]:
        return {"format": ANCHOR_FORMAT, "format_version": ANCHOR_FORMAT_VERSION, **asdict(self)}

    def line(self) -> str:
        """The head in one line, as reports print it."""
        station = f" of station {self.station_id}" if self.station_id else ""
        return (f"audit chain head{station}: entry {self.last_id} of {self.entries}, SHA-256 {self.hash}, "
                f"last entry {self.last_time_utc}, taken {self.anchored_utc}")


def head_of(db: Any, station: str = "") -> Head | None:
    """The head of the trail in an open database; None when it holds no entry (or no trail)."""
    try:
        last = db.execute(f"SELECT id, hash, time_utc, station FROM {TABLE} ORDER BY id DESC LIMIT 1"
                          ).fetchone()
    except StationError:
        raise  # the file itself is unusable
    except Exception:  # noqa: BLE001 - no audit table: no head
        return None
    if last is None:
        return None
    count = int(db.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0])
    return Head(count, int(last[0]), str(last[1]), str(last[2]), station or str(last[3] or ""),
                utc_text(time.time()))


def head(data_dir: Path, station: str = "") -> Head | None:
    """The head of the data directory's trail; None when there is no trail yet."""
    path = Path(data_dir) / DB_NAME
    if not path.exists():
        return None
    db = connect(path, migrate=False)
    try:
        return head_of(db, station)
    finally:
        db.conn.close()


# ---------------------------------------------------------------------------- reading and export


def entries(data_dir: Path, limit: int | None = None) -> list[dict[str, Any]]:
    path = Path(data_dir) / DB_NAME
    if not path.exists():
        return []
    db = connect(path, migrate=False)
    try:
        sql = f"SELECT * FROM {TABLE} ORDER BY id" + (f" DESC LIMIT {int(limit)}" if limit else "")
        rows = _rows(db, sql)
        return sorted(rows, key=lambda r: r["id"])
    finally:
        db.conn.close()


EXPORT_COLUMNS = ("id", "time_utc", "user", "user_name", "role", "action", "object", "old_value", "new_value",
                  "reason", "meaning", "model_version", "station", "hash")


def export(data_dir: Path, out: Path, fmt: str | None = None, generated_by: str = "") -> Verdict:
    """Write the whole trail, with the outcome of :func:`verify`, as printable HTML or CSV.

    The format follows ``fmt`` or the file's suffix (``.csv``; anything else is HTML). Written to a
    temporary name, fsynced and renamed, so a crash never leaves half a record under the final name.
    """
    out = Path(out)
    fmt = fmt or ("csv" if out.suffix.lower() == ".csv" else "html")
    verdict = verify(data_dir)
    rows = entries(data_dir)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(EXPORT_COLUMNS)
        for r in rows:
            w.writerow(["" if r.get(c) is None else r.get(c) for c in EXPORT_COLUMNS])
        text = buf.getvalue()
    else:
        h = head(data_dir)
        text = _html(rows, verdict, generated_by, h.to_dict() if h is not None else None)
    write_atomic(out, text)
    return verdict


def _html(rows: list[dict[str, Any]], verdict: Verdict, generated_by: str, anchor: dict[str, Any] | None) -> str:
    from engine.reports import render

    return render("audit.html.j2", audit_anchor=anchor, rows=[{c: r.get(c) for c in EXPORT_COLUMNS} for r in rows],
                  columns=EXPORT_COLUMNS, ok=verdict.ok, sentence=verdict.sentence(),
                  generated=utc_text(time.time()), generated_by=generated_by)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def record_settings(data_dir: Path, config: dict[str, Any], station: str = "", user: str = "",
                    role: str = "") -> list[str]:
    """A ``settings_changed`` entry when the effective settings (tolerances, sources, security…) differ from
    the last ones recorded, with the keys that changed and their old and new values; the keys, or none.

    Settings live in a TOML file anyone with the file's permissions can edit: this is how such an edit
    reaches the trail, the next time the station starts or a signed command runs."""
    now = _flatten(config)
    db = connect(Path(data_dir) / DB_NAME)
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute(f"SELECT new_value FROM {TABLE} WHERE action IN ('settings_recorded', "
                             f"'settings_changed') ORDER BY id DESC LIMIT 1").fetchone()
            before = _flatten(json.loads(row[0])) if row is not None and row[0] else None
            if before == now:
                db.execute("ROLLBACK")
                return []
            if before is None:
                changed = sorted(now)
                append(db, "settings_recorded", user=user, role=role, obj="settings", new=config, station=station,
                       reason="the settings in force when the trail first saw them")
            else:
                changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
                append(db, "settings_changed", user=user, role=role, obj="settings",
                       old={k: before.get(k) for k in changed}, new=config, station=station,
                       reason="changed: " + ", ".join(changed))
            db.execute("COMMIT")
            return changed
        except BaseException:
            db.execute("ROLLBACK")
            raise
    finally:
        db.conn.close()
