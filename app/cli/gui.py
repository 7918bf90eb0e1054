"""``inspection-station gui``: the station's window (also what no command at all opens)."""

from __future__ import annotations

import argparse
from typing import Any

from app.cli.common import UserError, data_dir


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    g = sub.add_parser("gui", parents=[common], help="open the station's window (the default)")
    g.add_argument("--source", help="source URI to start on (default: from the config)")
    g.add_argument("--model", help="a .pt2 or TorchScript detector (default: the built-in model; 'none': no detector)")
    g.add_argument("--confidence", type=float, help="score a detection needs to be shown (default: the model's)")
    g.set_defaults(func=run)


def run(args: argparse.Namespace, config: dict[str, Any]) -> int:
    directory = data_dir(args)
    from app.gui.start import run_gui  # Qt is imported only when a window is wanted

    confidence = getattr(args, "confidence", None)
    if confidence is not None and not 0.0 < confidence < 1.0:
        raise UserError(f"--confidence must be between 0 and 1, got {confidence}")
    return run_gui(config, directory, source=getattr(args, "source", None), model=getattr(args, "model", None),
                   confidence=confidence)
