"""Command line: ``inspection-station [COMMAND]``. With no command, the station's window opens.

User errors (a bad flag, a missing file, an unreachable camera) end in one sentence on
stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from engine import __version__
from engine.config import ConfigError, load_config, prepare_data_dir

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """Something the user can fix; the message is shown as it is."""


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {v}")
    return v


def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS,
                   help="where the station keeps its data (default: the platform's user data folder)")
    p.add_argument("--config", type=Path, default=argparse.SUPPRESS,
                   help="a TOML file overriding the defaults (default: config.toml in the user config folder)")
    return p


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="inspection-station", parents=[common],
        description="Visual inspection station. With no command, opens the station's window on the "
                    "built-in simulated line.")
    parser.add_argument("--version", action="version", version=f"inspection-station {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    g = sub.add_parser("gui", parents=[common], help="open the station's window (the default)")
    g.add_argument("--source", help="source URI to start on (default: from the config)")

    r = sub.add_parser("run", parents=[common], help="run the pipeline on a source, headless or in the window")
    r.add_argument("--source", help="sim://..., cam://N, file://PATH or a video path, folder://PATH, rtsp://...")
    r.add_argument("--headless", action="store_true", help="no window: process frames and write records")
    r.add_argument("--frames", type=_positive_int, help="stop after this many frames (headless)")
    r.add_argument("--jsonl", help="write one JSON record per frame to this file ('-' for stdout)")

    b = sub.add_parser("bench", parents=[common], help="measure speed; prints figures side by side")
    bsub = b.add_subparsers(dest="bench", metavar="WHAT", required=True)
    bs = bsub.add_parser("sim", parents=[common], help="frames per second of the simulated line, per scenario")
    bs.add_argument("--frames", type=_positive_int, default=200, help="frames timed per scenario (default 200)")
    bs.add_argument("--width", type=_positive_int, default=1280)
    bs.add_argument("--height", type=_positive_int, default=1024)
    bs.add_argument("--threads", type=int, default=1, help="OpenCV threads (default 1: one core)")
    bs.add_argument("--scenario", action="append", help="only this scenario (repeatable)")

    sub.add_parser("scenarios", parents=[common], help="list the simulated line's scenarios")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(getattr(args, "config", None))
        if args.command in (None, "gui") or (args.command == "run" and not args.headless):
            return _gui(args, config)
        if args.command == "run":
            return _run_headless(args, config)
        if args.command == "bench":
            return _bench_sim(args)
        if args.command == "scenarios":
            return _scenarios()
    except (UserError, ConfigError) as e:
        print(f"inspection-station: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("inspection-station: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    raise AssertionError(f"unhandled command {args.command}")


def gui_main() -> int:
    return main(sys.argv[1:] or ["gui"])


# ---------------------------------------------------------------------------- commands


def _gui(args: argparse.Namespace, config: dict[str, Any]) -> int:
    if getattr(args, "frames", None) or getattr(args, "jsonl", None):
        raise UserError("--frames and --jsonl need --headless")
    data_dir = prepare_data_dir(getattr(args, "data_dir", None))
    from app.gui import run_gui  # Qt is imported only when a window is wanted

    return run_gui(config, data_dir, source=getattr(args, "source", None))


def _run_headless(args: argparse.Namespace, config: dict[str, Any]) -> int:
    from engine.interfaces import BasicStats
    from engine.pipeline import Pipeline, PipelineConfig
    from engine.records import JsonlWriter
    from engine.sources import SourceError, open_source

    prepare_data_dir(getattr(args, "data_dir", None))
    uri = args.source or config["source"]["uri"]
    try:
        source = open_source(uri, realtime=False)
    except SourceError as e:
        raise UserError(str(e)) from None
    pc = config["pipeline"]
    pcfg = PipelineConfig(read_timeout_s=config["source"]["read_timeout_s"], retry_initial_s=pc["retry_initial_s"],
                          retry_max_s=pc["retry_max_s"], frozen_after=pc["frozen_after"], max_frames=args.frames)
    writer = None
    if args.jsonl:
        try:
            writer = JsonlWriter(sys.stdout if args.jsonl == "-" else Path(args.jsonl))
        except OSError as e:
            raise UserError(f"cannot write {args.jsonl}: {e.strerror}") from None
    # Live sources that never come back would retry forever; a headless run with no frame budget on
    # a finite source simply ends with it.
    progress = _Progress(args.frames)
    pipe = Pipeline(source, measurers=[BasicStats()], config=pcfg,
                    sinks=[s for s in (writer.frame if writer else None, progress.frame) if s],
                    event_sinks=[s for s in (writer.event if writer else None, progress.event) if s])
    pipe.start()
    try:
        while not pipe.join(timeout=0.2):
            pass
    except KeyboardInterrupt:
        pipe.stop()
        pipe.join(timeout=10)
        raise
    finally:
        summary = {"type": "summary", "source": source.describe(), "state": pipe.state.value, **pipe.stats.to_dict()}
        if pipe.error:
            summary["error"] = pipe.error
        if writer:
            writer.write(summary)
            writer.close()
        progress.done()
    if args.jsonl != "-":
        print(json.dumps(summary))
    if pipe.error:
        print(f"inspection-station: error: {pipe.error}", file=sys.stderr)
        return 1
    if pipe.stats.processed == 0:
        raise UserError(f"no frame could be read from {source.describe()}")
    if args.frames and pipe.stats.processed < args.frames:
        print(f"inspection-station: warning: the source ended after {pipe.stats.processed} of "
              f"{args.frames} frames", file=sys.stderr)
    return 0


class _Progress:
    """A progress line on stderr when it is a terminal; source events always."""

    def __init__(self, total: int | None) -> None:
        self.total = total
        self.tty = sys.stderr.isatty()
        self.n = 0
        self.t0 = time.monotonic()

    def frame(self, result: Any) -> None:
        self.n += 1
        if self.tty and (self.n % 25 == 0 or self.n == self.total):
            rate = self.n / max(1e-9, time.monotonic() - self.t0)
            of = f"/{self.total}" if self.total else ""
            print(f"\r{self.n}{of} frames, {rate:.1f} frames/s", end="", file=sys.stderr, flush=True)

    def event(self, ev: Any) -> None:
        if ev.kind != "opened":
            print(("\n" if self.tty and self.n else "") + f"source {ev.kind}: {ev.message}", file=sys.stderr)

    def done(self) -> None:
        if self.tty and self.n:
            print(file=sys.stderr)


def _bench_sim(args: argparse.Namespace) -> int:
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


def _scenarios() -> int:
    from engine.simulator import SCENARIOS

    for s in SCENARIOS.values():
        print(f"{s.name:<16}{s.description}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
