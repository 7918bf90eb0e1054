"""``inspection-station gui``: the station's window (also what no command at all opens)."""

from __future__ import annotations

import argparse
from typing import Any

from app.commands import data_dir


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    g = sub.add_parser("gui", parents=[common], help="open the station's window (the default)")
    g.add_argument("--source", help="source URI to start on (default: from the config)")
    g.set_defaults(func=run)


def run(args: argparse.Namespace, config: dict[str, Any]) -> int:
    directory = data_dir(args)
    from app.gui import run_gui  # Qt is imported only when a window is wanted

    return run_gui(config, directory, source=getattr(args, "source", None))
