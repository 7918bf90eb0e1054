"""``inspection-station bench WHAT``: speed figures measured side by side in one run."""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

from app.commands import UserError, positive_int


def _frame_size(p: argparse.ArgumentParser) -> None:
    p.add_argument("--width", type=positive_int, default=1280)
    p.add_argument("--height", type=positive_int, default=1024)


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    b = sub.add_parser("bench", parents=[common], help="measure speed; prints figures side by side")
    bsub = b.add_subparsers(dest="bench", metavar="WHAT", required=True)
    bs = bsub.add_parser("sim", parents=[common], help="frames per second of the simulated line, per scenario")
    bs.add_argument("--frames", type=positive_int, default=200, help="frames timed per scenario (default 200)")
    _frame_size(bs)
    bs.add_argument("--threads", type=int, default=1, help="OpenCV threads (default 1: one core)")
    bs.add_argument("--scenario", action="append", help="only this scenario (repeatable)")
    bs.set_defaults(func=bench_sim)
    bd = bsub.add_parser("detector", parents=[common],
                         help="detector inference per frame (preprocessing included) against 30 frames/s")
    bd.add_argument("--frames", type=positive_int, default=200, help="frames timed (default 200)")
    _frame_size(bd)
    bd.add_argument("--model", help="a .pt2 or TorchScript file (default: the built-in model)")
    bd.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    bd.add_argument("--threads", type=int, default=0, help="torch CPU threads (default 0: one per core)")
    bd.set_defaults(func=bench_detector)
    bt = bsub.add_parser("stats", parents=[common],
                         help="frame statistics: each backend against the plain NumPy/OpenCV baseline")
    bt.add_argument("--frames", type=positive_int, default=40, help="frames timed per backend (default 40)")
    _frame_size(bt)
    bt.add_argument("--threads", type=int, default=1, help="OpenCV threads (default 1: one core)")
    bt.add_argument("--json", action="store_true", help="the figures as JSON")
    bt.set_defaults(func=bench_stats)
    bf = bsub.add_parser("feedback", parents=[common],
                         help="decision acknowledgement latency: click to durable, 1280x1024 frames")
    bf.add_argument("--decisions", type=positive_int, default=60, help="decisions timed (default 60)")
    _frame_size(bf)
    bf.set_defaults(func=bench_feedback)


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




def bench_detector(args: argparse.Namespace, config: dict[str, Any]) -> int:
    import os

    import torch

    from engine.detect import ModelError, load_detector
    from engine.frame import Frame
    from engine.simulator import LineSimulator

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    elif args.device == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    try:
        det = load_detector(args.model, device=args.device)
    except ModelError as e:
        raise UserError(str(e)) from None
    sim = LineSimulator(seed=0, scenario="nominal", width=args.width, height=args.height)
    frames = []
    for slot in range(0, 40):  # rendered before timing: only the detector is measured
        image, truth = sim.render(slot * 3)
        frames.append(Frame(image, "BGR", slot, float(slot), "bench", truth))
    for f in frames[:10]:
        det.detect([f])
    times, boxes = [], 0
    for i in range(args.frames):
        f = frames[i % len(frames)]
        t = time.perf_counter()
        boxes += len(det.detect([f])[0].boxes)
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    p95 = sorted(times)[int(0.95 * (len(times) - 1))]
    fps = 1.0 / med
    threads = torch.get_num_threads() if det.device == "cpu" else "-"
    print(f"detector {det.name} on {det.device}, {args.width}x{args.height} frames, {args.frames} frames timed one "
          f"at a time (letterbox, inference, decoding), torch threads: {threads}, CPU cores: {os.cpu_count()}")
    print(f"{'median ms':>10}{'p95 ms':>9}{'median fps':>12}{'target fps':>12}{'vs target':>11}")
    print(f"{med * 1000:>10.2f}{p95 * 1000:>9.2f}{fps:>12.1f}{30.0:>12.1f}{fps / 30:>10.2f}x")
    print(f"{'keeps up with' if fps >= 30 else 'falls behind'} 30 frames/s "
          f"({boxes / args.frames:.2f} boxes per frame at confidence {det.confidence:g})")
    return 0


def bench_stats(args: argparse.Namespace, config: dict[str, Any]) -> int:
    import json

    import cv2

    from engine.simulator import LineSimulator
    from engine.stats import SCALARS, cpu_stats, plain_stats

    cv2.setNumThreads(max(0, args.threads))
    sim = LineSimulator(seed=0, scenario="mixed", width=args.width, height=args.height)
    frames = [sim.render(slot)[0] for slot in range(150, 150 + args.frames)]
    nbytes = frames[0].nbytes
    backends = {"plain numpy/opencv (baseline)": plain_stats, "cpu": cpu_stats}
    rows = []
    for name, fn in backends.items():
        fn(frames[0])  # warm up (first-use checks, allocations)
        times = []
        for f in frames:
            t = time.perf_counter()
            fn(f)
            times.append(time.perf_counter() - t)
        med = statistics.median(times)
        rows.append({"backend": name, "median_ms": med * 1000, "fps": 1 / med, "gb_per_s": nbytes / med / 1e9})
    base = rows[0]["median_ms"]
    for r in rows:
        r["speedup_vs_baseline"] = base / r["median_ms"]
    a, b = cpu_stats(frames[0]), plain_stats(frames[0])
    worst = max(abs(a.scalars[k] - b.scalars[k]) / max(1e-9, abs(b.scalars[k])) for k in SCALARS)
    out = {"frame": f"{args.width}x{args.height}", "frames": args.frames, "opencv_threads": cv2.getNumThreads(),
           "gpu": "not available (no CuPy GPU backend on this machine)", "max_relative_difference": worst,
           "backends": rows}
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    print(f"frame statistics, {out['frame']}, {args.frames} frames, OpenCV threads {out['opencv_threads']}")
    print(f"{'backend':<32}{'median ms':>10}{'fps':>9}{'GB/s':>8}{'vs baseline':>13}")
    for r in rows:
        print(f"{r['backend']:<32}{r['median_ms']:>10.2f}{r['fps']:>9.1f}{r['gb_per_s']:>8.3f}"
              f"{r['speedup_vs_baseline']:>12.2f}x")
    print(f"largest relative difference from the baseline: {worst:.2e}; GPU: {out['gpu']}")
    return 0


def bench_feedback(args: argparse.Namespace, config: dict[str, Any]) -> int:
    """Click-to-durable latency, in the store's data directory (a temporary one under the data dir)."""
    import tempfile

    from app.commands import data_dir
    from engine.feedback import Decision, FeedbackStore, FrameForReview
    from engine.simulator import LineSimulator

    sim = LineSimulator(seed=0, width=args.width, height=args.height)
    rows = {}
    with tempfile.TemporaryDirectory(dir=data_dir(args), prefix="bench-feedback-") as tmp:
        store = FeedbackStore(Path(tmp))
        for mode in ("shown first (image stored when the frame is put before the operator)",
                     "cold (image stored on the click)"):
            lat = []
            for i in range(args.decisions):
                image, truth = sim.render(1000 * len(rows) + i)
                fr = FrameForReview(image, "sim:bench", 1000 * len(rows) + i, float(i))
                if mode.startswith("shown"):
                    store.keep_sample(fr).result(30)
                    time.sleep(0.02)  # the operator looks, then clicks
                ack = store.submit(Decision(fr, "bench", "unsure")).result(30)
                lat.append(ack.latency_ms)
            lat.sort()
            rows[mode] = (statistics.median(lat), lat[int(0.95 * (len(lat) - 1))], lat[-1])
        store.close()
    print(f"decision acknowledgement, {args.width}x{args.height} frames, {args.decisions} decisions each, "
          f"SQLite WAL synchronous=FULL, PNG images with fsync")
    print(f"{'':<72}{'median ms':>10}{'p95 ms':>9}{'max ms':>9}")
    for mode, (med, p95, mx) in rows.items():
        print(f"{mode:<72}{med:>10.1f}{p95:>9.1f}{mx:>9.1f}")
    return 0
