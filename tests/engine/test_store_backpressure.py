"""A producer faster than the disk is paced by the feedback store, never dropped; a run ends with all stored."""

import copy
import sqlite3
import threading
import time

import numpy as np

from engine.core.config import default_config
from engine.core.frame import Box
from engine.review.feedback import Ack, Decision, FeedbackStore, FrameForReview
from engine.review.router import OracleReviewer
from engine.runtime.station import Station
from engine.storage.db import DB_NAME, connect


def _rows(data_dir):
    con = sqlite3.connect(data_dir / DB_NAME)
    try:
        return {r[0] for r in con.execute("SELECT review_id FROM decisions")}
    finally:
        con.close()


def test_a_slow_writer_holds_the_submitter_instead_of_dropping(tmp_path):
    connect(tmp_path / DB_NAME).conn.close()
    # A queue of two, and an immediate error past three for a submitter that may not wait.
    store = FeedbackStore(tmp_path, backlog=2, max_pending=3, busy_timeout_s=120)
    holder = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None, timeout=5)
    holder.execute("BEGIN EXCLUSIVE")  # the writer cannot store anything until this ends: a very slow disk
    img = np.zeros((24, 32, 3), np.uint8)
    answers, handed = [], []

    def produce():
        for seq in range(12):
            fr = FrameForReview(img, "sim:slow", seq, 10.0 + seq, (Box(1, 1, 9, 9, 0, "scratch", 0.9),))
            d = Decision(fr, "ana", "confirm", detection=0)
            store.submit(d, on_ack=answers.append, wait=True)
            handed.append(d.review_id)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        deadline = time.monotonic() + 60
        while len(store._queue) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        producer.join(0.5)
        # Held: one decision in the writer's hands, two queued, the producer waiting for room.
        assert producer.is_alive() and len(handed) <= 3 and not answers
    finally:
        holder.execute("COMMIT")
        holder.close()
    producer.join(60)
    assert not producer.is_alive() and len(handed) == 12
    assert store.close() == 0
    assert len(answers) == 12 and all(isinstance(a, Ack) for a in answers)
    assert _rows(tmp_path) == set(handed)


def test_a_headless_auto_reviewed_run_stores_every_decision_it_submits(tmp_path):
    config = copy.deepcopy(default_config())
    # A short drain: the run's end waits for the writer while it stores, not a fixed time.
    config["storage"]["drain_timeout_s"] = 2.0
    uri = "sim://?seed=11&scenario=lighting-aging&realtime=0"  # full resolution: PNGs the disk feels
    s = Station(config, tmp_path, uri=uri, realtime=False, feedback=False, keep_trends=False, strict=True)
    s.pipeline_config.max_frames = 30
    s.load_model()
    s.review_automatically(OracleReviewer(0.95, "oracle"))
    deepest = []
    s.frame_done.connect(lambda r: deepest.append(len(s.store._queue)))
    s.open_source(uri)
    assert s.join(300)
    s.close()
    r = s.review_summary()
    assert r["submitted"] > 0 and r["failed"] == 0 and r["acknowledged"] == r["submitted"], r
    assert len(_rows(tmp_path)) == r["submitted"]
    assert max(deepest) <= 16  # the store's backlog: the line waited for the disk, nothing piled up
