"""``inspection-station scenarios``: what the simulated line can play."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    sub.add_parser("scenarios", parents=[common], help="list the simulated line's scenarios").set_defaults(func=run)


def run(args: argparse.Namespace, config: dict[str, Any]) -> int:
    from engine.simulation.scenarios import SCENARIOS

    for s in SCENARIOS.values():
        print(f"{s.name:<16}{s.description}")
    return 0
