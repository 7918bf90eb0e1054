"""Users, credentials and the audit trail from the command line, on a real data directory."""

import argparse
import json
import sqlite3

import pytest

from app.cli.credentials import PIN_ENV, require
from app.cli import main
from app.cli.users import NEW_PIN_ENV
from engine.core.errors import StationError
from engine.security import audit
from engine.storage.db import DB_NAME

SRC = "sim://?seed=100&width=160&height=128"


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def secured(data_dir, monkeypatch, capsys):
    """A station with an admin (100), an operator (200), a technician (300) and an engineer (400)."""
    d = str(data_dir)
    monkeypatch.setenv(NEW_PIN_ENV, "1234")
    code, out, _ = run(capsys, "users", "add", "100", "--name", "Ada Admin", "--data-dir", d)
    assert code == 0 and "first admin" in out
    monkeypatch.setenv(PIN_ENV, "1234")
    for badge, role in (("200", "operator"), ("300", "technician"), ("400", "engineer")):
        monkeypatch.setenv(NEW_PIN_ENV, f"{badge}0")
        assert run(capsys, "users", "add", badge, "--role", role, "--badge", "100", "--data-dir", d)[0] == 0
    monkeypatch.delenv(PIN_ENV)
    monkeypatch.delenv(NEW_PIN_ENV)
    return data_dir


def test_first_user_is_the_admin_then_only_admins_manage_users(secured, monkeypatch, capsys):
    d = str(secured)
    monkeypatch.setenv(PIN_ENV, "1234")
    code, out, _ = run(capsys, "users", "list", "--badge", "100", "--data-dir", d)
    assert code == 0 and "operator" in out and "engineer" in out and "Ada Admin" in out
    monkeypatch.setenv(PIN_ENV, "2000")
    code, _, err = run(capsys, "users", "list", "--badge", "200", "--data-dir", d)
    assert code == 2 and "needs the admin role" in err
    monkeypatch.setenv(NEW_PIN_ENV, "5555")
    code, _, err = run(capsys, "users", "add", "500", "--badge", "200", "--data-dir", d)
    assert code == 2 and "admin" in err
    monkeypatch.setenv(PIN_ENV, "1234")
    assert run(capsys, "users", "disable", "200", "--reason", "left", "--badge", "100", "--data-dir", d)[0] == 0
    monkeypatch.setenv(PIN_ENV, "2000")
    code, _, err = run(capsys, "reference", "build", "--source", SRC, "--frames", "60", "--no-embeddings",
                       "--out", str(secured / "r.npz"), "--badge", "200", "--data-dir", d)
    assert code == 2 and "disabled" in err
    with pytest.raises(SystemExit):  # there is no way to give a PIN on the command line
        main(["users", "add", "600", "--role", "operator", "--pin", "1234", "--data-dir", d])


def test_an_operator_cannot_build_a_reference_an_engineer_can(secured, monkeypatch, capsys, tmp_path):
    d = str(secured)
    ref = tmp_path / "ref.npz"
    args = ("reference", "build", "--source", SRC, "--frames", "60", "--no-embeddings", "--out", str(ref),
            "--data-dir", d)
    code, _, err = run(capsys, *args)
    assert code == 2 and "needs engineer credentials" in err and "--badge" in err
    monkeypatch.setenv(PIN_ENV, "2000")
    code, _, err = run(capsys, *args, "--badge", "200")
    assert code == 2 and "needs the engineer role" in err and not ref.exists()
    monkeypatch.setenv(PIN_ENV, "3000")
    code, _, err = run(capsys, *args, "--badge", "300")  # a technician neither
    assert code == 2 and "engineer" in err
    monkeypatch.setenv(PIN_ENV, "9999")
    code, _, err = run(capsys, *args, "--badge", "400")
    assert code == 2 and "wrong PIN" in err and not ref.exists()
    monkeypatch.setenv(PIN_ENV, "4000")
    code, _, _ = run(capsys, *args, "--badge", "400")
    assert code == 0 and ref.exists()
    log = [(e["action"], e["user"], e["meaning"]) for e in audit.entries(secured)]
    assert ("reference build_refused", "200", "authored") in log
    assert ("signature_failed", "400", "authored") in log
    assert ("signature", "400", "authored") in log and ("reference_built", "400", "authored") in log


@pytest.mark.parametrize("permission", ["export", "recalibrate", "tolerances", "models", "references"])
def test_an_operator_signs_for_none_of_the_engineers_work(secured, monkeypatch, permission):
    monkeypatch.setenv(PIN_ENV, "2000")
    args = argparse.Namespace(data_dir=secured, badge="200", command="test")
    with pytest.raises(StationError, match="needs the (technician|engineer) role"):
        require(args, permission, "approved")
    monkeypatch.setenv(PIN_ENV, "4000")
    assert require(argparse.Namespace(data_dir=secured, badge="400", command="test"), permission,
                   "approved").role == "engineer"


def test_repeated_wrong_pins_lock_the_badge_on_the_command_line_too(secured, monkeypatch, capsys, tmp_path):
    d = str(secured)
    args = ("audit", "export", "--out", str(tmp_path / "a.html"), "--badge", "400", "--data-dir", d)
    monkeypatch.setenv(PIN_ENV, "0000")
    for _ in range(4):
        assert run(capsys, *args)[0] == 2
    code, _, err = run(capsys, *args)
    assert code == 2 and "now locked" in err
    monkeypatch.setenv(PIN_ENV, "4000")
    code, _, err = run(capsys, *args)
    assert code == 2 and "locked" in err
    monkeypatch.setenv(PIN_ENV, "1234")
    assert run(capsys, "users", "unlock", "400", "--badge", "100", "--data-dir", d)[0] == 0
    monkeypatch.setenv(PIN_ENV, "4000")
    assert run(capsys, *args)[0] == 0 and (tmp_path / "a.html").exists()


def test_audit_verify_and_export_and_a_tampered_file(secured, monkeypatch, capsys, tmp_path):
    d = str(secured)
    code, out, _ = run(capsys, "audit", "verify", "--data-dir", d)
    assert code == 0 and out.startswith("audit trail intact")
    monkeypatch.setenv(PIN_ENV, "2000")
    code, _, err = run(capsys, "audit", "export", "--out", str(tmp_path / "t.csv"), "--badge", "200",
                       "--data-dir", d)
    assert code == 2 and "engineer" in err
    monkeypatch.setenv(PIN_ENV, "4000")
    code, out, _ = run(capsys, "audit", "export", "--out", str(tmp_path / "t.csv"), "--badge", "400",
                       "--data-dir", d)
    assert code == 0 and (tmp_path / "t.csv").read_text().startswith("id,time_utc,user")
    con = sqlite3.connect(secured / DB_NAME, isolation_level=None)
    con.execute("DROP TRIGGER audit_log_no_update")
    con.execute("UPDATE audit_log SET reason = '' WHERE id = 4")
    con.close()
    code, out, _ = run(capsys, "audit", "verify", "--json", "--data-dir", d)
    rec = json.loads(out)
    assert code == 1 and rec["ok"] is False and rec["broken_entry"] == 4
    code, out, _ = run(capsys, "audit", "verify", "--data-dir", d)
    assert code == 1 and "broken at entry 4" in out


def test_a_station_without_users_runs_unsigned_and_says_so(data_dir, capsys, tmp_path):
    ref = tmp_path / "ref.npz"
    code, _, _ = run(capsys, "reference", "build", "--source", SRC, "--frames", "60", "--no-embeddings",
                     "--out", str(ref), "--data-dir", str(data_dir))
    assert code == 0
    e = next(x for x in audit.entries(data_dir) if x["action"] == "reference build")
    assert e["role"] == "unsecured" and "not secured" in e["reason"]
    code, _, err = run(capsys, "users", "add", "1", "--role", "operator", "--data-dir", str(data_dir))
    assert code == 2 and "first user must be an admin" in err


@pytest.mark.parametrize("argv", [
    ["users", "add", "--pin", "4821", "bob"],
    ["users", "add", "bob", "--pin=4821"],
    ["users", "add", "bob", "--pin4821"],
    ["users", "add", "bob", "--new-pin", "4821"],
    ["users", "disable", "bob", "--badge", "100", "--PIN", "4821"],
    ["export", "--out", "b", "--password", "4821"],
    ["--pin", "4821"],
    ["users", "add", "bob", "4821"],  # a PIN typed where no argument goes
    ["users", "add", "bob", "--role", "4821"],  # a PIN typed as an option's value
    ["users", "unlock", "--", "bob", "4821"],
])
def test_a_pin_typed_on_the_command_line_is_never_printed_back(argv, data_dir, capsys):
    with pytest.raises(SystemExit) as e:
        main([*argv, "--data-dir", str(data_dir)])
    assert e.value.code == 2
    out = capsys.readouterr()
    assert "4821" not in out.err and "4821" not in out.out
    assert "error:" in out.err
    if any(a.lower().startswith(("--pin", "--new-pin", "--password")) for a in argv):
        assert "never given on the command line" in out.err and PIN_ENV in out.err


def test_the_installed_command_does_not_echo_a_pin_either(tmp_path):
    import shutil
    import subprocess
    import sys

    exe = shutil.which("inspection-station")
    cmd = [exe] if exe else [sys.executable, "-m", "app.cli"]
    p = subprocess.run([*cmd, "users", "add", "--pin", "4821", "bob", "--data-dir", str(tmp_path / "d")],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert p.returncode == 2 and "4821" not in p.stderr + p.stdout and "never given" in p.stderr
