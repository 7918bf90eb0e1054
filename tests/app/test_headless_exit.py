"""A headless auto-reviewed run whose line is faster than the disk ends cleanly, every decision stored.

A real process: the aged lamp at full resolution gives the store several PNG-bearing decisions a frame, more
than it writes in the time, with a drain timeout of one second. The line waits for the store instead of
leaving decisions behind, and the process exits with status 0, never aborted by a thread still in native code.
"""

import json
import sqlite3
import subprocess
import sys

from engine.storage.db import DB_NAME


def test_a_run_faster_than_its_store_stores_everything_and_exits_cleanly(tmp_path):
    data = tmp_path / "data"
    config = tmp_path / "station.toml"
    config.write_text("[storage]\ndrain_timeout_s = 1.0\n")
    cmd = [sys.executable, "-m", "app.cli", "run", "--headless", "--source",
           "sim://?scenario=lighting-aging&seed=11&realtime=0", "--frames", "30", "--auto-review", "oracle:0.95",
           "--data-dir", str(data), "--config", str(config)]
    r = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600)
    assert "terminate called" not in r.stderr and r.returncode == 0, r.stderr
    reviews = json.loads(r.stdout.strip().splitlines()[-1])["reviews"]
    assert reviews["submitted"] > 0 and reviews["failed"] == 0
    assert reviews["acknowledged"] == reviews["submitted"]
    con = sqlite3.connect(data / DB_NAME)
    try:
        assert con.execute("SELECT count(*) FROM decisions").fetchone()[0] == reviews["submitted"]
    finally:
        con.close()
