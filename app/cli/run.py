"""``inspection-station run``: the pipeline on a source, headless (records to JSONL) or in the window."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from app.cli.common import UserError, data_dir, positive_int


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    r = sub.add_parser("run", parents=[common], help="run the pipeline on a source, headless or in the window")
    r.add_argument("--source", help="sim://..., cam://N, file://PATH or a video path, folder://PATH, rtsp://...")
    r.add_argument("--headless", action="store_true", help="no window: process frames and write records")
    r.add_argument("--frames", type=positive_int, help="stop after this many frames (headless)")
    r.add_argument("--jsonl", help="write one JSON record per frame to this file ('-' for stdout)")
    r.add_argument("--give-up-after", type=float, default=60.0, metavar="SECONDS",
                   help="headless: stop when the source has delivered nothing this long (default 60)")
    r.add_argument("--auto-review", metavar="SPEC",
                   help="headless: review frames as an operator would, from the simulator's truth: "
                        "oracle[:ACCURACY][,operator=ID]; decisions go to the store, acks to the JSON lines")
    r.add_argument("--reference", help="a reference .npz to measure drift against (default: from the config)")
    r.add_argument("--model", help="a .pt2 or TorchScript detector (default: the built-in model; 'none': no detector)")
    r.add_argument("--confidence", type=float, help="score a detection needs to be reported (default: the model's)")
    r.set_defaults(func=run)


def run(args: argparse.Namespace, config: dict[str, Any]) -> int:
    if args.headless:
        return run_headless(args, config)
    if args.frames or args.jsonl:
        raise UserError("--frames and --jsonl need --headless")
    from app.cli.common import gui

    return gui.run(args, config)


def run_headless(args: argparse.Namespace, config: dict[str, Any]) -> int:
    from engine.inference import load_detector
    from engine.monitoring.drift import measurers_for
    from engine.runtime.pipeline import Pipeline, PipelineConfig
    from engine.runtime.records import JsonlWriter
    from engine.sources import open_source

    directory = data_dir(args)
    uri = args.source or config["source"]["uri"]
    source = open_source(uri, realtime=False)
    detector = None if args.model == "none" else load_detector(args.model, confidence=args.confidence)
    pc = config["pipeline"]
    pcfg = PipelineConfig(read_timeout_s=config["source"]["read_timeout_s"], retry_initial_s=pc["retry_initial_s"],
                          retry_max_s=pc["retry_max_s"], frozen_after=pc["frozen_after"], max_frames=args.frames,
                          fail_on_first_open=True, give_up_after_s=args.give_up_after)
    writer = None
    if args.jsonl:
        try:
            writer = JsonlWriter(sys.stdout if args.jsonl == "-" else Path(args.jsonl))
        except OSError as e:
            raise UserError(f"cannot write {args.jsonl}: {e.strerror}") from None
    progress = _Progress(args.frames)
    measurers = measurers_for(config, args.reference, data_dir=data_dir(args))
    review = _AutoReview(args.auto_review, directory, detector, writer) if args.auto_review else None
    if review is not None and not uri.startswith("sim://"):
        raise UserError("the oracle reviewer needs the simulator's ground truth: use a sim:// source")
    pipe = Pipeline(source, detector=detector, measurers=measurers, config=pcfg,
                    sinks=[s for s in (writer.frame if writer else None, review.frame if review else None,
                                       progress.frame) if s],
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
        if review is not None:
            summary["reviews"] = review.finish()
        if pipe.error:
            summary["error"] = pipe.error
        if writer:
            writer.write(summary)
            writer.close()
        progress.done()
    if args.jsonl != "-":
        print(json.dumps(summary))
    if pipe.error:
        if pipe.stats.processed == 0:
            raise UserError(pipe.error)
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
        # The final error is said once, by the command; here only what happened along the way.
        if ev.kind not in ("opened", "failed") and not (ev.kind == "unavailable" and self.n == 0):
            print(("\n" if self.tty and self.n else "") + f"source {ev.kind}: {ev.message}", file=sys.stderr)

    def done(self) -> None:
        if self.tty and self.n:
            print(file=sys.stderr)




class _AutoReview:
    """The headless operator: reviews frames on the pipeline's worker; the store acknowledges on its writer."""

    def __init__(self, spec: str, directory: Path, detector: Any, writer: Any) -> None:
        from engine.review.feedback import FeedbackStore
        from engine.review.router import OracleReviewer, ReviewRouter, RouterConfig, parse_auto_review

        try:
            accuracy, operator = parse_auto_review(spec)
        except ValueError as e:
            raise UserError(str(e)) from None
        self.store = FeedbackStore(directory)
        self.reviewer = OracleReviewer(accuracy, operator)
        self.router = ReviewRouter(RouterConfig(threshold=float(getattr(detector, "confidence", 0.5) or 0.5)))
        self.writer = writer
        self.counts = {"submitted": 0, "acknowledged": 0, "failed": 0, "samples": 0}
        self.errors: list[str] = []
        self.latencies: list[float] = []
        self.frames = 0

    def frame(self, result: Any) -> None:
        from engine.review.feedback import FrameForReview

        f = result.frame
        dets = result.detections.boxes if result.detections is not None else ()
        stats = {k: v for k, v in result.measurements.items() if isinstance(v, (int, float, str))}
        reason = self.router.reason([b.score or 0.0 for b in dets], result.measurements)
        fr = FrameForReview(f.image, f.source_id, f.sequence, f.timestamp, tuple(dets),
                            (result.detector or {}).get("name"), (result.detector or {}).get("device"),
                            result.measurements.get("reference_id"), stats,
                            f.ground_truth.to_dict() if f.ground_truth is not None else None, reason or "oracle")
        self.frames += 1
        decisions = self.reviewer.review(fr)
        if not decisions:
            if self.frames % 50 == 0:  # a bounded sample of frames nobody had to review
                self.store.keep_sample(fr)
                self.counts["samples"] += 1
            return
        for d in decisions:
            self.counts["submitted"] += 1
            self.store.submit(d, on_ack=lambda a, d=d, f=f: self._ack(a, d, f))

    def _ack(self, ack: Any, decision: Any, frame: Any) -> None:
        from engine.review.feedback import Ack

        if isinstance(ack, Ack):
            self.counts["acknowledged"] += 1
            self.latencies.append(ack.latency_ms)
            if self.writer is not None:
                self.writer.write({"type": "review_ack", "review_id": ack.review_id, "decision_id": ack.decision_id,
                                   "sequence": frame.sequence, "verdict": decision.verdict,
                                   "operator": decision.operator, "latency_ms": round(ack.latency_ms, 2)})
        else:
            self.counts["failed"] += 1
            if len(self.errors) < 5:
                self.errors.append(str(ack))
            print(f"inspection-station: error: a decision was not stored: {ack}", file=sys.stderr)

    def finish(self) -> dict[str, Any]:
        self.store.close()
        out: dict[str, Any] = dict(self.counts)
        if self.latencies:
            lat = sorted(self.latencies)
            out["ack_ms_median"] = round(lat[len(lat) // 2], 2)
            out["ack_ms_p95"] = round(lat[int(0.95 * (len(lat) - 1))], 2)
        if self.errors:
            out["errors"] = self.errors
        return out
