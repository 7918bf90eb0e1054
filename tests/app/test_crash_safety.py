"""SIGKILL during auto-review, many times in a row: no acknowledged decision is lost, the database stays
sound, and (after the store's recovery on the next start) no image is without its row or row without its image.

The number of kills is ``CRASH_RUNS`` (default 10 in the test run; the figure in the README is from 50).
"""

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from engine.storage.db import DB_NAME
from engine.review.feedback import FeedbackStore

RUNS = int(os.environ.get("CRASH_RUNS", "10"))


def acked_ids(jsonl):
    ids = []
    if not jsonl.exists():
        return ids
    for line in jsonl.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # the line being written when the process died
        if rec.get("type") == "review_ack":
            ids.append(rec["review_id"])
    return ids


@pytest.mark.slow
def test_sigkill_during_auto_review_loses_no_acknowledged_decision(tmp_path):
    data = tmp_path / "data"
    rng = random.Random(1234)
    total_acked = 0
    for run in range(RUNS):
        out = tmp_path / f"run{run}.jsonl"
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "run", "--headless", "--source",
             f"sim://?seed={run}&width=320&height=256&start={run * 500}", "--frames", "100000",
             "--auto-review", "oracle:0.9,operator=crash", "--jsonl", str(out), "--data-dir", str(data)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # Wait for the first acknowledgement, then kill at a random moment.
        deadline = time.monotonic() + 60
        while not acked_ids(out) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        if proc.poll() is not None or not acked_ids(out):
            proc.kill()
            proc.wait(10)
            pytest.fail(f"run {run}: no decision acknowledged within 60 s: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(rng.uniform(0.0, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        proc.stderr.close()
        acked = acked_ids(out)
        total_acked += len(acked)
        con = sqlite3.connect(data / DB_NAME)
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = {r[0] for r in con.execute("SELECT review_id FROM decisions")}
        con.close()
        missing = set(acked) - stored
        assert not missing, f"run {run}: {len(missing)} acknowledged decisions lost"
    # The next start recovers what a kill between an image's rename and its row's commit leaves.
    store = FeedbackStore(data)
    store.close()
    con = sqlite3.connect(data / DB_NAME)
    rows = {r[0] for r in con.execute("SELECT sha256 FROM images")}
    framed = {r[0] for r in con.execute("SELECT image_sha256 FROM frames")}
    con.close()
    files = {p.stem for p in (data / "images").rglob("*.png")}
    assert files == rows and framed <= rows
    assert not list((data / "images").rglob("*.tmp"))
    assert total_acked >= RUNS
