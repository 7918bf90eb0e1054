"""``inspection-station doctor``: is this machine ready to run a station? One line per check.

The checks themselves live in :mod:`engine.ops.doctor`; this module prints them and starts Qt in a
child process (``doctor --qt-probe``) when the Qt check asks for it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from engine import __version__

EXIT_FAILED_CHECK = 1


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    d = sub.add_parser("doctor", parents=[common],
                       help="check this machine: packages, Qt, GPU, cameras, data directory, databases, model")
    d.add_argument("--json", action="store_true", help="print the checks as one JSON object")
    d.add_argument("--model-card", type=Path, metavar="PATH",
                   help="check this model card and the weights it names (default: the built-in model's)")
    d.add_argument("--min-free-gb", type=float, default=5.0, metavar="GB",
                   help="warn when the data directory has less free space than this (default 5)")
    d.add_argument("--qt-timeout", type=float, default=20.0, metavar="SECONDS",
                   help="how long Qt may take to start in the probe (default 20)")
    d.add_argument("--qt-probe", action="store_true", help=argparse.SUPPRESS)
    d.set_defaults(func=run)


def qt_probe() -> int:
    """Start Qt's platform plugin and say which one loaded (run in a child process by the Qt check)."""
    from PySide6 import QtCore, QtGui

    app = QtGui.QGuiApplication(sys.argv[:1])
    print(json.dumps({"platform": app.platformName(), "qt": QtCore.qVersion(),
                      "plugins": QtCore.QLibraryInfo.path(QtCore.QLibraryInfo.LibraryPath.PluginsPath)}))
    return 0


def probe_command(args: argparse.Namespace) -> list[str]:
    if getattr(sys, "frozen", False):  # the frozen build: the program itself, no interpreter flags
        cmd = [sys.executable]
        if getattr(args, "config", None) is not None:
            cmd += ["--config", str(args.config)]
        return cmd + ["doctor", "--qt-probe"]
    return [sys.executable, "-c", "import sys; from app.cli.doctor import qt_probe; sys.exit(qt_probe())"]


def run(args: argparse.Namespace, config: dict[str, Any]) -> int:
    if args.qt_probe:
        return qt_probe()
    from engine.ops import doctor
    from engine.core.config import default_config_path, default_data_dir

    data_dir = Path(args.data_dir) if getattr(args, "data_dir", None) is not None else default_data_dir()
    config_file = Path(args.config) if getattr(args, "config", None) is not None else default_config_path()
    config_check = doctor.Check("configuration", doctor.OK,
                                f"{config_file} is valid" if config_file.exists()
                                else f"no {config_file}: the defaults are used")
    checks = [config_check] + doctor.run_all(
        data_dir, probe_command(args), model_card=args.model_card,
        min_free_bytes=int(args.min_free_gb * doctor.GIB), qt_timeout_s=args.qt_timeout)
    counts = doctor.summary(checks)
    failed = counts[doctor.FAIL] > 0
    if args.json:
        print(json.dumps({"version": __version__, "machine": doctor.machine(), "data_dir": str(data_dir),
                          "checks": [c.to_dict() for c in checks], "summary": counts, "ok": not failed}, indent=2))
        return EXIT_FAILED_CHECK if failed else 0
    print(f"inspection-station {__version__} on {doctor.machine()}")
    width = max(len(c.name) for c in checks) + 2
    for c in checks:
        print(f"{c.status:<5} {c.name:<{width}}{c.message}")
    verdict = ("ready" if not counts[doctor.WARN] else "ready, with warnings") if not failed else "NOT ready"
    print(f"{counts[doctor.OK]} OK, {counts[doctor.WARN]} WARN, {counts[doctor.FAIL]} FAIL: this machine is {verdict}")
    return EXIT_FAILED_CHECK if failed else 0
