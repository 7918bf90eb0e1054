"""``inspection-station bench memory``: the window's resident memory over a long run on the simulated line.

The real window runs (offscreen unless a display is set) on the paced simulated line at 30 frames/s with the
built-in model, nobody signed in needed (``[security] require_sign_in`` off, so the review queue fills as it would
with an operator there), in a fresh data directory. Resident memory (``VmRSS`` from ``/proc/self/status``) is
sampled every 10 s; the figures are the memory at minute 3 (when the line has settled) and at the end, and the
growth between them.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from app.cli.common import UserError

SAMPLE_S = 10.0
SETTLED_MIN = 3.0
SOURCE = "sim://?seed=0&scenario=nominal&fps=30"


def register(bsub: Any, common: argparse.ArgumentParser) -> None:
    bm = bsub.add_parser("memory", parents=[common],
                         help="the window's resident memory on the simulated line, sampled every 10 s")
    bm.add_argument("--minutes", type=float, default=10.0, help="how long the window runs (default 10)")
    bm.add_argument("--source", default=SOURCE, help=f"what it watches (default {SOURCE})")
    bm.add_argument("--model", help="a model file, or 'none' (default: the built-in model)")
    bm.add_argument("--json", action="store_true", help="the figures and every sample as JSON")
    bm.set_defaults(func=bench_memory)


def rss_bytes() -> int:
    """This process's resident memory, from /proc (0 where there is no /proc)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _at(samples: list[tuple[float, int]], minute: float) -> int:
    """The sample nearest to ``minute``."""
    return min(samples, key=lambda s: abs(s[0] - minute * 60))[1]


def summarise(samples: list[tuple[float, int]], minutes: float) -> dict[str, Any]:
    settled = min(SETTLED_MIN, minutes)
    start, end = _at(samples, settled), samples[-1][1]
    gib = 1024 ** 3
    return {"minutes": round(samples[-1][0] / 60, 2), "settled_minute": settled,
            "rss_start_gib": round(samples[0][1] / gib, 3), "rss_settled_gib": round(start / gib, 3),
            "rss_end_gib": round(end / gib, 3), "rss_peak_gib": round(max(s[1] for s in samples) / gib, 3),
            "growth_pct": round(100.0 * (end - start) / start, 2) if start else None,
            "under_2_gib": max(s[1] for s in samples) < 2 * gib}


def bench_memory(args: argparse.Namespace, config: dict[str, Any]) -> int:
    if args.minutes <= 0:
        raise UserError("--minutes must be above 0")
    if not rss_bytes():
        raise UserError("resident memory cannot be read here (/proc/self/status)")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6 import QtCore

    from app.gui.start import make_app
    from app.gui.window import MainWindow

    cfg = copy.deepcopy(config)
    cfg.setdefault("security", {})["require_sign_in"] = False
    app = make_app()
    data_dir = Path(tempfile.mkdtemp(prefix="inspection-memory-"))
    samples: list[tuple[float, int]] = []
    extra: list[dict[str, Any]] = []
    t0 = time.monotonic()
    window = MainWindow(cfg, data_dir, source=args.source, model=args.model)
    window.resize(1400, 900)
    window.show()

    def sample() -> None:
        t = time.monotonic() - t0
        samples.append((t, rss_bytes()))
        st = window.station
        p = st.last_pipeline
        extra.append({"t_s": round(t, 1), "rss_mib": round(samples[-1][1] / 2 ** 20, 1), "queue": len(st.queue),
                      "queue_kib": round(st.queue.nbytes / 1024), "frames": p.stats.processed if p else 0})
        if not args.json:
            e = extra[-1]
            print(f"{e['t_s']:7.1f} s  {e['rss_mib']:8.1f} MiB  queue {e['queue']:3d} ({e['queue_kib']} KiB)  "
                  f"frames {e['frames']}", flush=True)
        if t >= args.minutes * 60:
            timer.stop()
            window.close()
            app.quit()

    timer = QtCore.QTimer()
    timer.setInterval(int(SAMPLE_S * 1000))
    timer.timeout.connect(sample)
    timer.start()
    sample()
    try:
        app.exec()
    finally:
        timer.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    out = summarise(samples, args.minutes)
    out["load_average"] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        print(json.dumps({**out, "samples": extra}, indent=2))
    else:
        print(f"resident memory: {out['rss_settled_gib']:.3f} GiB at minute {out['settled_minute']:g}, "
              f"{out['rss_end_gib']:.3f} GiB at minute {out['minutes']:g} ({out['growth_pct']:+.2f} %), "
              f"peak {out['rss_peak_gib']:.3f} GiB; load average {out['load_average'][0]:.2f}")
    return 0
