import sqlite3

import pytest

from engine.storage.db import DB_NAME, MIGRATIONS, DatabaseError, connect, schema_version
from engine.monitoring.drift import BatchPoint
from engine.core.protocols import Alarm
from engine.monitoring.trends import TrendStore, read_events, read_trend


def test_database_settings_and_migrations(tmp_path):
    db = connect(tmp_path / DB_NAME)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert schema_version(db) == len(MIGRATIONS)
    assert {"trend_minutes", "drift_alarms", "station_events"} <= set(db.table_names())
    db.conn.close()
    again = connect(tmp_path / DB_NAME)  # upgrading an up-to-date database changes nothing
    assert schema_version(again) == len(MIGRATIONS)
    again.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    again.conn.close()
    with pytest.raises(DatabaseError, match="newer version"):
        connect(tmp_path / DB_NAME)


def test_a_corrupt_database_is_one_sentence(tmp_path):
    (tmp_path / DB_NAME).write_bytes(b"not a database at all" * 200)
    with pytest.raises((DatabaseError, sqlite3.DatabaseError)):
        connect(tmp_path / DB_NAME)


def point(t, luma, level="ok", alarms=()):
    return BatchPoint(t, int(t), {"mean_luma": luma, "focus": 1.0}, {"mean_luma": level, "focus": "ok"}, {},
                      list(alarms))


def test_minutes_are_aggregated_written_and_read_back_after_a_restart(tmp_path):
    store = TrendStore(tmp_path, "ref-a")
    t0 = 1_767_225_600.0
    for i in range(12):  # two minutes of 20-second batches... and a third minute still open
        store.add_batch(point(t0 + 10 * i, 100.0 + i, "warning" if i == 7 else "ok",
                              [Alarm("mean_luma", "warning", "drifting")] if i == 7 else []))
    store.add_event(t0 + 30, "model", "model builtin on cpu")
    store.close()
    rows = read_trend(tmp_path, "mean_luma", reference_id="ref-a")
    assert [r["minute"] for r in rows] == [t0, t0 + 60]
    assert [r["n"] for r in rows] == [6, 6]
    assert rows[0]["mean"] == pytest.approx(102.5) and rows[0]["min"] == 100 and rows[0]["max"] == 105
    assert rows[1]["level"] == "warning" and rows[0]["level"] == "ok"
    assert read_trend(tmp_path, "mean_luma", reference_id="other") == []
    assert [e["kind"] for e in read_events(tmp_path)] == ["model"]
    db = connect(tmp_path / DB_NAME)
    assert [r["metric"] for r in db["drift_alarms"].rows] == ["mean_luma"]
    db.conn.close()
