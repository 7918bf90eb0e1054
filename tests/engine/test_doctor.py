"""The machine checks: each failure they look for, made real and reported in one clear line."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import sys
from pathlib import Path

from engine.ops import doctor
from engine.ops.doctor import FAIL, OK, WARN

PROBE = [sys.executable, "-c", "import sys; from app.cli.doctor import qt_probe; sys.exit(qt_probe())"]


def test_python_version():
    assert doctor.check_python().status == OK
    old = doctor.check_python((3, 9, 18))
    assert old.status == FAIL and "3.9.18 is too old" in old.message and "3.11" in old.message


def test_key_packages_are_found_with_their_versions():
    checks = {c.name: c for c in doctor.check_packages()}
    assert set(checks) == {"PySide6", "pyqtgraph", "numpy", "opencv", "torch", "sqlite-utils"}
    assert all(c.status == OK for c in checks.values())
    import numpy

    assert checks["numpy"].message == numpy.__version__


def test_a_missing_or_broken_package_fails(tmp_path, monkeypatch):
    missing = doctor.check_package("frobnicator", ("frobnicator-dist",), "frobnicator_mod")
    assert missing.status == FAIL and "not installed" in missing.message
    (tmp_path / "brokenmod.py").write_text("raise ImportError('libfoo.so.1: cannot open shared object file')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    broken = doctor.check_package("broken", ("brokenmod-dist",), "brokenmod")
    assert broken.status == FAIL and "cannot be imported: libfoo.so.1" in broken.message


# ------------------------------------------------------------------ Qt, in a child process


def test_qt_starts_with_the_offscreen_plugin():
    c = doctor.check_qt_platform(PROBE, {**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert c.status == OK and "'offscreen' plugin" in c.message


def test_a_missing_qt_platform_plugin_fails_with_qts_reason():
    c = doctor.check_qt_platform(PROBE, {**os.environ, "QT_QPA_PLATFORM": "nosuchplugin"})
    assert c.status == FAIL
    assert "platform plugin 'nosuchplugin' cannot start" in c.message and "nosuchplugin" in c.message.split(":", 1)[1]
    assert "os-deps.sh" in c.message


def test_a_hanging_or_crashing_qt_cannot_take_the_doctor_down():
    hang = doctor.check_qt_platform([sys.executable, "-c", "import time; time.sleep(30)"], timeout_s=0.5)
    assert hang.status == FAIL and "did not start within 0.5 s" in hang.message
    crash = doctor.check_qt_platform([sys.executable, "-c", "import os; os.abort()"], timeout_s=10)
    assert crash.status == FAIL and "crashed (SIGABRT)" in crash.message


def test_without_a_display_the_offscreen_plugin_and_the_xcb_libraries_are_checked():
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")}
    c = doctor.check_qt_platform(PROBE, env)
    assert c.status in (WARN, FAIL)  # FAIL only where the xcb plugin's libraries are missing
    assert "no display" in c.message or "xcb" in c.message


# ------------------------------------------------------------------ hardware


def test_gpu_absent_or_broken_driver(tmp_path):
    absent = doctor.check_gpu(nvidia_smi=str(tmp_path / "nvidia-smi"))
    assert absent.status == OK and "no NVIDIA GPU" in absent.message and "CPU path" in absent.message
    fake = tmp_path / "bin" / "nvidia-smi"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho \"NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\"\n"
                    "exit 9\n")
    fake.chmod(0o755)
    broken = doctor.check_gpu(nvidia_smi=str(fake))
    assert broken.status == WARN and "couldn't communicate with the NVIDIA driver" in broken.message


def test_gpu_present_but_unusable_says_why(tmp_path):
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'NVIDIA RTX A2000, 550.54'\n")
    fake.chmod(0o755)
    c = doctor.check_gpu(nvidia_smi=str(fake))
    assert "NVIDIA RTX A2000 driver 550.54" in c.message
    try:
        import cupy  # noqa: F401
        import torch

        usable = torch.cuda.is_available()
    except ImportError:
        usable = False
    if not usable:
        assert c.status == WARN and ("CuPy" in c.message or "PyTorch" in c.message)


def test_cameras(tmp_path):
    none = doctor.check_cameras(str(tmp_path / "video*"))
    assert none.status == WARN and "no camera devices found" in none.message
    (tmp_path / "video0").touch()
    found = doctor.check_cameras(str(tmp_path / "video*"))
    assert found.status == OK and "1 found" in found.message and "video0" in found.message


# ------------------------------------------------------------------ data directory and databases


def test_data_dir_writable_missing_and_short_of_space(tmp_path):
    ok = doctor.check_data_dir(tmp_path, min_free_bytes=0)
    assert ok.status == OK and "is writable" in ok.message and "GiB free" in ok.message
    assert list(tmp_path.iterdir()) == []  # the probe file is gone
    later = doctor.check_data_dir(tmp_path / "not" / "yet", min_free_bytes=0)
    assert later.status == OK and "does not exist yet" in later.message
    short = doctor.check_data_dir(tmp_path, min_free_bytes=1 << 60)
    assert short.status == WARN and "only" in short.message and "free" in short.message


def test_data_dir_that_is_a_file_or_under_a_file_fails(tmp_path):
    f = tmp_path / "data"
    f.write_text("not a folder")
    assert doctor.check_data_dir(f).status == FAIL
    assert "is not a directory" in doctor.check_data_dir(f).message
    under = doctor.check_data_dir(f / "station")
    assert under.status == FAIL and "cannot be created" in under.message


def test_unwritable_data_dir_fails(tmp_path):
    if os.geteuid() == 0:
        target = Path("/sys")  # even root cannot create a file there
    else:
        target = tmp_path / "locked"
        target.mkdir()
        target.chmod(stat.S_IRUSR | stat.S_IXUSR)
    c = doctor.check_data_dir(target, min_free_bytes=0)
    if os.geteuid() != 0:
        target.chmod(0o700)
    assert c.status == FAIL and "is not writable" in c.message and str(target) in c.message


def _make_db(path: Path, rows: int = 2000) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE feedback (id INTEGER PRIMARY KEY, label TEXT, score REAL)")
    con.execute("CREATE INDEX by_label ON feedback (label)")
    con.executemany("INSERT INTO feedback (label, score) VALUES (?, ?)",
                    [(f"label-{i % 97}-{'x' * 40}", i / rows) for i in range(rows)])
    con.commit()
    con.close()


def test_no_database_yet(data_dir):
    (c,) = doctor.check_databases(data_dir)
    assert c.status == OK and "no database" in c.message


def test_healthy_and_corrupt_databases(data_dir):
    _make_db(data_dir / "feedback.sqlite")
    (data_dir / "audit.db").write_bytes(b"this is not a database at all" * 200)
    _make_db(data_dir / "trends.sqlite")
    with open(data_dir / "trends.sqlite", "r+b") as f:  # trample the middle of the file: broken b-tree pages
        f.seek(4096 * 5)
        f.write(os.urandom(4096 * 3))
    checks = {c.name: c for c in doctor.check_databases(data_dir)}
    assert set(checks) == {"database feedback.sqlite", "database audit.db", "database trends.sqlite"}
    assert checks["database feedback.sqlite"].status == OK and "integrity ok" in checks["database feedback.sqlite"].message
    audit = checks["database audit.db"]
    assert audit.status == FAIL and "cannot be read as SQLite" in audit.message and "audit.db" in audit.message
    trends = checks["database trends.sqlite"]
    assert trends.status == FAIL and "trends.sqlite" in trends.message
    assert "damaged" in trends.message or "cannot be read" in trends.message


# ------------------------------------------------------------------ model file


def _card(tmp_path: Path, weights: bytes, sha: str | None = None) -> Path:
    import hashlib

    (tmp_path / "det.pt").write_bytes(weights)
    card = tmp_path / "det.json"
    card.write_text(json.dumps({"name": "t", "classes": ["a"], "weights_file": "det.pt",
                                "sha256": sha or hashlib.sha256(weights).hexdigest()}))
    return card


def test_model_hash_matches_or_not(tmp_path):
    card = _card(tmp_path, b"weights" * 1000)
    ok = doctor.check_model(card)
    assert ok.status == OK and "det.pt matches its card" in ok.message
    (tmp_path / "det.pt").write_bytes(b"weights" * 999 + b"WEIGHTS")  # damaged in place
    bad = doctor.check_model(card)
    assert bad.status == FAIL and "do not match their card" in bad.message
    (tmp_path / "det.pt").unlink()
    gone = doctor.check_model(card)
    assert gone.status == FAIL and "are missing" in gone.message


def test_no_model_installed_and_unreadable_card(tmp_path):
    none = doctor.check_model(tmp_path / "builtin_detector.json")
    assert none.status == WARN and "no built-in model installed" in none.message
    (tmp_path / "bad.json").write_text("{not json")
    assert doctor.check_model(tmp_path / "bad.json").status == FAIL


def test_run_all_turns_a_broken_check_into_a_fail_line(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("udev exploded")

    monkeypatch.setattr(doctor, "check_cameras", boom)
    checks = doctor.run_all(tmp_path, [sys.executable, "-c", "print('{\"platform\": \"x\"}')"],
                            model_card=tmp_path / "none.json", min_free_bytes=0,
                            environ={"QT_QPA_PLATFORM": "offscreen"})
    cam = [c for c in checks if c.name == "cameras"]
    assert cam and cam[0].status == FAIL and "udev exploded" in cam[0].message
    assert [c.name for c in checks][:2] == ["Python", "PySide6"]
