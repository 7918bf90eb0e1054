"""``inspection-station bench live``: the real window on the paced simulated line, measured from frame to screen.

The window runs offscreen when there is no display. Each mode (the stages pipelined, then one after another)
gets a warm-up (the model loads, the first frames are drawn) and then ``--seconds`` of measurement:

- frames shown per second: paints of the live view that put a new frame on the screen;
- frame-to-screen latency: from the frame leaving the source to the live view's paint that shows it;
- frames dropped: the camera's frames in the measured time that never reached the screen, by where they were
  lost: ``source`` (the camera moved on before capture read it), ``inference``, ``statistics`` (replaced while
  waiting for that stage), ``display`` (processed, but a newer one was drawn instead);
- CPU per stage: each stage thread's CPU time (``time.thread_time``) and the window's thread, as a share of a core.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from app.cli.common import UserError, positive_int

MODES = ("pipelined", "serial")


def register(bsub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    bl = bsub.add_parser("live", parents=[common],
                         help="the window on the simulated line at 30 frames/s: frames shown, frame-to-screen "
                              "latency, drops and CPU per stage, pipelined and serial")
    bl.add_argument("--seconds", type=float, default=10.0, help="measured time per mode (default 10)")
    bl.add_argument("--width", type=positive_int, default=1280)
    bl.add_argument("--height", type=positive_int, default=1024)
    bl.add_argument("--fps", type=float, default=30.0, help="the simulated camera's frame rate (default 30)")
    bl.add_argument("--model", help="a model file, or 'none' (default: the built-in model)")
    bl.add_argument("--stats-stride", type=positive_int,
                    help="statistics on every n-th frame (default: [pipeline] stats_stride of the config)")
    bl.add_argument("--busy", action="store_true", help="beside a busy program: a process spins one core meanwhile")
    bl.add_argument("--only", choices=MODES, help="measure one mode only (no ratio)")
    bl.add_argument("--json", action="store_true", help="the figures as JSON")
    bl.set_defaults(func=bench_live)
    return bl


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def _spin(app: Any, seconds: float) -> None:
    from PySide6 import QtCore

    loop = QtCore.QEventLoop()
    QtCore.QTimer.singleShot(max(0, int(seconds * 1000)), loop.quit)
    loop.exec()


def _measure(mode: str, args: argparse.Namespace, config: dict[str, Any], uri: str) -> dict[str, Any]:
    from app.gui.start import make_app
    from app.gui.window import MainWindow

    cfg = copy.deepcopy(config)
    cfg["pipeline"]["pipelined"] = mode == "pipelined"
    if args.stats_stride:
        cfg["pipeline"]["stats_stride"] = args.stats_stride
    app = make_app()
    with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp:
        w = MainWindow(cfg, Path(tmp), source=uri, model=args.model)
        w.resize(1400, 900)
        w.show()
        try:
            deadline = time.monotonic() + 120.0
            live = w.live
            while time.monotonic() < deadline:  # warm-up: the model loaded and frames on the screen
                _spin(app, 0.05)
                p = w.station.pipeline
                if p is None or not p.running:
                    raise UserError(f"the line stopped during the warm-up: {p.error if p else 'no pipeline'}")
                ready = args.model == "none" or w.station.detector is not None
                if ready and live.frames_painted >= 5:
                    break
            else:
                raise UserError("the window drew no frames within 120 s")
            _spin(app, min(0.5, args.seconds))
            p = w.station.pipeline
            st = p.stats
            t0, gui0, src0 = time.monotonic(), time.thread_time(), p.source.slot
            processed0 = st.processed
            drops0, cpu0 = dict(st.drops), dict(st.cpu_s)
            _spin(app, args.seconds)
            wall = time.monotonic() - t0
            gui_cpu = time.thread_time() - gui0
            src1 = p.source.slot
            camera = src1 - src0
            processed = st.processed - processed0
            where = {k: st.drops[k] - drops0.get(k, 0) for k in ("source", "inference", "statistics")}
            spent = {k: v - cpu0.get(k, 0.0) for k, v in st.cpu_s.items()}
            _spin(app, 0.3)  # frames captured at the end of the window reach the screen
            # only frames the camera delivered inside the window count: one in flight when it opened is not ours
            lat = [ms for seq, ms in list(live.paint_log) if seq is not None and src0 <= seq < src1]
            painted = len(lat)
            where["display"] = max(0, processed - painted)
            spent["window"] = gui_cpu
            cpu = {k: round(v / wall, 3) for k, v in spent.items()}
            # CPU time per frame does not depend on what else the machine runs: what a quiet machine would need
            per_frame = {k: round(1000.0 * v / max(1, processed), 1) for k, v in spent.items()}
            plan = w.station.threads.describe()
            stride = p.stride
        finally:
            w.close()
            w.deleteLater()
            _spin(app, 0.1)
    lost = max(0, camera - painted)
    return {"mode": mode, "seconds": round(wall, 2), "camera_frames": camera, "processed": processed,
            "shown": painted, "fps": round(painted / wall, 2), "processed_fps": round(processed / wall, 2),
            "latency_p50_ms": round(_percentile(lat, 0.5), 1), "latency_p95_ms": round(_percentile(lat, 0.95), 1),
            "latency_max_ms": round(max(lat), 1) if lat else float("nan"),
            "dropped_share": round(lost / camera, 4) if camera else 0.0, "dropped_by_stage": where,
            "cpu_cores": cpu, "cpu_ms_per_frame": per_frame, "threads": plan, "stats_stride": stride}


def _busy() -> subprocess.Popen:
    """A program that keeps one core busy (a plain spinning loop) until it is stopped."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def bench_live(args: argparse.Namespace, config: dict[str, Any]) -> int:
    if args.seconds <= 0:
        raise UserError("--seconds must be more than 0")
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    uri = f"sim://?seed=0&width={args.width}&height={args.height}&fps={args.fps:g}&realtime=1"
    modes = [args.only] if args.only else list(MODES)
    busy = _busy() if args.busy else None
    try:
        runs = {m: _measure(m, args, config, uri) for m in modes}
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    first = runs[modes[0]]
    ratio = (round(runs["pipelined"]["fps"] / runs["serial"]["fps"], 2)
             if len(runs) == 2 and runs["serial"]["fps"] > 0 else None)
    out = {"fps": first["fps"], "latency_p95_ms": first["latency_p95_ms"], "dropped_share": first["dropped_share"],
           "ratio": ratio, "camera_fps": args.fps, "size": f"{args.width}x{args.height}", "busy": bool(args.busy),
           "cores": os.cpu_count(), "load": [round(x, 2) for x in os.getloadavg()], "modes": runs}
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"the window on sim {args.width}x{args.height} at {args.fps:g} frames/s, model "
          f"{args.model or 'built-in'}, {args.seconds:g} s per mode{', beside a busy program' if args.busy else ''}; "
          f"{os.cpu_count()} cores, load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'mode':<10}{'shown fps':>10}{'p50 ms':>8}{'p95 ms':>8}{'max ms':>8}{'dropped':>9}  dropped where; "
          "CPU (cores) per stage")
    for r in runs.values():
        where = ", ".join(f"{k} {v}" for k, v in r["dropped_by_stage"].items())
        cpu = ", ".join(f"{k} {v:.2f}" for k, v in r["cpu_cores"].items())
        print(f"{r['mode']:<10}{r['fps']:>10.1f}{r['latency_p50_ms']:>8.0f}{r['latency_p95_ms']:>8.0f}"
              f"{r['latency_max_ms']:>8.0f}{r['dropped_share']:>8.1%}  {where}; {cpu}")
        print(f"{'':<10}{r['threads']}, statistics every {r['stats_stride']} frame(s), "
              f"{r['processed_fps']:.1f} frames/s processed")
        per = r["cpu_ms_per_frame"]
        print(f"{'':<10}CPU ms per processed frame: {', '.join(f'{k} {v:.1f}' for k, v in per.items())} "
              f"(total {sum(per.values()):.1f})")
    if ratio is not None:
        print(f"pipelined / serial frames shown: {ratio:.2f}x")
    target = first["fps"] >= 0.97 * args.fps and first["dropped_share"] <= 0.02 and first["latency_p95_ms"] <= 50
    print(f"{modes[0]}: {'meets' if target else 'misses'} the target ({args.fps * 0.97:.0f}+ frames/s shown, "
          f"at most 2 % dropped, p95 at most 50 ms)")
    return 0


__all__ = ["bench_live", "register"]
