"""The reads of ``frames`` and ``decisions`` that several parts of the station share.

Each opens its own short connection (:func:`engine.storage.db.read`) and returns plain dicts, one per row;
a data directory without a database gives no rows. The feedback store's own writes stay with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from engine.storage.db import read

# A decision that still stands: nothing later undoes it.
NOT_UNDONE = "d.id NOT IN (SELECT undoes FROM decisions WHERE undoes IS NOT NULL)"
# An operator's verdict on one of the model's boxes.
DETECTION_VERDICT = "d.verdict IN ('confirm', 'reject', 'reclass') AND d.detection IS NOT NULL"


def _period(column: str, since: float | None, until: float | None) -> tuple[str, list[Any]]:
    where, args = ["1"], []
    if since is not None:
        where.append(f"{column} >= ?")
        args.append(since)
    if until is not None:
        where.append(f"{column} < ?")
        args.append(until)
    return " AND ".join(where), args


def decisions_with_frames(data_dir: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """Every decision, oldest first, with the review id it undoes and the frame it is about."""
    sql = ("SELECT d.review_id, d.operator, d.time_utc, d.verdict, d.detection, d.old_class, d.new_class,"
           " d.old_box, d.new_box, d.score, d.model, d.reference_id, d.queue_reason, d.origin,"
           " (SELECT review_id FROM decisions u WHERE u.id = d.undoes) AS undoes,"
           " f.source, f.sequence, f.timestamp, f.image_sha256 FROM decisions d JOIN frames f ON f.id = d.frame_id"
           " ORDER BY d.id")
    if limit:
        sql += f" LIMIT {int(limit)}"
    return read(data_dir, sql)


def detection_verdicts(data_dir: Path, since: float | None = None, until: float | None = None
                       ) -> list[dict[str, Any]]:
    """The verdicts on the model's boxes that still stand (decided in ``[since, until)``), oldest first, with
    their frame's source, sequence, image and ground truth."""
    w, args = _period("d.time_utc", since, until)
    return read(data_dir,
                "SELECT d.id, d.frame_id, d.detection, d.operator, d.time_utc, d.verdict, d.new_class, d.old_class,"
                " d.old_box, d.score, d.queue_reason, f.source, f.sequence, f.image_sha256, f.ground_truth"
                f" FROM decisions d JOIN frames f ON f.id = d.frame_id WHERE {DETECTION_VERDICT} AND {NOT_UNDONE}"
                f" AND {w} ORDER BY d.id", args)


def decisions(data_dir: Path) -> list[dict[str, Any]]:
    """Every decision row as stored, oldest first."""
    return read(data_dir, "SELECT * FROM decisions ORDER BY id")


def decisions_in_period(data_dir: Path, since: float | None = None, until: float | None = None
                        ) -> list[dict[str, Any]]:
    """The decisions on frames taken in ``[since, until)`` (source clock), oldest first, each with the review
    id of the decision it undoes (``undoes_review_id``)."""
    w, args = _period("f.timestamp", since, until)
    return read(data_dir, "SELECT d.id, d.review_id, d.frame_id, d.operator, d.time_utc, d.verdict, d.detection,"
                          " d.old_class, d.new_class, d.old_box, d.new_box, d.score, d.model, d.reference_id,"
                          " d.queue_reason, d.origin, d.undoes, u.review_id AS undoes_review_id"
                          " FROM decisions d JOIN frames f ON f.id = d.frame_id"
                          " LEFT JOIN decisions u ON u.id = d.undoes"
                          f" WHERE {w} ORDER BY d.id", args)


def frames_in_period(data_dir: Path, since: float | None = None, until: float | None = None
                     ) -> list[dict[str, Any]]:
    """The stored frames taken in ``[since, until)`` (source clock) in time order, every column, with their
    image's ``width`` and ``height``."""
    w, args = _period("f.timestamp", since, until)
    return read(data_dir, "SELECT f.*, i.width, i.height FROM frames f JOIN images i ON i.sha256 = f.image_sha256"
                          f" WHERE {w} ORDER BY f.timestamp, f.id", args)


def frame(data_dir: Path, frame_id: int) -> dict[str, Any] | None:
    """One stored frame's row, or None."""
    rows = read(data_dir, "SELECT * FROM frames WHERE id = ?", [frame_id])
    return rows[0] if rows else None


def frames_by_id(data_dir: Path, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Stored frame rows by id (those that exist)."""
    ids = sorted(set(int(i) for i in ids))
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    return {int(r["id"]): r for r in read(data_dir, f"SELECT * FROM frames WHERE id IN ({marks})", ids)}


def newest_frame_id(data_dir: Path) -> int | None:
    """The id of the last frame stored, 0 for none, or None when there is no database."""
    rows = read(data_dir, "SELECT coalesce(max(id), 0) AS m FROM frames")
    return int(rows[0]["m"]) if rows else None


def frame_span(data_dir: Path) -> tuple[float, float] | None:
    """The first and last stored frame's time (source clock), or None when nothing is stored."""
    rows = read(data_dir, "SELECT min(timestamp) AS lo, max(timestamp) AS hi FROM frames")
    if not rows or rows[0]["lo"] is None:
        return None
    return float(rows[0]["lo"]), float(rows[0]["hi"])

