"""The feedback store: every operator decision, durable before it is acknowledged.

One writer thread owns the database's write connection. For each decision it first writes
the frame's image losslessly under its content hash (PNG to a temporary file, fsync, rename,
fsync of the folder), then commits the image, frame and decision rows in one transaction
(WAL, ``synchronous=FULL``), and only then acknowledges. A crash can therefore leave, at
worst, an image file that no row names yet; :meth:`FeedbackStore.recover` removes those (and
temporary files) when the store opens, on the word of a database known to be good only. Nothing is
acknowledged that was not stored.

Every decision submitted ends acknowledged or failed, exactly once. Another program holding the database
makes the writer retry for up to the busy timeout (``[storage] busy_timeout_s``), then fail that decision
and go on to the next. A submitter that may wait (``submit(..., wait=True)``, the headless operator) is held
while ``backlog`` items are queued: the store paces it, rather than dropping what it cannot write yet.
:meth:`FeedbackStore.close` writes everything queued for as long as the writer keeps storing; only when
nothing is stored for its timeout (a database held by another program) does it give up, and what is still
unwritten then fails (and is never committed afterwards).
"""

from __future__ import annotations

import concurrent.futures as cf
import errno
import json
import sqlite3
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from engine.core.errors import StationError
from engine.security import audit
from engine.storage.db import DB_NAME, DatabaseError, connect
from engine.storage.images import ImageStore
from engine.storage.queries import decisions_with_frames
from engine.core.frame import Box

_BUSY_SLICE_MS = 50  # how long one attempt of the writer waits for a lock held elsewhere

VERDICTS = ("confirm", "reject", "reclass", "missed", "unsure", "undo")


class FeedbackError(StationError):
    """A decision could not be stored; the message says why in one sentence."""


@dataclass(frozen=True)
class FrameForReview:
    """A frame as the operator saw it: the image, the model's boxes, and what it was measured as."""

    image: np.ndarray  # BGR uint8
    source: str
    sequence: int
    timestamp: float
    detections: tuple[Box, ...] = ()
    model: str | None = None
    device: str | None = None
    reference_id: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    ground_truth: dict[str, Any] | None = None
    queue_reason: str | None = None


@dataclass(frozen=True)
class Decision:
    frame: FrameForReview
    operator: str
    verdict: str
    detection: int | None = None  # index into frame.detections
    new_class: str | None = None
    new_box: tuple[float, float, float, float] | None = None
    undoes: str | None = None  # review id of the decision this one takes back
    origin: str = "operator"
    review_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}")
        if self.verdict in ("confirm", "reject", "reclass") and self.detection is None:
            raise ValueError(f"a {self.verdict} decision names the detection it is about")
        if self.verdict == "missed" and self.new_box is None:
            raise ValueError("a missed defect needs the box drawn around it")
        if self.verdict == "undo" and not self.undoes:
            raise ValueError("an undo names the decision it takes back")
        if not self.operator:
            raise ValueError("a decision needs an operator")


@dataclass(frozen=True)
class Ack:
    review_id: str
    decision_id: int
    frame_id: int
    latency_ms: float  # from submit to durable


def _box_json(box: Box | tuple | None) -> str | None:
    if box is None:
        return None
    if isinstance(box, Box):
        return json.dumps([round(float(v), 2) for v in (box.x0, box.y0, box.x1, box.y1)])
    return json.dumps([round(float(v), 2) for v in box])


def _sentence(e: BaseException, path: Path) -> str:
    if isinstance(e, DatabaseError):  # already one sentence naming the file
        return str(e)
    if isinstance(e, OSError):
        if e.errno == errno.ENOSPC:
            return f"the disk holding {path} is full"
        if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return f"{path} cannot be written (read-only or no permission)"
        return f"writing to {path} failed: {e.strerror or e}"
    if isinstance(e, sqlite3.DatabaseError):
        msg = str(e)
        if "full" in msg:
            return f"the disk holding {path} is full"
        if "readonly" in msg or "read-only" in msg:
            return f"the database in {path} cannot be written (read-only)"
        if "malformed" in msg or "not a database" in msg:
            return f"the database in {path} is damaged ({msg})"
        return f"the database in {path} failed: {msg}"
    return f"{type(e).__name__}: {e}"


def _settle(fut: cf.Future, result: Any = None, error: BaseException | None = None) -> bool:
    """Give ``fut`` its outcome unless it has one already (close() may have failed it); whether it did.
    ``result`` may be a function, called only when the outcome is given (an acknowledgement's latency)."""
    if fut is None or fut.done():
        return False
    try:
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(result() if callable(result) else result)
    except cf.InvalidStateError:
        return False
    return True


class FeedbackStore:
    """Decisions in ``<data dir>/station.sqlite``, images in ``<data dir>/images``. Thread-safe ``submit``."""

    def __init__(self, data_dir: Path, max_samples: int = 500, max_image_bytes: int = 20 * 2**30,
                 png_level: int = 1, max_pending: int = 10000, busy_timeout_s: float | None = None,
                 backlog: int = 16) -> None:
        self.data_dir = Path(data_dir)
        self.image_store = ImageStore(self.data_dir)
        self.images = self.image_store.root
        self.path = self.data_dir / DB_NAME
        self.max_samples = max_samples
        self.max_image_bytes = max_image_bytes
        self.png_level = png_level
        try:
            self.images.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise FeedbackError(_sentence(e, self.data_dir)) from None
        try:
            self._db = connect(self.path, busy_timeout_s=busy_timeout_s)
            self._db.execute("SELECT count(*) FROM decisions").fetchone()
            # From here on the writer waits for another program's lock in its own loop (see _begin), a slice
            # at a time, so that it can stop waiting the moment close() gives up.
            self.busy_timeout_s = float(self._db.conn.station_timeout)
            self._db.execute(f"PRAGMA busy_timeout = {_BUSY_SLICE_MS}")
        except (DatabaseError, sqlite3.DatabaseError) as e:
            raise FeedbackError(_sentence(e, self.data_dir)) from None
        self._pending_unlink: list[str] = []
        self.recovered = self.recover()
        # The work waiting for the writer, and the one item in its hands: both guarded by _state, which also
        # makes a COMMIT and its acknowledgement one step against close() giving up (see close).
        self._queue: deque = deque()
        lock = threading.Lock()
        self._state = threading.Condition(lock)
        self._room = threading.Condition(lock)  # a waiting submitter, told when the writer takes an item
        self.max_pending = max_pending
        self.backlog = max(1, int(backlog))
        self.stored = 0  # items the writer has committed: close() waits while this moves
        self._closing = False  # no new work once close() has begun
        self._abandoned = ""  # why close() gave up waiting: what was left has failed, nothing more commits
        self._inflight: tuple[str, cf.Future] | None = None
        self._writes = 0
        self._thread = threading.Thread(target=self._write_loop, name="feedback-writer", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ any thread

    def submit(self, decision: Decision, on_ack: Callable[[Ack | FeedbackError], None] | None = None,
               wait: bool = False) -> cf.Future:
        """Queue a decision; the future (and ``on_ack``, on the writer thread) gets an :class:`Ack` once it is
        durable, or a :class:`FeedbackError`. ``wait``: while ``backlog`` items are queued, wait for the writer
        to take one (back-pressure: a producer faster than the disk is slowed to its pace, nothing is dropped).
        Without ``wait`` it never blocks (a window's thread): ``max_pending`` queued is an immediate error."""
        fut: cf.Future = cf.Future()
        if on_ack is not None:
            fut.add_done_callback(lambda f: on_ack(f.exception() or f.result()))  # type: ignore[arg-type]
        self._put("decision", decision, fut, "too many decisions are waiting to be written; the disk is too slow",
                  wait=wait)
        return fut

    def _put(self, kind: str, item: Any, fut: cf.Future | None, full: str = "", wait: bool = False) -> None:
        with self._state:
            if kind != "close":
                while wait and len(self._queue) >= self.backlog and not self._closing and self._thread.is_alive():
                    self._room.wait(1.0)
                if self._closing:
                    error = FeedbackError(self._abandoned or "the feedback store is closed; nothing more is written")
                elif full and len(self._queue) >= self.max_pending:
                    error = FeedbackError(full)
                else:
                    error = None
                if error is not None:
                    fut.set_exception(error)  # type: ignore[union-attr]
                    return
            self._queue.append((kind, item, time.perf_counter(), fut))
            self._state.notify()

    def keep_sample(self, frame: FrameForReview) -> cf.Future:
        """Store a frame (image and row) before anyone decides on it.

        Called when a frame is put before an operator, so that the image is already durable when the
        click comes and the click only commits a row; and for the bounded sample of unreviewed frames
        (for downstream quality checks to refer to). A frame nobody decides on stays a sample.
        """
        fut: cf.Future = cf.Future()
        self._put("sample", frame, fut, "the writer is behind; sample not kept")
        return fut

    def record_qc(self, rows: list[dict[str, Any]]) -> cf.Future:
        """Defects found further down the line, as missed detections against the stored frames they belong to.

        Each row: ``source``, ``sequence``, ``class``, optional ``box`` (x0, y0, x1, y1) and ``inspector``. The
        future's result is a list, per row, of ``None`` (stored) or the reason it was not.
        """
        fut: cf.Future = cf.Future()
        self._put("qc", rows, fut)
        return fut

    def close(self, timeout: float = 30.0) -> int:
        """Write everything queued, then stop; the number of decisions that failed because nothing was stored
        for ``timeout`` seconds.

        Close waits as long as the writer goes on storing (a slow disk only makes it longer). The writer may be
        waiting for another program's lock (up to the busy timeout per attempt) with more queued behind it. Once
        ``timeout`` seconds pass with nothing stored close stops waiting: the decision being written and every
        one still queued fail with a :class:`FeedbackError` (their callbacks run here, before close returns),
        and nothing more is committed, so each decision ends acknowledged or failed, never in between.
        """
        with self._state:
            self._closing = True
            self._room.notify_all()  # a submitter waiting for room fails now: nothing new is taken
        if self._thread.is_alive():
            self._put("close", None, None)
            # Everything queued is written while the writer keeps storing, however long the queue; the timeout
            # counts only the time in which nothing was stored (a database held by another program).
            seen, deadline = -1, 0.0
            while self._thread.is_alive():
                if self.stored != seen:
                    seen, deadline = self.stored, time.monotonic() + max(0.0, timeout)
                left_s = deadline - time.monotonic()
                if left_s <= 0:
                    break
                self._thread.join(min(left_s, 0.5))
        if not self._thread.is_alive():
            return 0
        why = (f"not written: the station stopped after {timeout:g} s in which the database "
               f"{self.path} took nothing (locked by another program, or too slow)")
        got = self._state.acquire(timeout=10.0)  # a commit under way finishes, with its acknowledgement
        try:
            self._abandoned = why
            left = [self._inflight] if self._inflight is not None else []
            left += [(kind, fut) for kind, _item, _t0, fut in self._queue if fut is not None]
            self._inflight = None
            self._queue.clear()
            if got:
                self._state.notify_all()
                self._room.notify_all()
        finally:
            if got:
                self._state.release()
        failed = 0
        for kind, fut in left:
            if _settle(fut, error=FeedbackError(why)) and kind == "decision":
                failed += 1
        # Given up on, the writer stops at its next step (it looks between each). It must not still be inside
        # native code (PNG encoding) when the interpreter exits: a daemon thread stopped there aborts the process
        # ("terminate called without an active exception").
        self._thread.join(10.0)
        return failed

    # ------------------------------------------------------------------ recovery

    def recover(self) -> dict[str, int]:
        """Remove what a crash can leave: temporary files, and image files no row names.

        An image file is removed because no row names it only on the word of a database known to be good: its
        schema was there before this open, ``PRAGMA quick_check`` finds nothing wrong, and it names images at
        all. Otherwise the unnamed files are kept (counted as ``kept``): a new, emptied or damaged database
        names nothing, and its silence is no proof that an image is an orphan."""
        known = {r[0] for r in self._db.execute("SELECT sha256 FROM images")}
        unnamed = self.image_store.unnamed(known) if self.image_store.root.is_dir() else []
        trusted = bool(unnamed) and self._known_good(known)
        removed_tmp, removed_orphans = self.image_store.sweep(known, orphans=trusted)
        missing = len(self.image_store.missing(known))
        return {"temporary": removed_tmp, "orphans": removed_orphans, "kept": 0 if trusted else len(unnamed),
                "missing": missing}

    def _known_good(self, known: set[str]) -> bool:
        if not known or getattr(self._db.conn, "schema_before", 0) == 0:
            return False
        try:
            rows = self._db.execute("PRAGMA quick_check").fetchall()
        except (DatabaseError, sqlite3.DatabaseError):
            return False
        return [tuple(r) for r in rows] == [("ok",)]

    def image_path(self, sha: str) -> Path:
        return self.image_store.path(sha)

    # ------------------------------------------------------------------ the writer thread

    def _write_loop(self) -> None:
        db = self._db
        while True:
            with self._state:
                while not self._queue and not self._abandoned:
                    self._state.wait()
                if self._abandoned:
                    break
                kind, item, t0, fut = self._queue.popleft()
                self._room.notify_all()
                if kind == "close":
                    break
                self._inflight = (kind, fut)
            try:
                if kind == "decision":
                    self._store_decision(db, item, t0, fut)
                elif kind == "qc":
                    rows = self._store_qc(db, item)
                    self._commit(db, fut, rows)
                else:
                    self._store_sample(db, item, fut)
                    self._unlink_pending()
            except Exception as e:  # every failure becomes a sentence for the caller; the writer goes on
                try:
                    db.execute("ROLLBACK")
                except (sqlite3.Error, DatabaseError):
                    pass
                self._pending_unlink = []
                with self._state:  # settled under the lock: close() returns only after the callbacks ran
                    if self._inflight is not None and self._inflight[1] is fut:
                        self._inflight = None
                    _settle(fut, error=e if isinstance(e, FeedbackError) else FeedbackError(_sentence(e, self.data_dir)))
            self._writes += 1
            if self._writes % 200 == 0 and not self._abandoned:
                try:
                    self.prune(db)
                except Exception:
                    pass  # pruning is housekeeping: a failure here must not stop decisions being stored
        if not self._abandoned:
            db.conn.close()  # (given up on, the connection stays as it is: the process is ending)

    def _begin(self, db: Any) -> None:
        """BEGIN IMMEDIATE, retried while another program holds the database, for up to the busy timeout; stops
        at once when close() has given up. A :class:`FeedbackError` naming the file when the time is up."""
        deadline = time.monotonic() + self.busy_timeout_s
        while True:
            if self._abandoned:
                raise FeedbackError(self._abandoned)
            try:
                db.execute("BEGIN IMMEDIATE")
                return
            except (DatabaseError, sqlite3.OperationalError) as e:
                cause = e.__cause__ if isinstance(e, DatabaseError) else e
                code = getattr(cause, "sqlite_errorcode", None)
                if not isinstance(code, int) or (code & 0xFF) not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                    raise
                if time.monotonic() >= deadline:
                    raise FeedbackError(f"{self.path} stayed locked by another program for {self.busy_timeout_s:g} s "
                                        "(database is locked)") from None

    def _commit(self, db: Any, fut: cf.Future, result: Any) -> None:
        """COMMIT and acknowledge as one step against close(): once close() has given up on the work in hand it
        is rolled back instead (its future already says it failed)."""
        with self._state:
            if self._abandoned:
                raise FeedbackError(self._abandoned)
            db.execute("COMMIT")
            self._inflight = None
            self.stored += 1
            _settle(fut, result=result)

    def _write_image(self, image: np.ndarray) -> tuple[str, int]:
        ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, self.png_level])
        if not ok:
            raise FeedbackError("the frame could not be encoded as PNG")
        data = buf.tobytes()
        return self.image_store.put(data), len(data)

    def _frame_row(self, db: Any, fr: FrameForReview, kept_as: str) -> int:
        row = db.execute("SELECT id FROM frames WHERE source = ? AND sequence = ? AND timestamp = ?",
                         [fr.source, fr.sequence, fr.timestamp]).fetchone()
        if row is not None:
            if kept_as == "reviewed":
                db.execute("UPDATE frames SET kept_as = 'reviewed' WHERE id = ?", [row[0]])
            return int(row[0])
        sha, nbytes = self._write_image(fr.image)  # durable before the row that names it commits
        h, w = fr.image.shape[:2]
        db.execute("INSERT OR IGNORE INTO images (sha256, width, height, bytes, created) VALUES (?, ?, ?, ?, ?)",
                   [sha, w, h, nbytes, time.time()])
        cur = db.execute(
            "INSERT INTO frames (image_sha256, source, sequence, timestamp, model, device, reference_id, detections,"
            " stats, ground_truth, queue_reason, kept_as, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [sha, fr.source, fr.sequence, fr.timestamp, fr.model, fr.device, fr.reference_id,
             json.dumps([b.to_dict() for b in fr.detections]), json.dumps(fr.stats),
             json.dumps(fr.ground_truth) if fr.ground_truth is not None else None, fr.queue_reason, kept_as,
             time.time()])
        return int(cur.lastrowid)

    def _store_decision(self, db: Any, d: Decision, t0: float, fut: cf.Future) -> None:
        fr = d.frame
        det = fr.detections[d.detection] if d.detection is not None else None
        self._begin(db)
        frame_id = self._frame_row(db, fr, "reviewed")
        undoes = None
        if d.undoes:
            row = db.execute("SELECT id FROM decisions WHERE review_id = ?", [d.undoes]).fetchone()
            if row is None:
                raise FeedbackError(f"there is no decision {d.undoes} to undo")
            undoes = int(row[0])
        cur = db.execute(
            "INSERT INTO decisions (review_id, frame_id, operator, time_utc, verdict, detection, old_class, new_class,"
            " old_box, new_box, score, model, reference_id, queue_reason, undoes, origin)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [d.review_id, frame_id, d.operator, time.time(), d.verdict, d.detection,
             det.class_name if det else None,
             d.new_class if d.new_class else (det.class_name if det and d.verdict == "confirm" else None),
             _box_json(det), _box_json(d.new_box), det.score if det else None, fr.model, fr.reference_id,
             fr.queue_reason, undoes, d.origin])
        decision_id = int(cur.lastrowid)
        audit.record_decision(db, decision_id, d.operator, fr.model)
        self._commit(db, fut, lambda: Ack(d.review_id, decision_id, frame_id, (time.perf_counter() - t0) * 1000.0))

    def _store_qc(self, db: Any, rows: list[dict[str, Any]]) -> list[str | None]:
        out: list[str | None] = []
        self._begin(db)
        for r in rows:
            frame = db.execute("SELECT id, model, reference_id FROM frames WHERE source = ? AND sequence = ?"
                               " ORDER BY id DESC LIMIT 1", [r["source"], r["sequence"]]).fetchone()
            if frame is None:
                out.append(f"no stored frame {r['sequence']} from {r['source']} (only reviewed frames and a "
                           "sample of the others are kept)")
                continue
            db.execute(
                "INSERT INTO decisions (review_id, frame_id, operator, time_utc, verdict, new_class, new_box, model,"
                " reference_id, queue_reason, origin) VALUES (?, ?, ?, ?, 'missed', ?, ?, ?, ?, 'downstream-qc', 'qc')",
                [uuid.uuid4().hex, frame[0], r.get("inspector") or "qc", time.time(), r["class"],
                 _box_json(r.get("box")), frame[1], frame[2]])
            audit.record_decision(db, int(db.execute("SELECT last_insert_rowid()").fetchone()[0]),
                                  r.get("inspector") or "qc", frame[1])
            out.append(None)
        return out

    def _store_sample(self, db: Any, fr: FrameForReview, fut: cf.Future) -> int:
        self._begin(db)
        frame_id = self._frame_row(db, fr, "sample")
        excess = db.execute("SELECT count(*) FROM frames WHERE kept_as = 'sample'").fetchone()[0] - self.max_samples
        if excess > 0:
            old = [r[0] for r in db.execute(
                "SELECT id FROM frames WHERE kept_as = 'sample' AND id NOT IN (SELECT frame_id FROM decisions)"
                " ORDER BY created LIMIT ?", [excess])]
            self._delete_frames(db, old)
        self._commit(db, fut, frame_id)
        return frame_id

    def _unlink_pending(self) -> None:
        for sha in self._pending_unlink:
            self.image_store.remove(sha)
        self._pending_unlink = []

    def _delete_frames(self, db: Any, ids: list[int]) -> None:
        """Delete frame rows, then their images once no row names them (inside the caller's transaction)."""
        if not ids:
            return
        marks = ",".join("?" * len(ids))
        shas = [r[0] for r in db.execute(f"SELECT DISTINCT image_sha256 FROM frames WHERE id IN ({marks})", ids)]
        db.execute(f"DELETE FROM frames WHERE id IN ({marks})", ids)
        for sha in shas:
            if db.execute("SELECT 1 FROM frames WHERE image_sha256 = ?", [sha]).fetchone() is None:
                db.execute("DELETE FROM images WHERE sha256 = ?", [sha])
                # The file goes after the row: a crash in between leaves an orphan file, which recover() removes.
                self._pending_unlink.append(sha)

    def prune(self, db: Any | None = None) -> int:
        """Keep the images under the size cap by dropping confirmed-correct frames, oldest first.

        Only frames every decision on which confirms the model (and unreviewed samples) are ever pruned;
        rejections, corrections, missed defects and unsure frames are kept whatever the cap.
        """
        db = db or self._db
        total = db.execute("SELECT coalesce(sum(bytes), 0) FROM images").fetchone()[0]
        if total <= self.max_image_bytes:
            return 0
        candidates = db.execute(
            "SELECT f.id, i.bytes FROM frames f JOIN images i ON i.sha256 = f.image_sha256"
            " WHERE f.kept_as = 'sample' OR (NOT EXISTS (SELECT 1 FROM decisions d WHERE d.frame_id = f.id"
            "   AND d.verdict != 'confirm') AND EXISTS (SELECT 1 FROM decisions d WHERE d.frame_id = f.id))"
            " ORDER BY f.created").fetchall()
        drop, freed = [], 0
        for fid, nbytes in candidates:
            if total - freed <= self.max_image_bytes:
                break
            drop.append(fid)
            freed += nbytes
        if not drop:
            return 0
        self._begin(db)
        gone = {r[0]: audit.decision_hash(audit.decision_row(db, r[0])) for r in db.execute(
            f"SELECT id FROM decisions WHERE frame_id IN ({','.join('?' * len(drop))})", drop).fetchall()}
        audit.append(db, "decisions_pruned", user="station", obj=f"{len(gone)} confirmed decisions",
                     new={"decisions": gone}, reason="image size cap")
        db.execute(f"DELETE FROM decisions WHERE frame_id IN ({','.join('?' * len(drop))})", drop)
        self._delete_frames(db, drop)
        db.execute("COMMIT")
        self._unlink_pending()
        return len(drop)


def list_decisions(data_dir: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """Every decision, oldest first, with its frame (see :func:`engine.storage.queries.decisions_with_frames`)."""
    return decisions_with_frames(data_dir, limit)


def read_qc_csv(path: Path, classes: tuple[str, ...]) -> tuple[list[tuple[int, dict[str, Any]]], list[tuple[int, str]]]:
    """Rows of a downstream-QC CSV (``source,sequence,class[,x0,y0,x1,y1][,inspector]``), with line numbers;
    and the bad rows, each with its line number and what is wrong with it."""
    import csv

    good: list[tuple[int, dict[str, Any]]] = []
    bad: list[tuple[int, str]] = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"source", "sequence", "class"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path} needs the columns source, sequence and class (missing: "
                             f"{', '.join(sorted(missing))})")
        for row in reader:
            line = reader.line_num
            try:
                seq = int(row["sequence"])
                cls = (row["class"] or "").strip()
                if cls not in classes:
                    raise ValueError(f"unknown class {cls!r} (known: {', '.join(classes)})")
                box = None
                coords = [row.get(k) for k in ("x0", "y0", "x1", "y1")]
                if any(c not in (None, "") for c in coords):
                    box = tuple(float(c) for c in coords)  # type: ignore[arg-type]
                    if not (box[0] < box[2] and box[1] < box[3]):
                        raise ValueError("the box must have x0 < x1 and y0 < y1")
                if not (row.get("source") or "").strip():
                    raise ValueError("no source")
                good.append((line, {"source": row["source"].strip(), "sequence": seq, "class": cls, "box": box,
                                    "inspector": (row.get("inspector") or "").strip() or None}))
            except (ValueError, TypeError) as e:
                msg = str(e)
                if "invalid literal" in msg or "could not convert" in msg:
                    msg = "sequence and box coordinates must be numbers"
                bad.append((line, msg))
    return good, bad
