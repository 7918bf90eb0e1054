import os
import sqlite3
import stat

import numpy as np
import pytest

from engine.storage.db import DB_NAME
from engine.review.feedback import Ack, Decision, FeedbackError, FeedbackStore, FrameForReview, list_decisions
from engine.core.frame import Box
from engine.review.router import OracleReviewer, ReviewRouter, RouterConfig, parse_auto_review


def frame(seq=1, value=None, dets=2):
    rng = np.random.default_rng(seq)
    img = rng.integers(0, 255, (64, 80, 3), dtype=np.uint8) if value is None else np.full((64, 80, 3), value,
                                                                                          np.uint8)
    boxes = tuple(Box(5 + 20 * i, 5, 15 + 20 * i, 20, i % 3, ("scratch", "dent", "contamination")[i % 3], 0.8)
                  for i in range(dets))
    return FrameForReview(img, "sim:test", seq, 1000.0 + seq, boxes, "builtin", "cpu", "ref1",
                          {"mean_luma": 80.0}, {"defects": []}, "near-threshold")


def test_a_decision_is_acknowledged_only_once_its_rows_and_image_are_durable(tmp_path):
    store = FeedbackStore(tmp_path)
    fr = frame()
    ack = store.submit(Decision(fr, "ana", "confirm", detection=0)).result(10)
    assert isinstance(ack, Ack) and ack.latency_ms > 0
    # Visible from another connection the moment it is acknowledged.
    con = sqlite3.connect(tmp_path / DB_NAME)
    row = con.execute("SELECT verdict, operator, old_class, new_class, old_box, score, model, reference_id,"
                      " queue_reason FROM decisions WHERE review_id = ?", [ack.review_id]).fetchone()
    assert row == ("confirm", "ana", "scratch", "scratch", "[5.0, 5.0, 15.0, 20.0]", 0.8, "builtin", "ref1",
                   "near-threshold")
    sha = con.execute("SELECT image_sha256 FROM frames WHERE id = ?", [ack.frame_id]).fetchone()[0]
    con.close()
    png = store.image_path(sha)
    import cv2

    assert np.array_equal(cv2.imread(str(png)), fr.image)  # lossless
    # The same frame reviewed again reuses its frame row and image.
    ack2 = store.submit(Decision(fr, "ana", "missed", new_box=(1, 2, 3, 4), new_class="dent")).result(10)
    assert ack2.frame_id == ack.frame_id
    store.close()


def test_undo_is_a_new_record_never_an_edit(tmp_path):
    store = FeedbackStore(tmp_path)
    fr = frame()
    first = store.submit(Decision(fr, "ana", "reject", detection=1)).result(10)
    store.submit(Decision(fr, "ana", "undo", undoes=first.review_id)).result(10)
    with pytest.raises(FeedbackError, match="no decision"):
        store.submit(Decision(fr, "ana", "undo", undoes="nonexistent")).result(10)
    store.close()
    rows = list_decisions(tmp_path)
    assert [r["verdict"] for r in rows] == ["reject", "undo"]
    assert rows[1]["undoes"] == first.review_id


def test_decisions_are_checked_before_they_are_queued():
    fr = frame()
    with pytest.raises(ValueError, match="names the detection"):
        Decision(fr, "ana", "confirm")
    with pytest.raises(ValueError, match="box drawn"):
        Decision(fr, "ana", "missed")
    with pytest.raises(ValueError, match="unknown verdict"):
        Decision(fr, "ana", "maybe", detection=0)
    with pytest.raises(ValueError, match="operator"):
        Decision(fr, "", "unsure")


def _immutable(path, on):
    """Make a folder read-only even for root (chattr +i); False where the file system cannot."""
    import subprocess

    r = subprocess.run(["chattr", "+i" if on else "-i", str(path)], capture_output=True)
    return r.returncode == 0


def test_a_read_only_data_directory_is_one_sentence(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    if os.geteuid() != 0:
        data.chmod(stat.S_IRUSR | stat.S_IXUSR)
    elif not _immutable(data, True):
        pytest.skip("cannot make a folder read-only for root here (chattr)")
    try:
        with pytest.raises(FeedbackError, match="cannot be written|read-only"):
            FeedbackStore(data)
    finally:
        if os.geteuid() == 0:
            _immutable(data, False)
        data.chmod(stat.S_IRWXU)
    assert list(data.iterdir()) == []


def test_a_full_disk_is_one_sentence_and_acknowledges_nothing_it_did_not_store(tmp_path):
    import subprocess

    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a small file system here")
    try:
        store = FeedbackStore(mnt)
        acked, error = [], None
        rng = np.random.default_rng(0)
        for i in range(20):  # incompressible 300 KB frames: the 2 MB disk fills up
            img = rng.integers(0, 255, (320, 320, 3), dtype=np.uint8)
            fr = FrameForReview(img, "sim:test", i, float(i), frame().detections)
            try:
                acked.append(store.submit(Decision(fr, "ana", "confirm", detection=0)).result(10).review_id)
            except FeedbackError as e:
                error = str(e)
                break
        store.close()
        assert error is not None and "full" in error
        stored = [r["review_id"] for r in list_decisions(mnt)]
        assert stored == acked
        con = sqlite3.connect(mnt / DB_NAME)
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        con.close()
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_a_store_that_cannot_write_acknowledges_nothing(tmp_path):
    """The images folder turns into a file under the store: every decision fails, none is acknowledged."""
    store = FeedbackStore(tmp_path)
    store.submit(Decision(frame(1), "ana", "confirm", detection=0)).result(10)
    images = tmp_path / "images"
    for sub in images.iterdir():
        for f in sub.iterdir():
            f.unlink()
        sub.rmdir()
    images.rmdir()
    images.write_text("in the way")
    with pytest.raises(FeedbackError):
        store.submit(Decision(frame(2), "ana", "confirm", detection=0)).result(10)
    store.close()
    assert [r["sequence"] for r in list_decisions(tmp_path)] == [1]


def test_a_corrupt_database_is_refused_and_never_overwritten(tmp_path):
    db = tmp_path / DB_NAME
    junk = b"SQLite format 3\x00" + os.urandom(4096)
    db.write_bytes(junk)
    with pytest.raises(FeedbackError, match="damaged|not a database|failed"):
        FeedbackStore(tmp_path)
    assert db.read_bytes() == junk


def test_existing_decisions_survive_reopening(tmp_path):
    store = FeedbackStore(tmp_path)
    ack = store.submit(Decision(frame(), "ana", "unsure")).result(10)
    store.close()
    again = FeedbackStore(tmp_path)
    again.close()
    assert [r["review_id"] for r in list_decisions(tmp_path)] == [ack.review_id]


def test_recovery_removes_images_no_row_names(tmp_path):
    store = FeedbackStore(tmp_path)
    store.submit(Decision(frame(), "ana", "unsure")).result(10)
    store.close()
    stray = tmp_path / "images" / "ab" / ("ab" + "0" * 62 + ".png")
    stray.parent.mkdir(exist_ok=True)
    stray.write_bytes(b"left by a crash between rename and commit")
    (stray.parent / "x.png.tmp").write_bytes(b"half written")
    store = FeedbackStore(tmp_path)
    store.close()
    assert store.recovered == {"temporary": 1, "orphans": 1, "kept": 0, "missing": 0}
    assert not stray.exists()


def test_samples_are_bounded_and_the_size_cap_prunes_only_confirmed_frames(tmp_path):
    store = FeedbackStore(tmp_path, max_samples=3, max_image_bytes=10**12)
    for i in range(6):
        store.keep_sample(frame(100 + i)).result(10)
    keep = store.submit(Decision(frame(1), "ana", "reject", detection=0)).result(10)
    for i in range(2, 6):
        store.submit(Decision(frame(i), "ana", "confirm", detection=0)).result(10)
    store.close()
    con = sqlite3.connect(tmp_path / DB_NAME)
    assert con.execute("SELECT count(*) FROM frames WHERE kept_as = 'sample'").fetchone()[0] == 3
    sizes = con.execute("SELECT sum(bytes) FROM images").fetchone()[0]
    con.close()
    store = FeedbackStore(tmp_path, max_samples=3, max_image_bytes=sizes // 3)
    dropped = store.prune()
    store.close()
    assert dropped > 0
    con = sqlite3.connect(tmp_path / DB_NAME)
    verdicts = [r[0] for r in con.execute("SELECT verdict FROM decisions")]
    assert "reject" in verdicts  # corrections are never pruned
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    on_disk = {p.stem for p in (tmp_path / "images").rglob("*.png")}
    in_rows = {r[0] for r in con.execute("SELECT sha256 FROM images")}
    assert on_disk == in_rows  # no image without its row, no row without its image
    assert keep.review_id in {r[0] for r in con.execute("SELECT review_id FROM decisions")}
    con.close()


def test_oracle_reviews_from_the_truth():
    fr = frame(dets=2)
    truth = {"defects": [{"box": [5, 5, 15, 20], "class_id": 0, "class_name": "scratch"},
                         {"box": [50, 30, 60, 40], "class_id": 1, "class_name": "dent"}]}
    fr = FrameForReview(fr.image, fr.source, fr.sequence, fr.timestamp, fr.detections, ground_truth=truth)
    verdicts = [(d.verdict, d.detection, d.new_class) for d in OracleReviewer(1.0).review(fr)]
    assert verdicts == [("confirm", 0, None), ("reject", 1, None), ("missed", None, "dent")]
    errs = [d.verdict for _ in range(200) for d in OracleReviewer(0.5, seed=_).review(fr)[:1]]
    assert 0.3 < errs.count("reject") / len(errs) < 0.7
    assert parse_auto_review("oracle:0.9,operator=bob") == (0.9, "bob")
    with pytest.raises(ValueError):
        parse_auto_review("human")


def test_router_reasons_and_pace():
    r = ReviewRouter(RouterConfig(threshold=0.5, margin=0.1, sample_rate=0.0, max_per_hour=2, burst=2, quotas={}))
    assert r.reason([0.55], {}, now=0) == "near-threshold"
    assert r.reason([0.95], {"novelty": 3.0}, now=1) == "novel"
    assert r.reason([0.95], {"drift_level": "alarm"}, now=2) is None  # the burst is spent
    assert r.capped == 1
    assert r.reason([0.95], {"drift_level": "alarm"}, now=1802) == "drift-alarm"  # a token every half hour
    assert r.reason([0.95], {}, now=3800) is None


def test_close_under_a_lock_fails_what_is_left_and_commits_nothing_after(data_dir):
    store = FeedbackStore(data_dir, busy_timeout_s=0.2)
    holder = sqlite3.connect(data_dir / DB_NAME, isolation_level=None, timeout=5)
    holder.execute("BEGIN EXCLUSIVE")
    answers = []
    try:
        img = np.zeros((24, 32, 3), np.uint8)
        futs = []
        for seq in range(6):
            fr = FrameForReview(img, "sim:lock", seq, 10.0 + seq, (Box(1, 1, 9, 9, 0, "scratch", 0.9),))
            futs.append(store.submit(Decision(fr, "ana", "confirm", detection=0), on_ack=answers.append))
        left = store.close(timeout=0.3)
        assert all(f.done() for f in futs) and len(answers) == 6  # every one answered before close returns
        assert all(isinstance(a, FeedbackError) for a in answers)
        assert 1 <= left <= 6 and sum("the station stopped" in str(a) for a in answers) == left
        late = store.submit(Decision(fr, "ana", "unsure"))
        assert isinstance(late.exception(1), FeedbackError)  # nothing is taken after close
    finally:
        holder.execute("COMMIT")
        holder.close()
    con = sqlite3.connect(data_dir / DB_NAME)
    try:
        assert con.execute("SELECT count(*) FROM decisions").fetchone()[0] == 0
    finally:
        con.close()
