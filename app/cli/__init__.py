"""Command line: ``inspection-station [COMMAND]``. With no command, the station's window opens.

Each command group lives in its own module in ``app/cli`` and registers its
sub-parser there. User errors (a bad flag, a missing file, an unreachable camera, a damaged
database) are :class:`~engine.core.errors.StationError`; they end in one sentence on stderr and
exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Sequence

from app.cli.common import EXIT_INTERRUPTED, EXIT_USER_ERROR
from app.cli.credentials import CommandLineParser
from engine import __version__
from engine.core.config import load_config
from engine.core.errors import StationError

# Modules under app/cli, each with ``register(subparsers, common_parser)``.
COMMAND_MODULES = ("gui", "run", "bench", "scenarios", "model", "eval", "doctor", "stats", "reference", "feedback",
                   "users", "audit", "export", "bundle", "readiness", "agreement", "calibrate", "accuracy")


def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS,
                   help="where the station keeps its data (default: the platform's user data folder)")
    p.add_argument("--config", type=Path, default=argparse.SUPPRESS,
                   help="a TOML file overriding the defaults (default: config.toml in the user config folder)")
    p.add_argument("--badge", default=argparse.SUPPRESS,
                   help="the badge id signing for a command that needs credentials (the PIN comes from "
                        "INSPECTION_STATION_PIN or a prompt, never the command line)")
    return p


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = CommandLineParser(  # never echoes a PIN typed on the command line
        prog="inspection-station", parents=[common],
        description="Visual inspection station. With no command, opens the station's window on the "
                    "built-in simulated line.")
    parser.add_argument("--version", action="version", version=f"inspection-station {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"app.cli.{name}").register(sub, common)
    parser.commands = set(sub.choices)  # type: ignore[attr-defined]
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not set(argv) & (parser.commands | {"-h", "--help", "--version"}):
        argv = ["gui", *argv]  # no command: the window, with whatever options were given
    args = parser.parse_args(argv)
    try:
        config = load_config(getattr(args, "config", None))
        return int(args.func(args, config))
    except StationError as e:  # something the user can fix: one sentence, never a traceback
        print(f"inspection-station: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("inspection-station: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def gui_main() -> int:
    return main(sys.argv[1:] or ["gui"])

