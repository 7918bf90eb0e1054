"""Packaging files: the kiosk service unit, the desktop entry, the icon, and the installer's dry run."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"
DEFAULT_PREFIX = "/opt/inspection-station"


def _render(name: str, prefix: Path) -> str:
    """What install.sh writes: the packaging file with the default prefix replaced."""
    return (PACKAGING / name).read_text().replace(DEFAULT_PREFIX, str(prefix))


def _keys(text: str) -> dict[str, str]:
    return dict(ln.split("=", 1) for ln in text.splitlines() if "=" in ln and not ln.startswith("#"))


def test_service_unit_restarts_on_crash_and_on_hang():
    keys = _keys((PACKAGING / "inspection-station.service").read_text())
    assert keys["Type"] == "notify" and keys["NotifyAccess"] == "main"
    assert int(keys["WatchdogSec"]) >= 10 and keys["Restart"] == "on-failure"
    assert keys["ExecStart"] == f"{DEFAULT_PREFIX}/venv/bin/inspection-station gui"
    assert keys["WantedBy"] == "graphical-session.target" and keys["StartLimitIntervalSec"] == "0"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed (Debian package: systemd)")
def test_service_unit_passes_systemd_analyze_verify(tmp_path):
    prefix = tmp_path / "prefix"
    exe = prefix / "venv" / "bin" / "inspection-station"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    unit = tmp_path / "inspection-station.service"
    unit.write_text(_render("inspection-station.service", prefix))
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "SYSTEMD_LOG_COLOR": "0"}
    r = subprocess.run(["systemd-analyze", "--user", "verify", str(unit)], capture_output=True, text=True,
                       env=env, timeout=60)
    assert r.returncode == 0 and r.stderr.strip() == "" and r.stdout.strip() == "", r.stderr + r.stdout


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None,
                    reason="desktop-file-validate is not installed (Debian package: desktop-file-utils)")
def test_desktop_entry_validates(tmp_path):
    entry = tmp_path / "inspection-station.desktop"
    entry.write_text(_render("inspection-station.desktop", tmp_path))
    for f in (PACKAGING / "inspection-station.desktop", entry):
        r = subprocess.run(["desktop-file-validate", str(f)], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and r.stdout.strip() == "", r.stdout + r.stderr


def test_desktop_entry_names_the_shipped_icon_and_the_gui_program():
    keys = _keys((PACKAGING / "inspection-station.desktop").read_text())
    assert keys["Icon"] == "inspection-station" and keys["Exec"].endswith("/venv/bin/inspection-station-gui")
    svg = (ROOT / "resources" / "inspection-station.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    png = (ROOT / "resources" / "inspection-station.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(png[16:20], "big") == int.from_bytes(png[20:24], "big") == 256  # IHDR: 256 x 256


def _dry_run(tmp_path: Path, *args: str, gpu: bool | None = None) -> subprocess.CompletedProcess:
    fake = tmp_path / "fakebin"
    fake.mkdir(exist_ok=True)
    path = os.environ["PATH"]
    if gpu is not None:  # an nvidia-smi that works, or one whose driver is gone
        (fake / "nvidia-smi").write_text(f"#!/bin/sh\nexit {0 if gpu else 9}\n")
        (fake / "nvidia-smi").chmod(0o755)
        path = f"{fake}:{path}"
    env = {**os.environ, "PATH": path, "HOME": str(tmp_path / "home")}
    return subprocess.run(["bash", str(PACKAGING / "install.sh"), "--dry-run", *args], capture_output=True,
                          text=True, env=env, timeout=60)


def test_install_dry_run_prints_every_step_and_changes_nothing(tmp_path):
    prefix = tmp_path / "station"
    r = _dry_run(tmp_path, "--prefix", str(prefix), gpu=False)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "dry run, nothing is changed" in out
    assert "packaging/os-deps.sh" in out
    assert f"-m venv {prefix}/venv" in out
    pip = next(ln for ln in out.splitlines() if "pip install" in ln)
    assert "torch==2.13.0" in pip and pip.endswith(str(ROOT)) and "[gpu]" not in pip
    assert "inspection-station.desktop" in out and f"prefix {prefix}" in out
    assert "scalable/apps/inspection-station.svg" in out and "256x256/apps/inspection-station.png" in out
    assert "systemd/user/inspection-station.service" in out
    assert "would have done:" in out
    assert not prefix.exists() and not (tmp_path / "home").exists()


def test_install_dry_run_uses_the_gpu_extra_when_nvidia_smi_works(tmp_path):
    r = _dry_run(tmp_path, "--prefix", str(tmp_path / "p"), gpu=True)
    assert r.returncode == 0, r.stderr
    assert f"{ROOT}[gpu]" in r.stdout and "gpu extra" in r.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="--kiosk-user is for a root install")
def test_install_dry_run_for_a_kiosk_account(tmp_path):
    r = _dry_run(tmp_path, "--prefix", str(tmp_path / "p"), "--kiosk-user", "kiosk")
    assert r.returncode == 0, r.stderr
    assert "graphical-session.target.wants/inspection-station.service" in r.stdout
    assert "loginctl enable-linger kiosk" in r.stdout and "usermod -aG video kiosk" in r.stdout


def test_install_refuses_an_unknown_option(tmp_path):
    r = _dry_run(tmp_path, "--frobnicate")
    assert r.returncode == 2 and "unknown option --frobnicate" in r.stderr and "usage:" in r.stderr


def test_frozen_build_script_and_spec_are_in_place():
    script = PACKAGING / "build-frozen.sh"
    assert os.access(script, os.X_OK) and os.access(PACKAGING / "install.sh", os.X_OK)
    text = script.read_text()
    assert "run --headless --source 'sim://?seed=1' --frames 50" in text and "--version" in text
    assert (PACKAGING / "inspection-station.spec").exists()
    r = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_report_templates_ship_in_the_wheel_and_the_frozen_build():
    import fnmatch
    import tomllib

    shipped = sorted(p.relative_to(ROOT / "resources").as_posix() for p in (ROOT / "resources" / "reports").iterdir())
    assert "reports/report.css" in shipped and "reports/base.html.j2" in shipped
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["resources"]
    spec = (PACKAGING / "inspection-station.spec").read_text()
    for name in shipped:
        assert any(fnmatch.fnmatch(name, p) for p in patterns), f"{name} is not package data"
        assert any(fnmatch.fnmatch(name, p) for p in ("reports/*.j2", "reports/*.css")) and '"reports/*.j2"' in spec
    assert '"reports/*.css"' in spec and "audit export" in (PACKAGING / "build-frozen.sh").read_text()
