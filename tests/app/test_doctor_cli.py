"""``inspection-station doctor``: one line per check, JSON on request, non-zero when a check fails."""

from __future__ import annotations

import hashlib
import json
import re

from app.cli import main

LINE = re.compile(r"^(OK|WARN|FAIL) +\S")


def _card(tmp_path, good: bool = True):
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"\x00weights" * 512)
    sha = hashlib.sha256(weights.read_bytes() if good else b"other").hexdigest()
    card = tmp_path / "model.json"
    card.write_text(json.dumps({"classes": ["scratch"], "weights_file": "model.pt", "sha256": sha}))
    return card


def test_a_healthy_machine_one_line_per_check(tmp_path, data_dir, capsys, monkeypatch):
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    rc = main(["doctor", "--data-dir", str(data_dir), "--model-card", str(_card(tmp_path)), "--min-free-gb", "0"])
    out = capsys.readouterr().out.splitlines()
    assert rc == 0, out
    checks = out[1:-1]
    assert all(LINE.match(ln) for ln in checks), checks
    names = " ".join(checks)
    for name in ("configuration", "Python", "PySide6", "pyqtgraph", "numpy", "opencv", "torch", "sqlite-utils",
                 "Qt platform", "GPU", "cameras", "data directory", "databases", "built-in model"):
        assert name in names
    assert not any(ln.startswith("FAIL") for ln in checks)
    assert "0 FAIL" in out[-1] and "ready" in out[-1]


def test_every_failure_is_a_fail_line_and_the_exit_status_says_so(tmp_path, data_dir, capsys, monkeypatch):
    monkeypatch.setenv("QT_QPA_PLATFORM", "bogus")
    (data_dir / "feedback.sqlite").write_bytes(b"garbage" * 300)
    rc = main(["doctor", "--data-dir", str(data_dir), "--model-card", str(_card(tmp_path, good=False))])
    out = capsys.readouterr().out
    assert rc == 1
    fails = {ln.split()[1]: ln for ln in out.splitlines() if ln.startswith("FAIL")}
    assert set(fails) == {"Qt", "database", "built-in"}, out
    assert "'bogus'" in fails["Qt"]
    assert "feedback.sqlite cannot be read as SQLite" in fails["database"]
    assert "do not match their card" in fails["built-in"]
    assert "3 FAIL" in out and "NOT ready" in out


def test_json_output(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    notadir = tmp_path / "data"
    notadir.write_text("x")
    rc = main(["doctor", "--json", "--data-dir", str(notadir), "--model-card", str(tmp_path / "none.json")])
    report = json.loads(capsys.readouterr().out)
    assert rc == 1 and report["ok"] is False and report["summary"]["FAIL"] == 1
    by_name = {c["name"]: c for c in report["checks"]}
    assert by_name["data directory"]["status"] == "FAIL" and "not a directory" in by_name["data directory"]["message"]
    assert by_name["built-in model"] == {"name": "built-in model", "status": "WARN",
                                         "message": by_name["built-in model"]["message"]}
    assert "no built-in model installed" in by_name["built-in model"]["message"]
    assert set(report) == {"version", "machine", "data_dir", "checks", "summary", "ok"}
