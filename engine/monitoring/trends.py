"""Drift trends that span months: per-minute aggregates, alarms and events in SQLite.

The pipeline's worker hands batches over to :class:`TrendStore`, whose own writer thread
aggregates them per minute (of the source's clock) and writes each minute once it is
complete; the worker never waits for the disk. Reads open their own connection (WAL lets
them run beside the writer).
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.storage.db import DB_NAME, connect, read
from engine.monitoring.drift import LEVELS, BatchPoint


@dataclass
class _Minute:
    minute: int
    n: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    mins: dict[str, float] = field(default_factory=dict)
    maxs: dict[str, float] = field(default_factory=dict)
    levels: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


class TrendStore:
    def __init__(self, data_dir: Path, reference_id: str, max_queue: int = 10000) -> None:
        self.path = Path(data_dir) / DB_NAME
        self.reference_id = reference_id
        self._db = connect(self.path)  # creates and upgrades here, on the caller, so errors surface early
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self.dropped = 0
        self.errors = 0
        self.last_error = ""
        self._current: _Minute | None = None
        self._thread = threading.Thread(target=self._write_loop, name="trend-writer", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ from the pipeline's worker

    def add_batch(self, point: BatchPoint) -> None:
        self._put(("batch", point))

    def add_event(self, time: float, kind: str, detail: str) -> None:
        self._put(("event", (time, kind, detail)))

    def _put(self, item: tuple) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1  # a stalled disk must not stall the line; counted, not hidden

    def close(self, timeout: float = 5.0) -> None:
        """Write what is pending (including the open minute) and stop the writer."""
        self._queue.put(("close", None))
        self._thread.join(timeout)

    # ------------------------------------------------------------------ the writer thread

    def _write_loop(self) -> None:
        db = self._db
        while True:
            kind, item = self._queue.get()
            if kind == "close":
                self._flush_minute(db)
                db.conn.close()
                return
            try:
                if kind == "batch":
                    self._aggregate(db, item)
                elif kind == "event":
                    db["station_events"].insert(dict(zip(("time", "kind", "detail"), item)))
            except Exception as e:  # a full disk or a locked file: keep the writer alive, keep count
                self.errors += 1
                self.last_error = f"{type(e).__name__}: {e}"

    def _aggregate(self, db: Any, p: BatchPoint) -> None:
        for a in p.alarms:
            db["drift_alarms"].insert({"time": p.time, "metric": a.name, "level": a.severity, "message": a.message,
                                       "reference_id": self.reference_id})
        minute = int(p.time // 60) * 60
        cur = self._current
        if cur is not None and cur.minute != minute:
            self._flush_minute(db)
            cur = None
        if cur is None:
            cur = self._current = _Minute(minute)
        cur.n += 1
        for k, v in p.means.items():
            cur.sums[k] = cur.sums.get(k, 0.0) + v
            cur.mins[k] = min(cur.mins.get(k, v), v)
            cur.maxs[k] = max(cur.maxs.get(k, v), v)
            lv = p.levels.get(k, "ok")
            if LEVELS.index(lv) > LEVELS.index(cur.levels.get(k, "ok")):
                cur.levels[k] = lv
            cur.counts[k] = cur.counts.get(k, 0) + 1

    def _flush_minute(self, db: Any) -> None:
        cur, self._current = self._current, None
        if cur is None or cur.n == 0:
            return
        rows = [{"minute": cur.minute, "metric": k, "n": cur.counts[k], "mean": cur.sums[k] / cur.counts[k],
                 "min": cur.mins[k],
                 "max": cur.maxs[k], "level": cur.levels.get(k, "ok"), "reference_id": self.reference_id} for k in cur.sums]
        db["trend_minutes"].upsert_all(rows, pk=("minute", "metric", "reference_id"))


def read_trend(data_dir: Path, metric: str | None = None, since: float | None = None,
               reference_id: str | None = None) -> list[dict[str, Any]]:
    """Minute aggregates, oldest first: of one metric, or of every metric (one query)."""
    where, args = ["1"], []
    for clause, value in (("metric = ?", metric), ("minute >= ?", since), ("reference_id = ?", reference_id)):
        if value is not None:
            where.append(clause)
            args.append(value)
    return read(data_dir, f"SELECT * FROM trend_minutes WHERE {' AND '.join(where)} ORDER BY minute", args)


def read_events(data_dir: Path, since: float | None = None) -> list[dict[str, Any]]:
    return read(data_dir, "SELECT * FROM station_events WHERE time >= ? ORDER BY time", [since or 0])
