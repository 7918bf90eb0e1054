"""``inspection-station bench WHAT``: speed figures measured side by side in one run."""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from app.commands import UserError, positive_int


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    b = sub.add_parser("bench", parents=[common], help="measure speed; prints figures side by side")
    bsub = b.add_subparsers(dest="bench", metavar="WHAT", required=True)
    bs = bsub.add_parser("sim", parents=[common], help="frames per second of the simulated line, per scenario")
    bs.add_argument("--frames", type=positive_int, default=200, help="frames timed per scenario (default 200)")
    bs.add_argument("--width", type=positive_int, default=1280)
    bs.add_argument("--height", type=positive_int, default=1024)
    bs.add_argument("--threads", type=int, default=1, help="OpenCV threads (default 1: one core)")
    bs.add_argument("--scenario", action="append", help="only this scenario (repeatable)")
    bs.set_defaults(func=bench_sim)


def bench_sim(args: argparse.Namespace, config: dict[str, Any]) -> int:
    import cv2

    from engine.simulator import SCENARIOS, LineSimulator

    cv2.setNumThreads(max(0, args.threads))
    names = args.scenario or list(SCENARIOS)
    for n in names:
        if n not in SCENARIOS:
            raise UserError(f"unknown scenario {n!r}; choose one of {', '.join(SCENARIOS)}")
    print(f"simulated line, {args.width}x{args.height}, {args.frames} frames per scenario, "
          f"OpenCV threads: {cv2.getNumThreads()}")
    print(f"{'scenario':<16}{'median ms':>10}{'p95 ms':>9}{'median fps':>12}{'vs 60 fps':>11}")
    worst = float("inf")
    for name in names:
        sim = LineSimulator(seed=0, scenario=name, width=args.width, height=args.height)
        start = 360 if name in ("mixed", "lens-change") else 0  # time the changed optics too
        for slot in range(start, start + 10):  # warm the sprite cache and lens maps
            sim.render(slot)
        times = []
        for slot in range(start + 10, start + 10 + args.frames):
            t = time.perf_counter()
            sim.render(slot)
            times.append(time.perf_counter() - t)
        med = statistics.median(times)
        p95 = sorted(times)[int(0.95 * (len(times) - 1))]
        fps = 1.0 / med
        worst = min(worst, fps)
        print(f"{name:<16}{med * 1000:>10.2f}{p95 * 1000:>9.2f}{fps:>12.1f}{fps / 60:>10.2f}x")
    print(f"slowest scenario: {worst:.1f} frames/s ({'meets' if worst > 60 else 'misses'} the 60 frames/s target)")
    return 0


