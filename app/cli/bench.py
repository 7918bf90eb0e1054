"""``inspection-station bench WHAT``: speed figures measured side by side in one run."""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from app.cli.common import UserError, positive_int
from engine.runtime.threads import POLICY as OPENMP_POLICY


def _keeps_thread_settings(bench: Any) -> Any:
    """The OpenCV and torch thread counts a benchmark sets are put back afterwards, so that a benchmark run
    in-process (from the tests, or a notebook) leaves the process as it found it."""

    @functools.wraps(bench)
    def run(args: argparse.Namespace, config: dict[str, Any]) -> int:
        import cv2

        cv_threads = cv2.getNumThreads()
        torch = sys.modules.get("torch")
        torch_threads = torch.get_num_threads() if torch is not None else None
        try:
            return bench(args, config)
        finally:
            cv2.setNumThreads(cv_threads)
            if torch_threads is not None:
                torch.set_num_threads(torch_threads)

    return run


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
    bd.add_argument("--model", help="an ONNX, .pt2 or TorchScript file (default: the built-in model)")
    bd.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    bd.add_argument("--threads", type=int, default=0, help="torch CPU threads (default 0: one per core)")
    bd.add_argument("--backend", choices=("both", "torch", "onnx"), default="both",
                    help="the built-in model on PyTorch, ONNX Runtime, or both side by side (default)")
    bd.set_defaults(func=bench_detector)
    bc = bsub.add_parser("contention", parents=[common],
                         help="detector inference with a core free and with another busy program, per OpenMP "
                              "wait policy (each in a fresh process)")
    bc.add_argument("--frames", type=positive_int, default=30, help="frames timed per run (default 30)")
    _frame_size(bc)
    bc.set_defaults(func=bench_contention)
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
    bx = bsub.add_parser("export", parents=[common],
                         help="feedback bundle export: a store of N reviewed frames written as one bundle")
    bx.add_argument("--samples", type=positive_int, default=10000, help="reviewed frames in the store (default 10000)")
    bx.add_argument("--width", type=positive_int, default=640)
    bx.add_argument("--height", type=positive_int, default=512)
    bx.add_argument("--runs", type=positive_int, default=3, help="exports timed (default 3)")
    bx.add_argument("--zip", action="store_true", help="time ZIP bundles instead of folders")
    bx.set_defaults(func=bench_export)
    from app.cli.bench_memory import register as register_memory

    register_memory(bsub, common)
    from app.cli import bench_live

    bench_live.register(bsub, common).set_defaults(func=_keeps_thread_settings(bench_live.bench_live))


@_keeps_thread_settings
def bench_sim(args: argparse.Namespace, config: dict[str, Any]) -> int:
    import cv2

    from engine.simulation.line import LineSimulator
    from engine.simulation.scenarios import SCENARIOS

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




@_keeps_thread_settings
def bench_detector(args: argparse.Namespace, config: dict[str, Any]) -> int:
    import os

    import torch

    from engine.core.frame import Frame
    from engine.inference import load_detector
    from engine.simulation.line import LineSimulator

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    elif args.device == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    runs: list[tuple[str, Any]] = []
    if args.model is None:  # the built-in model: PyTorch and, where it can, ONNX Runtime on the same frames
        from engine.inference import ort as onnxrt
        from engine.inference.builtin import BuiltinDetector

        if args.backend in ("both", "torch"):
            runs.append(("torch", BuiltinDetector(device=args.device, backend="torch")))
        if args.backend in ("both", "onnx") and (args.backend == "onnx" or (onnxrt.available()
                                                                            and args.device == "cpu")):
            try:
                runs.append(("onnxruntime", BuiltinDetector(device=args.device, backend="onnx")))
            except Exception as e:
                if args.backend == "onnx" or not runs:
                    raise
                print(f"ONNX Runtime not timed: {e}")
    else:
        det = load_detector(args.model, device=args.device)
        runs.append(("onnxruntime" if getattr(det, "format", "") == "onnx" else "torch", det))
    sim = LineSimulator(seed=0, scenario="nominal", width=args.width, height=args.height)
    frames = []
    for slot in range(40):  # rendered before timing: only the detector is measured
        image, truth = sim.render(slot * 3)
        frames.append(Frame(image, "BGR", slot, float(slot), "bench", truth))
    det = runs[0][1]
    threads = torch.get_num_threads() if det.device == "cpu" else "-"
    print(f"detector {det.name} on {det.device}, {args.width}x{args.height} frames, {args.frames} frames timed one "
          f"at a time (letterbox, inference, decoding), torch threads: {threads}, CPU cores: {os.cpu_count()}, "
          f"OpenMP: {OPENMP_POLICY}")
    print(f"{'runtime':<12}{'median ms':>10}{'p95 ms':>9}{'median fps':>12}{'target fps':>12}{'vs target':>11}")
    summary = []
    for label, d in runs:
        for f in frames[:10]:
            d.detect([f])
        times, boxes = [], 0
        for i in range(args.frames):
            f = frames[i % len(frames)]
            t = time.perf_counter()
            boxes += len(d.detect([f])[0].boxes)
            times.append(time.perf_counter() - t)
        med = statistics.median(times)
        p95 = sorted(times)[int(0.95 * (len(times) - 1))]
        fps = 1.0 / med
        print(f"{label:<12}{med * 1000:>10.2f}{p95 * 1000:>9.2f}{fps:>12.1f}{30.0:>12.1f}{fps / 30:>10.2f}x")
        summary.append(f"{label} {'keeps up with' if fps >= 30 else 'falls behind'} 30 frames/s "
                       f"({boxes / args.frames:.2f} boxes per frame at confidence {d.confidence:g})")
    for line in summary:
        print(line)
    if len(runs) == 2:
        box_diff, score_diff, differing = _largest_difference(runs[0][1], runs[1][1], frames)
        print(f"largest difference between torch and onnxruntime on the same {len(frames)} frames: boxes "
              f"{box_diff:.3g} px, scores {score_diff:.3g}; frames with a different set of boxes: {differing}")
    return 0


def _largest_difference(a: Any, b: Any, frames: list[Any]) -> tuple[float, float, int]:
    """The largest box-corner and score difference between two detectors' answers on the same frames (boxes
    paired by class and position), and how many frames got a different number of boxes."""
    box_diff = score_diff = 0.0
    differing = 0
    for f in frames:
        ba = sorted(a.detect([f])[0].boxes, key=lambda x: (x.class_id, x.x0, x.y0))
        bb = sorted(b.detect([f])[0].boxes, key=lambda x: (x.class_id, x.x0, x.y0))
        if [x.class_id for x in ba] != [x.class_id for x in bb]:
            differing += 1
            continue
        for x, y in zip(ba, bb):
            box_diff = max(box_diff, abs(x.x0 - y.x0), abs(x.y0 - y.y0), abs(x.x1 - y.x1), abs(x.y1 - y.y1))
            score_diff = max(score_diff, abs(x.score - y.score))
    return box_diff, score_diff, differing


WAIT_POLICIES = (
    ("passive (the station's default)", {"OMP_WAIT_POLICY": "PASSIVE"}),
    ("spinning (libgomp's own default)", {"GOMP_SPINCOUNT": "300000"}),
)


def bench_contention(args: argparse.Namespace, config: dict[str, Any]) -> int:
    """``bench detector`` in fresh processes (the wait policy is fixed when torch loads), per OpenMP wait policy,
    with the machine otherwise idle and with one competing process keeping a core busy."""
    import os
    import subprocess

    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    cmd = [sys.executable, "-m", "app.cli", "bench", "detector", "--frames", str(args.frames),
           "--width", str(args.width), "--height", str(args.height), "--backend", "torch"]

    def one(env_extra: dict[str, str]) -> tuple[float, float]:
        p = subprocess.run(cmd, env={**base, **env_extra}, capture_output=True, text=True, timeout=1800)
        if p.returncode != 0:
            raise UserError(f"bench detector failed: {(p.stderr.strip().splitlines() or ['no message'])[-1]}")
        lines = p.stdout.splitlines()
        row = lines[next(i for i, x in enumerate(lines) if "median ms" in x) + 1].split()
        return float(row[1]), float(row[3])

    print(f"detector inference, {args.width}x{args.height}, {args.frames} frames per run, {os.cpu_count()} CPU "
          f"cores; 'busy': another process keeps one core busy throughout")
    results: dict[str, dict[str, tuple[float, float]]] = {name: {} for name, _ in WAIT_POLICIES}
    for load in ("idle", "busy"):
        hog = None
        if load == "busy":
            hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            for name, extra in WAIT_POLICIES:
                print(f"  {name}, {load}…", flush=True)
                results[name][load] = one(extra)
        finally:
            if hog is not None:
                hog.kill()
                hog.wait()
    print(f"{'OpenMP wait policy':<34}{'idle ms':>9}{'idle fps':>10}{'busy ms':>9}{'busy fps':>10}{'busy/idle':>11}")
    for name, _ in WAIT_POLICIES:
        (im, ifps), (bm, bfps) = results[name]["idle"], results[name]["busy"]
        print(f"{name:<34}{im:>9.2f}{ifps:>10.1f}{bm:>9.2f}{bfps:>10.1f}{bm / im:>10.1f}x")
    busy_fps = results[WAIT_POLICIES[0][0]]["busy"][1]
    print(f"with a core taken, the station's policy {'keeps up with' if busy_fps >= 30 else 'falls behind'} "
          f"30 frames/s ({busy_fps:.1f} frames/s)")
    return 0


@_keeps_thread_settings
def bench_stats(args: argparse.Namespace, config: dict[str, Any]) -> int:
    import json

    import cv2

    from engine.monitoring.gpu_stats import gpu_status
    from engine.monitoring.stats import SCALARS, cpu_stats, plain_stats
    from engine.simulation.line import LineSimulator

    cv2.setNumThreads(max(0, args.threads))
    sim = LineSimulator(seed=0, scenario="mixed", width=args.width, height=args.height)
    frames = [sim.render(slot)[0] for slot in range(150, 150 + args.frames)]
    nbytes = frames[0].nbytes
    backends = {"plain numpy/opencv (baseline)": plain_stats, "cpu": cpu_stats}
    gpu_ok, gpu_why = gpu_status()
    if gpu_ok:
        from engine.monitoring.gpu_stats import default_gpu_stats, gpu_stats

        default_gpu_stats().warm_up()  # compiled (or loaded from CuPy's cache) before timing
        backends["gpu (host frames)"] = gpu_stats  # upload, kernels, results back, one frame at a time
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
    device = _bench_gpu_resident(frames, rows) if gpu_ok else None
    base = rows[0]["median_ms"]
    for r in rows:
        r["speedup_vs_baseline"] = base / r["median_ms"]
    baseline = plain_stats(frames[0])

    def difference(st: Any) -> float:
        return max(abs(st.scalars[k] - baseline.scalars[k]) / max(1e-9, abs(baseline.scalars[k])) for k in SCALARS)

    worst = difference(cpu_stats(frames[0]))
    out = {"frame": f"{args.width}x{args.height}", "frames": args.frames, "opencv_threads": cv2.getNumThreads(),
           "gpu": gpu_why if gpu_ok else f"not available ({gpu_why})", "max_relative_difference": worst,
           "backends": rows}
    if device is not None:
        out["gpu_device"] = device
        out["max_relative_difference_by_backend"] = {"cpu": worst, "gpu": difference(gpu_stats(frames[0]))}
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    width = max(32, *(len(r["backend"]) + 1 for r in rows))
    print(f"frame statistics, {out['frame']}, {args.frames} frames, OpenCV threads {out['opencv_threads']}")
    print(f"{'backend':<{width}}{'median ms':>10}{'fps':>9}{'GB/s':>8}{'vs baseline':>13}")
    for r in rows:
        print(f"{r['backend']:<{width}}{r['median_ms']:>10.2f}{r['fps']:>9.1f}{r['gb_per_s']:>8.3f}"
              f"{r['speedup_vs_baseline']:>12.2f}x")
    if device is not None:
        print(f"GPU kernels alone on the resident batch: {device['kernel_ms_per_frame']:.3f} ms per frame, "
              f"{device['kernel_frame_gb_per_s']:.1f} GB/s of frames, {device['kernel_traffic_gb_per_s']:.1f} GB/s "
              f"of memory traffic ({device['traffic_bytes_per_pixel']} bytes per pixel: frame read, luma written and "
              f"read) = {device['share_of_peak']:.1%} of the device's theoretical {device['peak_gb_per_s']:.0f} GB/s")
        print(f"theoretical bandwidth of {device['name']}: {device['peak_formula']}")
        parity = ", ".join(f"{k} {v:.2e}" for k, v in out["max_relative_difference_by_backend"].items())
        print(f"largest relative difference from the baseline per backend: {parity}")
    print(f"largest relative difference from the baseline: {worst:.2e}; GPU: {out['gpu']}")
    return 0


def _bench_gpu_resident(frames: list[Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Time the GPU backend on the frames as one batch already in device memory (CUDA events, medians of
    repeated runs): a row for ``rows`` (results back and assembled included), and the kernels' figures
    against the device's theoretical memory bandwidth."""
    import cupy as cp
    import numpy as np

    from engine.monitoring.gpu_stats import default_gpu_stats

    g = default_gpu_stats()
    batch = cp.asarray(np.stack(frames))  # uploaded once, before timing
    n = len(frames)
    nbytes = frames[0].nbytes
    g.stats_batch(batch)  # warm up (allocations in CuPy's memory pool)
    start, end = cp.cuda.Event(), cp.cuda.Event()
    whole, kernels = [], []
    for _ in range(10):
        start.record()
        g.accumulate(batch)
        end.record()
        end.synchronize()
        kernels.append(cp.cuda.get_elapsed_time(start, end) / 1000 / n)
        start.record()
        g.stats_batch(batch)
        end.record()
        end.synchronize()
        whole.append(cp.cuda.get_elapsed_time(start, end) / 1000 / n)
    med = statistics.median(whole)
    rows.append({"backend": f"gpu (GPU-resident batch of {n} frames)", "median_ms": med * 1000, "fps": 1 / med,
                 "gb_per_s": nbytes / med / 1e9})
    kmed = statistics.median(kernels)
    dev = cp.cuda.Device().id
    props = cp.cuda.runtime.getDeviceProperties(dev)
    # The memory's clock (kHz) and bus width (bits): double data rate, so peak bytes/s = clock x 2 x width / 8.
    # Newer CUDA versions leave them out of the properties; the device attributes (36, 37) still give them.
    # A check: an H100 SXM (HBM3) reports 2619000 kHz and 5120 bits, 3352 GB/s, its data sheet's 3.35 TB/s; an
    # H100 PCIe (HBM2e) 1593000 kHz, 2039 GB/s.
    clock_khz = props.get("memoryClockRate") or cp.cuda.runtime.deviceGetAttribute(36, dev)
    bus_bits = props.get("memoryBusWidth") or cp.cuda.runtime.deviceGetAttribute(37, dev)
    peak = clock_khz * 1e3 * 2 * bus_bits / 8
    per_pixel = 5  # bytes of DRAM traffic at the least: 3 read (BGR), 1 written (luma), 1 read back (luma)
    pixels = nbytes / 3
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    return {"name": name, "kernel_ms_per_frame": kmed * 1000, "kernel_frame_gb_per_s": nbytes / kmed / 1e9,
            "kernel_traffic_gb_per_s": per_pixel * pixels / kmed / 1e9, "traffic_bytes_per_pixel": per_pixel,
            "peak_gb_per_s": peak / 1e9, "share_of_peak": per_pixel * pixels / kmed / peak,
            "peak_formula": f"memoryClockRate {clock_khz} kHz x 2 (double data rate) x memoryBusWidth {bus_bits} "
                            f"bits / 8 = {peak / 1e9:.0f} GB/s"}


def bench_feedback(args: argparse.Namespace, config: dict[str, Any]) -> int:
    """Click-to-durable latency, in the store's data directory (a temporary one under the data dir)."""
    import tempfile

    from app.cli.common import data_dir
    from engine.review.feedback import Decision, FeedbackStore, FrameForReview
    from engine.simulation.line import LineSimulator

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
        # Sustained: a producer as fast as it can go (the headless operator), held by the store's backlog.
        sustained = {}
        frames = [sim.render(5000 + i)[0] for i in range(args.decisions)]
        for per_frame in (1, 3):
            futs = []
            t0 = time.perf_counter()
            for i, image in enumerate(frames):
                fr = FrameForReview(image, f"sim:sustained{per_frame}", i, float(i))
                futs += [store.submit(Decision(fr, "bench", "unsure"), wait=True) for _ in range(per_frame)]
            failed = sum(f.exception(120) is not None for f in futs)
            sustained[per_frame] = (len(futs) / (time.perf_counter() - t0), len(futs), failed)
        store.close()
    print(f"decision acknowledgement, {args.width}x{args.height} frames, {args.decisions} decisions each, "
          f"SQLite WAL synchronous=FULL, PNG images with fsync")
    print(f"{'':<72}{'median ms':>10}{'p95 ms':>9}{'max ms':>9}")
    for mode, (med, p95, mx) in rows.items():
        print(f"{mode:<72}{med:>10.1f}{p95:>9.1f}{mx:>9.1f}")
    for per_frame, (rate, n, failed) in sustained.items():
        print(f"sustained, back-pressured (backlog {store.backlog}), {per_frame} decision{'s' if per_frame > 1 else ''}"
              f" a frame: {rate:.1f} decisions/s ({n} submitted, {failed} failed)")
    return 0


def _bench_store(directory: Path, samples: int, width: int, height: int) -> int:
    """A feedback store of ``samples`` reviewed frames in the store's own table layout: real PNG files (each
    unique), frames with the model's boxes, and a mix of confirm, reject, reclass, missed and unsure decisions.
    Returns the bytes of images written."""
    import json
    import struct
    import uuid
    import zlib
    from concurrent.futures import ThreadPoolExecutor

    import cv2

    from engine.simulation.line import LineSimulator
    from engine.storage.db import DB_NAME, connect
    from engine.storage.images import ImageStore

    sim = LineSimulator(seed=0, width=width, height=height)
    bases = []
    slot = 0
    while len(bases) < 16:
        image, truth = sim.render(slot)
        slot += 1
        boxes = [d.box for d in truth.defects]
        if boxes:
            bases.append((image, boxes))
    store = ImageStore(directory)

    encoded = [cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])[1].tobytes() for image, _ in bases]

    def png(i: int) -> tuple[str, int]:
        # Every frame unique: the base image's PNG with a text chunk naming the frame, before IEND.
        base = encoded[i % len(encoded)]
        text = b"frame\x00" + str(i).encode()
        chunk = struct.pack(">I", len(text)) + b"tEXt" + text + struct.pack(">I", zlib.crc32(b"tEXt" + text))
        data = base[:-12] + chunk + base[-12:]
        return store.put(data, durable=False), len(data)

    directory.mkdir(parents=True, exist_ok=True)
    db = connect(directory / DB_NAME)  # first: a new database is never started beside stored images
    with ThreadPoolExecutor(2) as ex:
        written = list(ex.map(png, range(samples)))
    now = time.time()
    images, frames, decisions = [], [], []
    for i, (sha, nbytes) in enumerate(written):
        boxes = bases[i % len(bases)][1]
        images.append((sha, width, height, nbytes, now))
        dets = [{"box": [b.x0, b.y0, b.x1, b.y1], "class_id": b.class_id, "class_name": b.class_name,
                 "score": 0.5 + 0.04 * (k % 10)} for k, b in enumerate(boxes)]
        frames.append((i + 1, sha, "sim:bench", i, 1_767_225_600.0 + i, "bench-model 00000000", "cpu", None,
                       json.dumps(dets), "{}", None, "near-threshold", "reviewed", now))
        pattern = i % 10
        for k, b in enumerate(boxes):
            verdict, new_class = "confirm", b.class_name
            if k == 0 and pattern == 6:
                verdict, new_class = "reject", None
            elif k == 0 and pattern == 8:
                verdict, new_class = "reclass", "dent" if b.class_name != "dent" else "scratch"
            decisions.append((uuid.uuid4().hex, i + 1, "op", now + i, verdict, k, b.class_name, new_class,
                              json.dumps(dets[k]["box"]), None, dets[k]["score"], "near-threshold", "operator"))
        if pattern in (7, 9):
            verdict = "missed" if pattern == 7 else "unsure"
            decisions.append((uuid.uuid4().hex, i + 1, "op", now + i, verdict, None, None,
                              "scratch" if verdict == "missed" else None, None,
                              json.dumps([10.0, 10.0, 30.0, 20.0]) if verdict == "missed" else None, None,
                              "near-threshold", "operator"))
    db.execute("BEGIN")
    db.conn.executemany("INSERT INTO images (sha256, width, height, bytes, created) VALUES (?, ?, ?, ?, ?)", images)
    db.conn.executemany("INSERT INTO frames (id, image_sha256, source, sequence, timestamp, model, device, reference_id,"
                        " detections, stats, ground_truth, queue_reason, kept_as, created)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", frames)
    db.conn.executemany("INSERT INTO decisions (review_id, frame_id, operator, time_utc, verdict, detection, old_class,"
                        " new_class, old_box, new_box, score, queue_reason, origin)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", decisions)
    db.execute("COMMIT")
    db.conn.close()
    return sum(n for _, n in written)


def bench_export(args: argparse.Namespace, config: dict[str, Any]) -> int:
    """Median time to export every reviewed frame of a store of ``--samples`` frames as one bundle."""
    import os
    import shutil
    import tempfile

    from app.cli.common import data_dir
    from engine.datasets.bundle import ExportOptions, export_bundle, verify

    cfg = config.get("export", {})
    threads = int(cfg.get("threads", 2))
    with tempfile.TemporaryDirectory(dir=data_dir(args), prefix="bench-export-") as tmp:
        store = Path(tmp) / "store"
        t = time.perf_counter()
        nbytes = _bench_store(store, args.samples, args.width, args.height)
        built = time.perf_counter() - t
        print(f"feedback bundle export: {args.samples} reviewed frames of {args.width}x{args.height} "
              f"({nbytes / 1e9:.2f} GB of PNG, store built in {built:.1f} s), {'ZIP' if args.zip else 'folder'}, "
              f"copy threads {threads}, CPU cores {os.cpu_count()}")
        times, vtimes, counts = [], [], {}
        for run in range(args.runs):
            out = Path(tmp) / f"bundle-{run}"
            res = export_bundle(store, out, ExportOptions(replay_share=float(cfg.get("replay_share", 0.1)),
                                                          zip=args.zip),
                                "bench", threads=threads, link_images=bool(cfg.get("link_images", False)))
            times.append(res.seconds)
            counts = res.counts
            t = time.perf_counter()
            ok = verify(res.path, threads).ok
            vtimes.append(time.perf_counter() - t)
            if not ok:
                raise UserError(f"the bundle written in run {run + 1} does not verify")
            shutil.rmtree(res.path, ignore_errors=True) if res.path.is_dir() else res.path.unlink()
        med = statistics.median(times)
        print(f"bundle: {counts['images']} images, {sum(counts['boxes_by_class'].values())} boxes, "
              f"{counts['decisions']} decisions (fp {counts['by_kind']['fp']}, fn {counts['by_kind']['fn']}, "
              f"confirmed {counts['by_kind']['confirmed']}, unsure {counts['by_kind']['unsure']})")
        print(f"{'runs':>6}{'median s':>10}{'min s':>8}{'max s':>8}{'frames/s':>10}{'verify s':>10}")
        print(f"{args.runs:>6}{med:>10.2f}{min(times):>8.2f}{max(times):>8.2f}{args.samples / med:>10.0f}"
              f"{statistics.median(vtimes):>10.2f}")
        scaled = med * 10000 / args.samples
        print(f"{'meets' if scaled <= 60 else 'misses'} the target of 60 s for 10,000 frames"
              + ("" if args.samples == 10000 else f" (scaled linearly from {args.samples}: {scaled:.1f} s)"))
        print(f"images {'hard-linked from the store' if cfg.get('link_images') else 'copied'} "
              "([export] link_images), every one hashed on the way")
    return 0
