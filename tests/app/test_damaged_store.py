"""A damaged station database ends every command that reads it in one sentence naming the file.

The store is made real once (decisions, frames, images, users, the audit trail, written by the engine's own
API), then copied into a fresh data directory per case and damaged: random bytes, cut to half its size, or
made read-only. Each command runs as the user runs it, in a subprocess.
"""

import os
import random
import shutil
import subprocess
import sys

import numpy as np
import pytest

from engine.core.frame import Box
from engine.review.feedback import Decision, FeedbackStore, FrameForReview
from engine.security.auth import AuthStore
from engine.storage.db import DB_NAME

EXE = shutil.which("inspection-station") or ""
BADGE, PIN = "900", "4711"

COMMANDS = {
    "feedback list": ["feedback", "list"],
    "audit verify": ["audit", "verify"],
    "audit export": ["audit", "export", "--out", "{out}/trail.html", "--badge", BADGE],
    "users list": ["users", "list", "--badge", BADGE],
    "export": ["export", "--out", "{out}/bundle", "--badge", BADGE],
    "agreement": ["agreement", "--badge", BADGE],
    "readiness": ["readiness", "--reference", "builtin", "--json", "--badge", BADGE],
}


def _random_bytes(path):
    path.write_bytes(random.Random(0).randbytes(path.stat().st_size))


def _half(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _read_only(path):
    path.chmod(0o444)


DAMAGES = {"random bytes": _random_bytes, "half": _half, "read-only": _read_only}


@pytest.fixture(scope="module")
def real_store(tmp_path_factory):
    """A data directory with a store as the station writes it: decisions on real frames, an admin."""
    data = tmp_path_factory.mktemp("real") / "data"
    data.mkdir()
    AuthStore(data).add_user(BADGE, "Ada", "admin", PIN, None)
    store = FeedbackStore(data)
    try:
        for seq in range(1, 7):
            img = np.random.default_rng(seq).integers(0, 255, (48, 64, 3), dtype=np.uint8)
            fr = FrameForReview(img, "sim:test", seq, 1000.0 + seq,
                                (Box(5, 5, 20, 20, 0, "scratch", 0.8),), "builtin", "cpu", None, {"mean_luma": 80.0})
            store.submit(Decision(fr, "ana", "confirm" if seq % 2 else "reject", detection=0)).result(10)
    finally:
        store.close()
    assert not (data / f"{DB_NAME}-wal").exists()  # everything is in the one file
    return data


def _start(real_store, case_dir, command, damage):
    data = case_dir / "data"
    shutil.copytree(real_store, data)
    DAMAGES[damage](data / DB_NAME)
    argv = [a.format(out=case_dir) for a in COMMANDS[command]]
    cmd = [EXE] if EXE else [sys.executable, "-m", "app.cli"]
    return subprocess.Popen([*cmd, *argv, "--data-dir", str(data)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=case_dir, env={**os.environ, "INSPECTION_STATION_PIN": PIN})


@pytest.fixture(scope="module")
def outcomes(real_store, tmp_path_factory):
    """Every command on every damage, four at a time: (data dir, exit status, stderr) per case."""
    cases = [(c, d) for c in COMMANDS for d in DAMAGES]
    out, running = {}, {}
    for case in cases:
        case_dir = tmp_path_factory.mktemp("case")
        running[case] = (case_dir / "data", _start(real_store, case_dir, *case))
        if len(running) >= 4 or case == cases[-1]:
            for k, (data, proc) in running.items():
                _, err = proc.communicate(timeout=300)
                out[k] = (data, proc.returncode, err)
            running = {}
    return out


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("command", COMMANDS)
def test_a_damaged_store_is_one_sentence_naming_the_file(outcomes, command, damage):
    data, status, stderr = outcomes[command, damage]
    assert status == 2, (status, stderr)
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("inspection-station: error: ")
    assert str(data / DB_NAME) in lines[0]
