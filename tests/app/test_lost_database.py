"""A lost database never costs the stored images.

A real store is written once (reviewed frames and kept samples, each image a real PNG file); each case copies it
and then loses its ``station.sqlite``: cut to zero bytes, or deleted together with its -wal and -shm. Opening the
store, listing the feedback and a headless run with review are refused in one sentence naming the images folder,
and every image file is still there, byte for byte. The crash recovery on a good database still removes what a
crash leaves (a temporary file, an image whose row was deleted before the file was).
"""

import shutil
import sqlite3

import numpy as np
import pytest

from app.cli import main
from engine.core.frame import Box
from engine.review.feedback import Decision, FeedbackError, FeedbackStore, FrameForReview
from engine.storage.db import DB_NAME, DatabaseError, connect
from engine.storage.images import ImageStore

DECISIONS, SAMPLES = 12, 25


def _frame(seq):
    img = np.random.default_rng(seq).integers(0, 255, (40, 56, 3), dtype=np.uint8)
    return FrameForReview(img, "sim:test", seq, 1000.0 + seq, (Box(5, 5, 20, 20, 0, "scratch", 0.8),), "builtin",
                          "cpu", None, {"mean_luma": 80.0})


@pytest.fixture(scope="module")
def real_store(tmp_path_factory):
    data = tmp_path_factory.mktemp("real") / "data"
    store = FeedbackStore(data, max_samples=1000)
    try:
        for seq in range(1, DECISIONS + 1):
            store.submit(Decision(_frame(seq), "ana", "confirm" if seq % 2 else "reject", detection=0)).result(10)
        for seq in range(100, 100 + SAMPLES):
            store.keep_sample(_frame(seq)).result(10)
    finally:
        store.close()
    assert len(_snapshot(data)) == DECISIONS + SAMPLES
    return data


def _snapshot(data):
    return {f.name: f.read_bytes() for f in (data / "images").rglob("*.png")}


def _zero_bytes(data):
    (data / DB_NAME).write_bytes(b"")


def _deleted(data):
    for suffix in ("", "-wal", "-shm"):
        (data / f"{DB_NAME}{suffix}").unlink(missing_ok=True)


LOSSES = {"zero bytes": _zero_bytes, "deleted": _deleted}


@pytest.fixture(params=sorted(LOSSES))
def lost(request, real_store, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(real_store, data)
    before = _snapshot(data)
    LOSSES[request.param](data)
    db_before = (data / DB_NAME).read_bytes() if (data / DB_NAME).exists() else None
    yield data
    assert _snapshot(data) == before  # every image, byte for byte
    assert len(before) == DECISIONS + SAMPLES
    # Nothing started afresh over them: the database is as the loss left it.
    assert ((data / DB_NAME).read_bytes() if (data / DB_NAME).exists() else None) == db_before


def test_the_store_refuses_a_lost_database_and_keeps_every_image(lost):
    with pytest.raises(FeedbackError) as e:
        FeedbackStore(lost)
    msg = str(e.value)
    assert str(lost / "images") in msg and f"{DECISIONS + SAMPLES} stored images" in msg
    assert "\n" not in msg
    with pytest.raises(DatabaseError, match="restore station.sqlite from a backup"):
        connect(lost / DB_NAME)


def test_feedback_list_refuses_in_one_sentence(lost, capsys):
    assert main(["feedback", "list", "--data-dir", str(lost)]) == 2
    err = capsys.readouterr().err.strip()
    assert str(lost / "images") in err and len(err.splitlines()) == 1


def test_a_headless_run_with_review_refuses_in_one_sentence(lost, capsys):
    code = main(["run", "--headless", "--source", "sim://?seed=1&width=160&height=128", "--frames", "3",
                 "--model", "none", "--auto-review", "oracle:0.9,operator=a", "--data-dir", str(lost)])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert str(lost / "images") in err and len(err.splitlines()) == 1


def test_an_emptied_images_table_keeps_the_unnamed_images(real_store, tmp_path):
    """A database with its schema whose images table names nothing is no proof that any image is an orphan."""
    data = tmp_path / "data"
    shutil.copytree(real_store, data)
    before = _snapshot(data)
    con = sqlite3.connect(data / DB_NAME)
    con.execute("PRAGMA foreign_keys=OFF")
    con.execute("DELETE FROM images")
    con.commit()
    con.close()
    store = FeedbackStore(data)
    store.close()
    assert store.recovered["orphans"] == 0 and store.recovered["kept"] == len(before)
    assert _snapshot(data) == before


def test_recovery_on_a_good_database_still_removes_what_a_crash_leaves(real_store, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(real_store, data)
    images = ImageStore(data)
    # A crash between a sample's row delete and its file's unlink: the rows are gone, the file is not.
    con = sqlite3.connect(data / DB_NAME)
    fid, sha = con.execute("SELECT id, image_sha256 FROM frames WHERE kept_as = 'sample' ORDER BY id LIMIT 1"
                           ).fetchone()
    con.execute("DELETE FROM frames WHERE id = ?", [fid])
    con.execute("DELETE FROM images WHERE sha256 = ?", [sha])
    con.commit()
    con.close()
    tmp = images.path(sha).parent / f".{sha}.png.4242.tmp"
    tmp.write_bytes(b"half written")
    store = FeedbackStore(data)
    store.close()
    assert store.recovered == {"temporary": 1, "orphans": 1, "kept": 0, "missing": 0}
    assert not images.has(sha) and not tmp.exists()
    assert len(_snapshot(data)) == DECISIONS + SAMPLES - 1


def test_a_new_data_folder_still_starts_a_store(tmp_path):
    store = FeedbackStore(tmp_path / "new")
    store.close()
    assert store.recovered == {"temporary": 0, "orphans": 0, "kept": 0, "missing": 0}
